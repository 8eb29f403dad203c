// Field values between their wire form (JSON: GraphQL, RxDB, the sync protocol) and their stored
// form (BSON, exactly typed: an ObjectId stays an ObjectId, a Float a double even when it is 5.0),
// following the model through embedded objects and lists. Gateway-side only: it uses the
// driver's BSON classes (the client SDK needs only the JSON spellings, protocol/wire-values.ts).
//
//   scalar      stored (BSON)            wire (JSON)
//   ID, String  string                   string
//   ObjectId    ObjectId                 24 lowercase hex digits (uppercase accepted)
//   UUID        Binary subtype 4         8-4-4-4-12, lowercase (uppercase accepted)
//   Long        Int64                    decimal string, int64 range
//   Decimal     Decimal128               decimal string as Decimal128.toString() writes it
//   Binary      Binary subtype 0         base64 (canonical, padded)
//   DateTime    date                     ISO 8601 with a time zone
//   Int         int32                    number
//   Float       double (always)          number
//   Mixed       any BSON value           JSON, with Extended JSON v2 wrappers for what JSON lacks
//   Dictionary  embedded document        object of Mixed values
//
// Everything arriving here comes from users. To the stored form (storedValue and what builds on
// it) nothing is converted half: a value that is not what its field's type says throws a
// BsonValueError naming the field, before anything is returned. Mixed values are read with an
// explicit whitelist of wrappers; any other key starting with `$`, keys with `.` or NUL, and
// `__proto__`, `constructor`, `prototype` are refused; depth and size are bounded. To the wire
// form (wireValue) never throws: a stored value of another type than its field's (another service
// wrote it) is passed on as it is, or as its Mixed wire form.
import { Binary, BSON, Decimal128, Double, Int32, Long, ObjectId, UUID } from 'mongodb';
import { PRIMARY_KEY, type CollectionModel, type FieldModel, type FieldType, type ScalarName } from './model.ts';
import { decimalText, isCanonicalBase64, normalizeLong, normalizeObjectId, normalizeUuid } from './wire-values.ts';

/**
 * A value its field's type cannot hold; `code` as PROTOCOL.md names a document that does not
 * match its type. Not a GraphQL error on purpose: the message quotes the value, which in a
 * document being written may be the stored value of a field the user cannot read, so it reaches
 * a client only where a caller turns it into one knowingly (validation, filters, scalars).
 */
export class BsonValueError extends Error {
  override name = 'BsonValueError';
  readonly code = 'SCHEMA_VIOLATION';

  constructor(
    message: string,
    /** Dotted path of the offending value in the document (`payload.items.2`), or null. */
    readonly field: string | null,
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------------------------------------
// What the store can hold

export interface BsonSupport {
  /**
   * Whether the store takes Decimal128 values. FerretDB v1 does not: a Decimal128 in a write or
   * a filter makes it drop the connection (measured on 1.24), so the gateway refuses them first.
   */
  decimal128: boolean;
}

let support: BsonSupport = { decimal128: true };

/** What the store the gateway talks to can hold, from its `buildInfo` answer. */
export function bsonSupportOf(buildInfo: Record<string, unknown>): BsonSupport {
  return { decimal128: !('ferretdbVersion' in buildInfo) };
}

/**
 * Sets what the store can hold, for this process (one gateway talks to one store). Until set:
 * MongoDB's full set of types.
 */
export function configureBsonSupport(next: Partial<BsonSupport>): void {
  support = { ...support, ...next };
}

export function currentBsonSupport(): BsonSupport {
  return support;
}

// ---------------------------------------------------------------------------------------------
// Limits on one Mixed (or Dictionary) value

/** How deep a Mixed value may nest (as JSONObject inputs: gateway/limits/json-depth.ts). */
export const MAX_MIXED_DEPTH = 32;
/** Values (scalars, objects, arrays, keys) in one Mixed value. */
export const MAX_MIXED_NODES = 100_000;

const UNSAFE_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
const WRAPPERS = ['$oid', '$uuid', '$numberLong', '$numberDecimal', '$numberDouble', '$date', '$binary'] as const;
const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;
const DATE_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d{1,9})?)?(Z|[+-]\d\d:\d\d)$/i;
const DOUBLE_TEXT = /^-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]{1,3})?$/;
/**
 * Binary subtypes a client may write: generic (00), UUID (04) and MD5 (05), 16 bytes each but
 * generic, and user-defined (80-ff). Not the deprecated ones (01-03), nor those whose bytes the
 * server or drivers interpret (06 encrypted, 07 compressed column, 08 sensitive, 09 vector).
 */
