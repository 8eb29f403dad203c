// Filters are matched in memory with mingo (the gateway's live changes, the SDK's purge of what
// left a view). mingo compares objects of one class by their toString(), which is wrong for BSON
// values: Long("10") < Long("9"), Decimal128("1.10") != Decimal128("1.1"), and a promoted Long
// (a JavaScript number) is never equal to a Long. So documents and operands are both turned into
// a "match form" first, in which mingo's own comparisons of strings and numbers give MongoDB's
// answers:
//
//   ObjectId  → its 24 lowercase hex digits (string order = byte order = MongoDB's order)
//   UUID      → its canonical lowercase form (likewise)
//   Long, Decimal → numericKey(): a string whose order is the numbers' order, the same for
//               equal values of any numeric type (Decimal 1.10 and 1.1; Long 5, Int32 5, 5.0)
//   Int, Float → a number (Int32 and Double objects unwrapped)
//   anything else → unchanged (strings, booleans, enums, dates)
//
// A stored value that does not have its field's type (another service wrote it) becomes an
// object no operand equals and no comparison matches: MongoDB never matches a string against an
// ObjectId either (its comparisons bracket by type). No driver here: stored BSON values are
// recognized by their `_bsontype`, so the SDK can match wire documents with the same code.
import type { CollectionModel, FieldModel, FieldType, ScalarName } from './model.ts';
import { PRIMARY_KEY } from './model.ts';
import { decimalText, normalizeLong, normalizeObjectId, normalizeUuid } from './wire-values.ts';

/** Where a value comes from: a stored document (BSON values), or the wire (JSON). */
export type ValueSide = 'stored' | 'wire';

/** Stands for a value of another type than its field's: equal to no operand, ordered with none. */
const UNMATCHABLE: Readonly<Record<string, never>> = Object.freeze({});

const CONVERTED = new Set<ScalarName>(['ObjectId', 'UUID', 'Long', 'Decimal', 'Int', 'Float']);

/** Whether fields of this type need a match form at all (else documents are matched as they are). */
export function needsMatchForm(type: FieldType): boolean {
  let known = needed.get(type);
  if (known === undefined) {
    known =
      type.kind === 'list'
        ? needsMatchForm(type.of)
        : type.kind === 'object'
          ? type.fields.some((f) => needsMatchForm(f.type))
          : type.kind === 'scalar' && CONVERTED.has(type.name);
    needed.set(type, known);
  }
  return known;
}
const needed = new WeakMap<FieldType, boolean>();

/** Whether any field of the collection needs one. */
export function collectionNeedsMatchForm(collection: CollectionModel): boolean {
  return collection.fields.some((f) => needsMatchForm(f.type));
}

/**
 * The document in match form, following the model through embedded objects and lists; the key
 * (`_id` stored, `id` on the wire) too. Copied only where something changes: a document with
 * nothing to convert is returned as it is.
 */
export function matchForm(collection: CollectionModel, doc: Record<string, unknown>, side: ValueSide): Record<string, unknown> {
  return matchFields(collection.fields, doc, side, side === 'stored' ? '_id' : PRIMARY_KEY);
}

function matchFields(fields: readonly FieldModel[], doc: Record<string, unknown>, side: ValueSide, key?: string): Record<string, unknown> {
  let out: Record<string, unknown> | undefined;
  for (const f of fields) {
    const name = key !== undefined && f.name === PRIMARY_KEY ? key : f.name;
    if (!Object.hasOwn(doc, name) || !needsMatchForm(f.type)) continue;
    const value = doc[name];
    const converted = matchFieldValue(f.type, value, side);
    if (converted !== value) (out ??= { ...doc })[name] = converted;
  }
  return out ?? doc;
}

function matchFieldValue(type: FieldType, value: unknown, side: ValueSide): unknown {
  if (value === null || value === undefined) return value;
  switch (type.kind) {
    case 'scalar':
      return matchValue(type.name, value, side);
    case 'enum':
      return value;
    case 'object':
      return typeof value === 'object' && !Array.isArray(value) ? matchFields(type.fields, value as Record<string, unknown>, side) : UNMATCHABLE;
    case 'list': {
      if (!Array.isArray(value)) return matchFieldValue(type.of, value, side);
      let out: unknown[] | undefined;
      value.forEach((v, i) => {
        const converted = matchFieldValue(type.of, v, side);
        if (converted !== v) (out ??= [...value])[i] = converted;
      });
      return out ?? value;
    }
  }
}

