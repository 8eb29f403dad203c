// The wire forms of the BSON types that JSON cannot carry natively (PROTOCOL.md 2a): how a
// client spells an ObjectId, a UUID, a 64-bit integer, a decimal or binary data in a document,
// a GraphQL variable or a filter operand. Both ends check them with these; there is no driver
// here (the client SDK uses this file). The conversion to and from the BSON values themselves is
// gateway-side: protocol/bson-values.ts.
//
// Every value comes from users: each check is a bounded regular expression (no backtracking
// blow-up: fixed-width groups, no nested quantifiers) or a bounded BigInt.

/** 12 bytes as 24 lowercase hex digits (what the gateway sends; input may be uppercase). */
export const OBJECT_ID_PATTERN = '^[0-9a-f]{24}$';

/** The canonical 8-4-4-4-12 form, lowercase (what the gateway sends; input may be uppercase). */
export const UUID_PATTERN = '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';

export const INT64_MIN = -(2n ** 63n);
export const INT64_MAX = 2n ** 63n - 1n;

/**
 * A decimal string within the range of a signed 64-bit integer, canonical: no sign on positive
 * numbers, no leading zeros, no `-0`. Written out digit by digit so the pattern alone (RxDB,
 * the gateway's JSON Schema) bounds the range.
 */
export const LONG_PATTERN = `^(?:0|-?[1-9][0-9]{0,17}|${nineteenDigitsUpTo(INT64_MAX.toString())}|-${nineteenDigitsUpTo((-INT64_MIN).toString())})$`;

/**
 * A decimal number as Decimal128 spells it (`1.10`, `-0`, `1E+3`, `NaN`, `Infinity`), or plain
 * digits with an optional fraction and exponent. Precision (34 significant digits) and exponent
 * range are checked where the value is converted (protocol/bson-values.ts).
 */
export const DECIMAL_PATTERN = '^-?(?:[0-9]+(?:\\.[0-9]+)?(?:[eE][-+]?[0-9]{1,5})?|Infinity|NaN)$';
/** Longest decimal string accepted: 34 digits, a sign, a point, an exponent, and room for leading zeros. */
export const DECIMAL_MAX_LENGTH = 128;

/**
 * Standard base64 with padding, canonical: the bits a last group does not use are zero, so one
 * byte string has exactly one spelling.
 */
export const BASE64_PATTERN = '^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?$';

const OBJECT_ID_ANY_CASE = /^[0-9a-fA-F]{24}$/;
const UUID_ANY_CASE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const INTEGER_TEXT = /^-?[0-9]{1,40}$/;
const DECIMAL = new RegExp(DECIMAL_PATTERN);
const BASE64 = new RegExp(BASE64_PATTERN);

/** The ObjectId's canonical wire form (lowercase), or null if `value` is not 24 hex digits. */
export function normalizeObjectId(value: unknown): string | null {
  return typeof value === 'string' && OBJECT_ID_ANY_CASE.test(value) ? value.toLowerCase() : null;
}

/** The UUID's canonical wire form (lowercase 8-4-4-4-12), or null. */
export function normalizeUuid(value: unknown): string | null {
  return typeof value === 'string' && UUID_ANY_CASE.test(value) ? value.toLowerCase() : null;
}

/**
 * The canonical decimal string of a 64-bit integer given as a decimal string (leading zeros
 * allowed) or a safe JavaScript integer; null if it is neither or out of range.
 */
export function normalizeLong(value: unknown): string | null {
  if (typeof value === 'number') return Number.isSafeInteger(value) ? String(value === 0 ? 0 : value) : null;
  if (typeof value !== 'string' || !INTEGER_TEXT.test(value)) return null;
  const n = BigInt(value);
  return n < INT64_MIN || n > INT64_MAX ? null : n.toString();
}

/**
 * A decimal's wire form if `value` has its syntax (a string, or a finite number written the way
 * JavaScript writes it); null otherwise. Precision and range are the converter's to check.
 */
export function decimalText(value: unknown): string | null {
  const text = typeof value === 'number' && Number.isFinite(value) ? String(value) : value;
  return typeof text === 'string' && text.length <= DECIMAL_MAX_LENGTH && DECIMAL.test(text) ? text : null;
}

export function isCanonicalBase64(value: unknown): value is string {
  return typeof value === 'string' && BASE64.test(value);
}

/**
 * An alternation matching exactly the 19-digit decimal strings from 10^18 up to `bound` (itself
 * 19 digits): per position, the bound's digits so far and then a smaller digit, or the bound.
 */
function nineteenDigitsUpTo(bound: string): string {
  const alternatives: string[] = [];
  for (let i = 0; i < bound.length; i++) {
    const digit = Number(bound[i]);
    const lowest = i === 0 ? 1 : 0;
    if (digit > lowest) {
      const range = digit - 1 === lowest ? String(lowest) : `[${lowest}-${digit - 1}]`;
      const rest = bound.length - i - 1;
      alternatives.push(`${bound.slice(0, i)}${range}${rest > 0 ? `[0-9]{${rest}}` : ''}`);
    }
  }
  alternatives.push(bound);
  return `(?:${alternatives.join('|')})`;
}