const WRITABLE_SUBTYPES = (subType: number) => subType === 0 || subType === 4 || subType === 5 || subType >= 0x80;

// ---------------------------------------------------------------------------------------------
// Documents

export interface StoredConversion {
  /**
   * Keep a value that cannot be converted as it is, instead of throwing. Only for comparing
   * states (a client's assumed state may be anything; a kept wire value equals no stored one),
   * never for what is written.
   */
  lenient?: boolean;
}

/**
 * The stored form of the model fields in `doc` (a document's fields without `id`, or an embedded
 * object's); keys that are not fields of the model are copied as they are. Throws BsonValueError.
 */
export function toStoredFields(fields: readonly FieldModel[], doc: Record<string, unknown>, options: StoredConversion = {}): Record<string, unknown> {
  return storedFields(fields, doc, options, '');
}

/** `at`: the path of the embedded object (empty at the top, where `id` is the key, not a field). */
function storedFields(fields: readonly FieldModel[], doc: Record<string, unknown>, options: StoredConversion, at: string): Record<string, unknown> {
  const out: Record<string, unknown> = { ...doc };
  for (const f of fields) {
    if (!Object.hasOwn(doc, f.name) || (at === '' && f.name === PRIMARY_KEY)) continue;
    const value = doc[f.name];
    if (value === null || value === undefined || !needsConversion(f.type)) continue;
    const path = at ? `${at}.${f.name}` : f.name;
    try {
      out[f.name] = storedValue(f.type, value, path);
    } catch (error) {
      if (!options.lenient || !(error instanceof BsonValueError)) throw error;
    }
  }
  return out;
}

/**
 * The wire form of a stored document's model fields (not `id`), written into `out` (fields of
 * no model, another service's, are left out): one object per document read, not three.
 */
export function putWireFields(fields: readonly FieldModel[], stored: Record<string, unknown>, out: Record<string, unknown>): void {
  for (const f of fields) {
    if (f.name === PRIMARY_KEY || !Object.hasOwn(stored, f.name)) continue;
    const value = stored[f.name];
    out[f.name] = value !== null && value !== undefined && needsConversion(f.type) ? wireValue(f.type, value) : value;
  }
}

/** The wire form of an embedded object's model fields (others copied as they are). */
function embeddedWireFields(fields: readonly FieldModel[], stored: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...stored };
  for (const f of fields) {
    if (!Object.hasOwn(stored, f.name)) continue;
    const value = stored[f.name];
    if (value !== null && value !== undefined && needsConversion(f.type)) out[f.name] = wireValue(f.type, value);
  }
  return out;
}

/**
 * What is wrong with the values of a wire document (the codec's part of validation: what JSON
 * Schema cannot say, such as a Long out of range, a Decimal past 34 digits, a forbidden key in a
 * Mixed value), or null. `ignore`: top-level fields not to report on (a user's hidden fields).
 */