/** One scalar in match form. Operands of a filter come from the wire. */
export function matchValue(type: ScalarName, value: unknown, side: ValueSide): unknown {
  if (value === null || value === undefined) return value;
  const bsonType = bsonTypeOf(value);
  switch (type) {
    case 'ObjectId':
      if (bsonType === 'ObjectId') return (value as { toHexString(): string }).toHexString();
      return side === 'wire' ? (normalizeObjectId(value) ?? UNMATCHABLE) : UNMATCHABLE;
    case 'UUID': {
      if (bsonType === 'Binary') return uuidOfBinary(value) ?? UNMATCHABLE;
      return side === 'wire' ? (normalizeUuid(value) ?? UNMATCHABLE) : UNMATCHABLE;
    }
    case 'Long':
    case 'Decimal': {
      const text = numericText(value, side);
      return text === null ? UNMATCHABLE : numericKey(text);
    }
    case 'Int':
    case 'Float':
      if (typeof value === 'number') return value;
      if (bsonType === 'Int32' || bsonType === 'Double') return Number((value as { valueOf(): number }).valueOf());
      if (bsonType === 'Long' || bsonType === 'Decimal128') return Number(String(value));
      return value;
    default:
      return value;
  }
}

function bsonTypeOf(value: unknown): string | undefined {
  return typeof value === 'object' && value !== null ? ((value as { _bsontype?: unknown })._bsontype as string | undefined) : undefined;
}

function uuidOfBinary(value: unknown): string | null {
  const { sub_type: subType, buffer } = value as { sub_type?: number; buffer?: Uint8Array };
  if (subType !== 4 || !(buffer instanceof Uint8Array) || buffer.length !== 16) return null;
  const hex = Array.from(buffer, (b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** An exact decimal spelling of a numeric value (any numeric BSON type, number, bigint, or wire string). */
function numericText(value: unknown, side: ValueSide): string | null {
  if (typeof value === 'number') return exactDecimal(value);
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'string') return side === 'wire' ? (normalizeLong(value) ?? decimalText(value)) : null;
  switch (bsonTypeOf(value)) {
    case 'Long':
    case 'Decimal128':
      return String(value);
    case 'Int32':
    case 'Double':
      return exactDecimal(Number((value as { valueOf(): number }).valueOf()));
    default:
      return null;
  }
}

/**
 * The exact value of a double as a decimal string (`digits` or `digitsE-n`). Doubles are exact
 * binary fractions, so every one has a finite decimal expansion; MongoDB compares numbers of
 * different types by these exact values (0.1 as a double is not Decimal128 0.1).
 */
export function exactDecimal(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (!Number.isFinite(x)) return x > 0 ? 'Infinity' : '-Infinity';
  if (Number.isSafeInteger(x)) return String(x === 0 ? 0 : x);
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const bits = view.getBigUint64(0);
  const negative = bits >> 63n === 1n;
  const biased = Number((bits >> 52n) & 0x7ffn);
  let mantissa = bits & ((1n << 52n) - 1n);
  let exponent: number;
  if (biased === 0) {
    exponent = -1074;
  } else {
    mantissa |= 1n << 52n;
    exponent = biased - 1075;
  }
  const sign = negative ? '-' : '';
  if (exponent >= 0) return `${sign}${(mantissa << BigInt(exponent)).toString()}`;
  // mantissa × 2^e = mantissa × 5^-e × 10^e
  return `${sign}${(mantissa * 5n ** BigInt(-exponent)).toString()}E${exponent}`;
}

const NUMBER_TEXT = /^([+-])?([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]+))?$/;
/**
 * Exponents of normalized values stay far inside ±EXPONENT_BIAS (Decimal128: ±6200, doubles:
 * ±1100, any text decimalText() accepts: ±100200), so the biased exponent always has 6 digits.
 */
const EXPONENT_BIAS = 200_000;

/**
 * A string for a number (given as decimal text) whose order, as a string, is the numbers' order,
 * and which is the same for equal numbers however they are written (`1.10`, `1.1`, `11E-1`;
 * `0`, `-0`, `0E+3`). NaN sorts first and equals NaN, as in MongoDB; then -Infinity, negative
 * numbers, zero, positive numbers, Infinity.
 */
export function numericKey(text: string): string {
  const lower = text.toLowerCase().replace(/^\+/, '');
  if (lower === 'nan' || lower === '-nan') return '0';
  if (lower === '-infinity' || lower === '-inf') return '1';
  if (lower === 'infinity' || lower === 'inf') return '5';
  const m = NUMBER_TEXT.exec(text);
  if (!m) throw new Error(`not a number: ${JSON.stringify(text)}`);
  const [, sign, whole = '', fraction = '', exp = '0'] = m;
  let digits = whole + fraction;
  let exponent = Number(exp) - fraction.length; // value = digits × 10^exponent
  const leading = digits.search(/[1-9]/);
  if (leading < 0) return '3'; // zero, whatever its sign and exponent
  digits = digits.slice(leading);
  const trailing = digits.length - digits.replace(/0+$/, '').length;
  digits = digits.slice(0, digits.length - trailing);
  exponent += trailing;
  // value = 0.d1d2… × 10^adjusted
  const adjusted = exponent + digits.length;
  if (sign === '-') {
    const complement = Array.from(digits, (d) => String(9 - Number(d))).join('');
    // Larger magnitudes first; a terminator above every digit puts -0.12 after -0.123.
    return `2${String(EXPONENT_BIAS - adjusted).padStart(6, '0')}${complement}~`;
  }
  return `4${String(EXPONENT_BIAS + adjusted).padStart(6, '0')}${digits}`;
}