export function wireDocumentProblem(
  collection: CollectionModel,
  doc: Record<string, unknown>,
  ignore?: (field: string) => boolean,
): { field: string | null; message: string } | null {
  for (const f of collection.fields) {
    if (!Object.hasOwn(doc, f.name) || ignore?.(f.name)) continue;
    const value = doc[f.name];
    if (value === null || value === undefined) continue;
    try {
      if (f.name === PRIMARY_KEY) toStoredId(collection, value as string);
      else if (needsConversion(f.type) || f.type.kind === 'enum') storedValue(f.type, value, f.name);
    } catch (error) {
      if (error instanceof BsonValueError) return { field: error.field, message: `${collection.typeName}.${error.message}` };
      throw error;
    }
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Primary keys

/** The scalar of a collection's primary key: ID, ObjectId, UUID or Long. */
export function keyScalar(collection: CollectionModel): ScalarName {
  const id = collection.fields.find((f) => f.name === PRIMARY_KEY);
  return id?.type.kind === 'scalar' ? id.type.name : 'ID';
}

/** The stored `_id` for a wire id, with the key's BSON type. Throws BsonValueError for a malformed id. */
export function toStoredId(collection: CollectionModel, wireId: string): unknown {
  const type = keyScalar(collection);
  if (type === 'ID') {
    if (typeof wireId !== 'string' || wireId.length === 0) throw new BsonValueError(`${PRIMARY_KEY} must be a non-empty string, got ${describe(wireId)}`, PRIMARY_KEY);
    return wireId;
  }
  return storedValue({ kind: 'scalar', name: type }, wireId, PRIMARY_KEY);
}

/**
 * The wire id of a stored `_id`. Throws BsonValueError for an `_id` of another type than the
 * key's (a document another service wrote): such a document cannot be addressed by its wire id.
 */
export function toWireId(collection: CollectionModel, storedId: unknown): string {
  const type = keyScalar(collection);
  if (type === 'ID') {
    if (typeof storedId === 'string') return storedId;
  } else if (isStoredIdOf(collection, storedId)) {
    return wireValue({ kind: 'scalar', name: type }, storedId) as string;
  }
  // The stored value is not quoted: it may belong to a document the asking user cannot read.
  throw new BsonValueError(`${collection.typeName}: a stored _id of type ${storedTypeName(storedId)} is not ${article(type)} ${type}`, PRIMARY_KEY);
}

/** Whether a stored `_id` has the collection's key type (a Long key also takes integral numbers). */
export function isStoredIdOf(collection: CollectionModel, storedId: unknown): boolean {
  switch (keyScalar(collection)) {
    case 'ID':
      return typeof storedId === 'string';
    case 'ObjectId':
      return bsonType(storedId) === 'ObjectId';
    case 'UUID':
      return uuidText(storedId) !== null;
    case 'Long':
      return longText(storedId) !== null;
    default:
      return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Values

/** Whether values of this type differ between the wire and the store (else they pass as they are). */
export function needsConversion(type: FieldType): boolean {
  let known = conversionNeeded.get(type);
  if (known === undefined) {
    known =
      type.kind === 'scalar'
        ? !['ID', 'String', 'Boolean'].includes(type.name) // Int too: an int32 read unpromoted is an Int32
        : type.kind === 'object'
          ? type.fields.some((f) => needsConversion(f.type))
          : type.kind === 'list'
            ? needsConversion(type.of)
            : false;
    conversionNeeded.set(type, known);
  }
  return known;
}
const conversionNeeded = new WeakMap<FieldType, boolean>();

/**
 * The stored (BSON) form of a wire value of `type`; `path` names it in errors. Null stays null.
 * A value already in stored form is returned as it is. Throws BsonValueError.
 */
export function storedValue(type: FieldType, wire: unknown, path = ''): unknown {
  if (wire === null || wire === undefined) return wire;
  switch (type.kind) {
    case 'scalar':
      return storedScalar(type.name, wire, path);
    case 'enum':
      if (typeof wire === 'string' && type.values.includes(wire)) return wire;
      throw new BsonValueError(`${path} must be one of ${type.values.join(', ')}, got ${describe(wire)}`, path || null);
    case 'object':
      if (!isPlainObject(wire)) throw new BsonValueError(`${path} must be an object, got ${describe(wire)}`, path || null);
      return storedFields(type.fields, wire, {}, path);
    case 'list':
      if (!Array.isArray(wire)) throw new BsonValueError(`${path} must be a list, got ${describe(wire)}`, path || null);
      return needsConversion(type.of) ? wire.map((v, i) => storedValue(type.of, v, `${path}.${i}`)) : wire;
  }
}

/** The wire (JSON) form of a stored value of `type`. Never throws. */
export function wireValue(type: FieldType, stored: unknown): unknown {
  if (stored === null || stored === undefined) return stored;
  switch (type.kind) {
    case 'scalar':
      return wireScalar(type.name, stored);
    case 'enum':
      return stored;
    case 'object':
      return isPlainObject(stored) && needsConversion(type) ? embeddedWireFields(type.fields, stored) : stored;
    case 'list':
      return Array.isArray(stored) && needsConversion(type.of) ? stored.map((v) => wireValue(type.of, v)) : stored;
  }
}

function storedScalar(name: ScalarName, wire: unknown, path: string): unknown {
  // (refuseValue, not a closure made per call: every pushed value passes here.)
  switch (name) {
    case 'ID':
    case 'String':
      return typeof wire === 'string' ? wire : refuseValue(path, wire, 'a string');
    case 'Boolean':
      return typeof wire === 'boolean' ? wire : refuseValue(path, wire, 'true or false');
    case 'Int':
      if (typeof wire === 'number' && Number.isInteger(wire) && wire >= INT32_MIN && wire <= INT32_MAX) return wire;
      if (bsonType(wire) === 'Int32') return (wire as Int32).value;
      return refuseValue(path, wire, 'an integer from -2^31 to 2^31-1');
    case 'Float':
      // Always a double, so 5.0 is stored as the double 5.0 and never becomes an int32.
      if (typeof wire === 'number') return new Double(wire);
      if (bsonType(wire) === 'Double') return wire;
      return refuseValue(path, wire, 'a number');
    case 'DateTime': {
      if (wire instanceof Date && !Number.isNaN(wire.getTime())) return wire;
      const date = typeof wire === 'string' && DATE_TIME.test(wire) ? new Date(wire) : null;
      return date && !Number.isNaN(date.getTime()) ? date : refuseValue(path, wire, 'an ISO 8601 date-time with a time zone');
    }
    case 'ObjectId': {
      if (bsonType(wire) === 'ObjectId') return wire;
      const hex = normalizeObjectId(wire);
      return hex ? ObjectId.createFromHexString(hex) : refuseValue(path, wire, 'an ObjectId (24 hex digits)');
    }
    case 'UUID': {
      if (uuidText(wire) !== null && typeof wire !== 'string') return wire;
      const text = normalizeUuid(wire);
      return text ? new UUID(text) : refuseValue(path, wire, 'a UUID (8-4-4-4-12 hex digits)');
    }
    case 'Long': {
      if (bsonType(wire) === 'Long') return wire;
      const text = normalizeLong(wire);
      return text ? Long.fromString(text) : refuseValue(path, wire, 'a 64-bit integer as a decimal string (from -9223372036854775808 to 9223372036854775807)');
    }
    case 'Decimal':
      if (bsonType(wire) === 'Decimal128' && support.decimal128) return wire;
      return storedDecimal(wire, path);
    case 'Binary': {
      if (bsonType(wire) === 'Binary' && (wire as Binary).sub_type === 0) return wire;
      return isCanonicalBase64(wire) ? new Binary(Buffer.from(wire, 'base64'), 0) : refuseValue(path, wire, 'base64 (standard alphabet, padded)');
    }
    case 'Mixed':
      return mixedToStored(wire, path);
    case 'Dictionary':
      if (!isPlainObject(wire)) return refuseValue(path, wire, 'an object (a dictionary of string keys)');
      return storedDictionary(wire, path, { nodes: 0 });
  }
}

function refuseValue(path: string, wire: unknown, expected: string): never {
  throw new BsonValueError(`${path} must be ${expected}, got ${describe(wire)}`, path || null);
}

function storedDecimal(wire: unknown, path: string): Decimal128 {
  const text = typeof wire === 'string' ? decimalText(wire) : null;
  if (text === null) throw new BsonValueError(`${path} must be a decimal number as a string (e.g. "1.10", "-3E+5"), got ${describe(wire)}`, path || null);
  if (!support.decimal128) throw new BsonValueError(`${path}: this store (FerretDB v1) cannot hold Decimal values`, path || null);
  try {
    return Decimal128.fromString(text);
  } catch {
    throw new BsonValueError(`${path} must be a decimal with at most 34 significant digits and an exponent within Decimal128's range, got ${describe(wire)}`, path || null);
  }
}

function wireScalar(name: ScalarName, stored: unknown): unknown {
  const type = bsonType(stored);
  switch (name) {
    case 'ID':
    case 'String':
    case 'Boolean':
      return stored;
    case 'Int':
    case 'Float':
      if (type === 'Int32' || type === 'Double') return (stored as Int32 | Double).value;
      if (type === 'Long' || type === 'Decimal128') return Number(String(stored));
      return stored;
    case 'DateTime':
      if (stored instanceof Date) return Number.isNaN(stored.getTime()) ? null : stored.toISOString();
      return stored;
    case 'ObjectId':
      return type === 'ObjectId' ? (stored as ObjectId).toHexString() : stored;
    case 'UUID':
      return uuidText(stored) ?? stored;
    case 'Long':
      return longText(stored) ?? stored;
    case 'Decimal':
      if (type === 'Decimal128') return String(stored);
      if (typeof stored === 'number' && Number.isFinite(stored)) return String(stored);
      return longText(stored) ?? stored;
    case 'Binary':
      if (type === 'Binary') return (stored as Binary).toString('base64');
      if (stored instanceof Uint8Array) return Buffer.from(stored).toString('base64');
      return stored;
    case 'Mixed':
      return mixedToWire(stored);
    case 'Dictionary':
      return isPlainObject(stored) ? mapEntries(stored, mixedToWire) : mixedToWire(stored);
  }
}

// ---------------------------------------------------------------------------------------------
// Mixed

interface Budget {
  nodes: number;
}

/** A Mixed wire value in stored form. Throws BsonValueError (`path` names the value). */
export function mixedToStored(wire: unknown, path = ''): unknown {
  return decodeMixed(wire, path, { nodes: 0 }, 0);
}

function decodeMixed(wire: unknown, path: string, budget: Budget, depth: number): unknown {
  if (++budget.nodes > MAX_MIXED_NODES) throw new BsonValueError(`${path} holds more than ${MAX_MIXED_NODES} values`, path || null);
  if (wire === null || typeof wire === 'boolean' || typeof wire === 'string') return wire;
  if (typeof wire === 'number') {
    if (!Number.isFinite(wire)) throw new BsonValueError(`${path}: ${wire} needs {"$numberDouble": "${wire}"}`, path || null);
    return Number.isInteger(wire) && wire >= INT32_MIN && wire <= INT32_MAX ? new Int32(wire) : new Double(wire);
  }
  if (depth >= MAX_MIXED_DEPTH) throw new BsonValueError(`${path} nests deeper than ${MAX_MIXED_DEPTH} levels`, path || null);
  if (Array.isArray(wire)) return wire.map((v, i) => decodeMixed(v, join(path, String(i)), budget, depth + 1));
  if (!isPlainObject(wire)) throw new BsonValueError(`${path} must be a JSON value, got ${describe(wire)}`, path || null);
  const keys = Object.keys(wire);
  if (keys.some((k) => k.startsWith('$'))) return decodeWrapper(wire, keys, path);
  return storedDictionary(wire, path, budget, depth);
}

/** An embedded document of Mixed values (a Dictionary, or an object inside a Mixed). */
function storedDictionary(wire: Record<string, unknown>, path: string, budget: Budget, depth = 0): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(wire)) {
    const at = join(path, key);
    const problem = keyProblem(key);
    if (problem) throw new BsonValueError(`${at}: the key ${JSON.stringify(key)} ${problem}`, at || null);
    ++budget.nodes;
    out[key] = decodeMixed(wire[key], at, budget, depth + 1);
  }
  return out;
}

function keyProblem(key: string): string | null {
  if (key === '') return 'is empty';
  if (key.startsWith('$')) return `is not allowed: keys starting with "$" may only be one of the Extended JSON wrappers ${WRAPPERS.join(', ')}, alone in their object`;
  if (key.includes('.')) return 'contains "."';
  if (key.includes('\u0000')) return 'contains NUL';
  if (UNSAFE_KEYS.has(key)) return 'is not allowed';
  return null;
}

function decodeWrapper(wire: Record<string, unknown>, keys: string[], path: string): unknown {
  const key = keys[0]!;
  const at = join(path, key);
  if (keys.length !== 1 || !(WRAPPERS as readonly string[]).includes(key)) {
    const bad = keys.find((k) => k.startsWith('$') && (keys.length !== 1 || !(WRAPPERS as readonly string[]).includes(k)))!;
    throw new BsonValueError(`${join(path, bad)}: the key ${JSON.stringify(bad)} ${keyProblem(bad) ?? 'is not allowed'}`, join(path, bad));
  }
  const value = wire[key];
  const refuse = (expected: string): never => {
    throw new BsonValueError(`${at} must be ${expected}, got ${describe(value)}`, at);
  };
  switch (key as (typeof WRAPPERS)[number]) {
    case '$oid': {
      const hex = normalizeObjectId(value);
      return hex ? ObjectId.createFromHexString(hex) : refuse('24 hex digits');
    }
    case '$uuid': {
      const text = normalizeUuid(value);
      return text ? new UUID(text) : refuse('a UUID (8-4-4-4-12 hex digits)');
    }
    case '$numberLong': {
      const text = typeof value === 'string' ? normalizeLong(value) : null;
      return text ? Long.fromString(text) : refuse('a 64-bit integer as a decimal string');
    }
    case '$numberDecimal':
      return storedDecimal(value, at);
    case '$numberDouble': {
      if (value === 'NaN' || value === 'Infinity' || value === '-Infinity') return new Double(Number(value));
      return typeof value === 'string' && DOUBLE_TEXT.test(value) ? new Double(Number(value)) : refuse('a number as a string ("5.0", "NaN", "Infinity", "-Infinity")');
    }
    case '$date': {
      const date = typeof value === 'string' && DATE_TIME.test(value) ? new Date(value) : null;
      return date && !Number.isNaN(date.getTime()) ? date : refuse('an ISO 8601 date-time with a time zone');
    }
    case '$binary': {
      if (!isPlainObject(value) || Object.keys(value).length !== 2 || !isCanonicalBase64(value.base64) || typeof value.subType !== 'string' || !/^[0-9a-fA-F]{2}$/.test(value.subType)) {
        return refuse('{"base64": "<canonical base64>", "subType": "<2 hex digits>"}');
      }
      const subType = Number.parseInt(value.subType, 16);
      const bytes = Buffer.from(value.base64, 'base64');
      if (!WRITABLE_SUBTYPES(subType)) return refuse('a binary of subtype 00, 04, 05 or 80-ff');
      if ((subType === 4 || subType === 5) && bytes.length !== 16) return refuse(`16 bytes for subtype 0${subType}`);
      return subType === 4 ? new UUID(bytes) : new Binary(bytes, subType);
    }
  }
}

/** A stored value as Mixed's wire form (Extended JSON v2 wrappers for what JSON lacks). Never throws. */
export function mixedToWire(stored: unknown): unknown {
  if (stored === null || stored === undefined) return null;
  switch (typeof stored) {
    case 'string':
    case 'boolean':
      return stored;
    case 'number':
      // A promoted int32, double or small int64 (the driver's default): an integer within int32
      // as JSON (it reads back as an int32), anything else as a double would be.
      return Number.isInteger(stored) && !Object.is(stored, -0) && stored >= INT32_MIN && stored <= INT32_MAX ? stored : plainOrWrapped(stored);
    case 'bigint':
      return { $numberLong: stored.toString() };
    case 'object':
      break;
    default:
      return null;
  }
  if (stored instanceof Date) return Number.isNaN(stored.getTime()) ? null : { $date: stored.toISOString() };
  if (Array.isArray(stored)) return stored.map(mixedToWire);
  switch (bsonType(stored)) {
    case 'Int32':
      return (stored as Int32).value;
    case 'Double':
      return plainOrWrapped((stored as Double).value);
    case 'Long':
      return { $numberLong: String(stored) };
    case 'Decimal128':
      return { $numberDecimal: String(stored) };
    case 'ObjectId':
      return { $oid: (stored as ObjectId).toHexString() };
    case 'Binary': {
      const uuid = uuidText(stored);
      if (uuid) return { $uuid: uuid };
      const b = stored as Binary;
      return { $binary: { base64: b.toString('base64'), subType: b.sub_type.toString(16).padStart(2, '0') } };
    }
    case undefined:
      if (stored instanceof Uint8Array) return { $binary: { base64: Buffer.from(stored).toString('base64'), subType: '00' } };
      return mapEntries(stored as Record<string, unknown>, mixedToWire);
    default:
      // Timestamp, regular expression, code, MinKey/MaxKey, DBRef…: shown in canonical Extended
      // JSON; a client cannot write them back (they are not among the wrappers it may send).
      return BSON.EJSON.serialize(stored, { relaxed: false });
  }
}

/** A double: plain JSON when that reads back as a double (a non-integral finite number), else {"$numberDouble"}. */
function plainOrWrapped(value: number): unknown {
  return Number.isFinite(value) && !Number.isInteger(value) ? value : doubleWrapper(value);
}

function doubleWrapper(value: number): { $numberDouble: string } {
  if (Number.isNaN(value)) return { $numberDouble: 'NaN' };
  if (!Number.isFinite(value)) return { $numberDouble: value > 0 ? 'Infinity' : '-Infinity' };
  if (Object.is(value, -0)) return { $numberDouble: '-0.0' };
  return { $numberDouble: Number.isInteger(value) ? value.toFixed(1) : String(value) };
}

// ---------------------------------------------------------------------------------------------
// Helpers

function bsonType(value: unknown): string | undefined {
  return typeof value === 'object' && value !== null ? ((value as { _bsontype?: unknown })._bsontype as string | undefined) : undefined;
}

/** The canonical text of a stored UUID (Binary subtype 4, 16 bytes), or null. */
function uuidText(value: unknown): string | null {
  if (bsonType(value) !== 'Binary') return null;
  const b = value as Binary;
  if (b.sub_type !== 4 || b.length() !== 16) return null;
  const hex = b.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The decimal string of an integral stored value (Long, Int32, an integral Double or number, bigint), or null. */
function longText(value: unknown): string | null {
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'number') return Number.isSafeInteger(value) ? String(value === 0 ? 0 : value) : null;
  switch (bsonType(value)) {
    case 'Long':
      return String(value);
    case 'Int32':
      return String((value as Int32).value);
    case 'Double': {
      const v = (value as Double).value;
      return Number.isSafeInteger(v) ? String(v === 0 ? 0 : v) : null;
    }
    default:
      return null;
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

function mapEntries(obj: Record<string, unknown>, f: (v: unknown) => unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(obj)) {
    // Stored keys are the store's; these three would reach a prototype on the way out.
    if (UNSAFE_KEYS.has(key)) continue;
    out[key] = f(obj[key]);
  }
  return out;
}

function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  let text: string;
  try {
    text = typeof value === 'bigint' ? value.toString() : (JSON.stringify(value) ?? String(value));
  } catch {
    text = Object.prototype.toString.call(value);
  }
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function storedTypeName(value: unknown): string {
  return bsonType(value) ?? (value === null ? 'null' : typeof value);
}

function article(word: string): string {
  return /^[AEIOU]/.test(word) && !word.startsWith('U') ? 'an' : 'a';
}
