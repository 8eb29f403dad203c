// Unit: the BSON value codec (protocol/bson-values.ts). Every scalar both ways; exact BSON types
// after a round trip through the driver's serializer (promoteValues: false shows them as stored);
// Mixed's Extended JSON wrappers; keys; hostile input refused with the field named; the match
// form mingo compares in memory (protocol/match-form.ts); RQL's oid() and uuid() literals.
import fc from 'fast-check';
import { Binary, BSON, Decimal128, Double, Int32, Long, ObjectId, UUID } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { toFilter } from '../client-sdk/queries.ts';
import { compileFilter } from '../gateway/query/filter.ts';
import { toStoredForm, toWireForm } from '../gateway/store/collection-store.ts';
import { createValidator } from '../gateway/sync/validate.ts';
import {
  BsonValueError,
  configureBsonSupport,
  isStoredIdOf,
  keyScalar,
  MAX_MIXED_DEPTH,
  mixedToStored,
  mixedToWire,
  storedValue,
  toStoredFields,
  toStoredId,
  putWireFields,
  toWireId,
  wireDocumentProblem,
  wireValue,
} from '../protocol/bson-values.ts';
import { changePaths, mergedFields, recordOutsideChange } from '../protocol/field-state.ts';
import { formatStamp } from '../protocol/hlc.ts';
import { exactDecimal, matchForm, numericKey } from '../protocol/match-form.ts';
import { documentJsonSchema, loadModel, type FieldType, type ScalarName } from '../protocol/model.ts';
import { parseRql, RqlSyntaxError } from '../protocol/rql.ts';
import { LONG_PATTERN } from '../protocol/wire-values.ts';

const SDL = /* GraphQL */ `
  directive @collection(name: String!) on OBJECT
  directive @queryable on FIELD_DEFINITION
  directive @addWinsSet on FIELD_DEFINITION
  type Item @collection(name: "items") {
    id: ObjectId!
    ref: ObjectId @queryable
    key: UUID @queryable
    big: Long @queryable
    price: Decimal @queryable
    blob: Binary
    any: Mixed
    requiredAny: Mixed!
    dict: Dictionary
    ratio: Float @queryable
    count: Int @queryable
    at: DateTime @queryable
    bigs: [Long!] @queryable
    refs: [ObjectId!] @addWinsSet
    part: Part
    parts: [Part!]
  }
  type Part { id: UUID, when: DateTime, weight: Float, extra: Mixed }
  type ByUuid @collection(name: "byUuid") { id: UUID! }
  type ByLong @collection(name: "byLong") { id: Long! }
  type ById @collection(name: "byId") { id: ID! }
`;
const model = loadModel(SDL);
const items = model.collections.find((c) => c.name === 'items')!;
const byUuid = model.collections.find((c) => c.name === 'byUuid')!;
const byLong = model.collections.find((c) => c.name === 'byLong')!;
const byId = model.collections.find((c) => c.name === 'byId')!;

const scalar = (name: ScalarName): FieldType => ({ kind: 'scalar', name });
/** Through BSON and back, every value in its exact BSON class. */
const roundTrip = <T>(doc: T): T => BSON.deserialize(BSON.serialize(doc as BSON.Document), { promoteValues: false }) as T;
const bsonBytes = (value: unknown) => Buffer.from(BSON.serialize({ v: value }));
const bsonType = (v: unknown) => (v as { _bsontype?: string })._bsontype;

const OID = '5f1d7f3e9c8b7a6d5e4f3a21';
const UUID_TEXT = 'f47ac10b-58cc-4372-a567-0e02b2c3d479';

function errorOf(run: () => unknown): BsonValueError {
  try {
    run();
  } catch (error) {
    if (error instanceof BsonValueError) return error;
    throw error;
  }
  throw new Error('expected a BsonValueError');
}

describe('scalars, both ways, with their exact BSON types', () => {
  it.each([
    ['ObjectId', OID.toUpperCase(), 'ObjectId', OID],
    ['UUID', UUID_TEXT.toUpperCase(), 'Binary', UUID_TEXT],
    ['Long', '9007199254740993', 'Long', '9007199254740993'],
    ['Long', '-9223372036854775808', 'Long', '-9223372036854775808'],
    ['Long', '007', 'Long', '7'],
    ['Decimal', '1.10', 'Decimal128', '1.10'],
    ['Decimal', '-0', 'Decimal128', '-0'],
    ['Decimal', '1e3', 'Decimal128', '1E+3'],
    ['Decimal', 'NaN', 'Decimal128', 'NaN'],
    ['Binary', 'aGk=', 'Binary', 'aGk='],
    ['Float', 5, 'Double', 5],
    ['Float', 0.1, 'Double', 0.1],
  ] as const)('%s %j is stored as %s and read back as %j', (type, wire, bson, back) => {
    const stored = roundTrip({ v: storedValue(scalar(type), wire) }).v;
    expect(bsonType(stored)).toBe(bson);
    expect(wireValue(scalar(type), stored)).toEqual(back);
  });

  it('keeps subtypes: UUID is binary subtype 4, Binary subtype 0; a Float stays a double at 5.0', () => {
    const stored = roundTrip({ u: storedValue(scalar('UUID'), UUID_TEXT), b: storedValue(scalar('Binary'), 'AAE='), f: storedValue(scalar('Float'), 5) });
    expect((stored.u as Binary).sub_type).toBe(4);
    expect((stored.b as Binary).sub_type).toBe(0);
    expect(stored.f).toBeInstanceOf(Double);
    expect((stored.f as Double).value).toBe(5);
  });

  it('reads what the driver promotes by default (int32, double, small int64 as numbers) into the same wire forms', () => {
    const stored = BSON.deserialize(BSON.serialize({ l: Long.fromNumber(5), big: Long.fromString('9007199254740993'), f: new Double(5), i: new Int32(3) }));
    expect(stored.l).toBe(5);
    expect(wireValue(scalar('Long'), stored.l)).toBe('5');
    expect(wireValue(scalar('Long'), stored.big)).toBe('9007199254740993');
    expect(wireValue(scalar('Float'), stored.f)).toBe(5);
    expect(wireValue(scalar('Int'), stored.i)).toBe(3);
  });

  it('converts a whole document, through embedded objects and lists', () => {
    const wire = {
      id: OID,
      ref: OID,
      key: UUID_TEXT,
      big: '42',
      price: '19.99',
      blob: 'AP8=',
      any: { a: [1, 2.5, { $numberDouble: '5.0' }] },
      requiredAny: 'x',
      dict: { n: { $numberLong: '7' } },
      ratio: 2,
      count: 3,
      at: '2026-01-01T00:00:00+01:00',
      bigs: ['1', '-2'],
      part: { id: UUID_TEXT, when: '2026-01-02T00:00:00Z', weight: 1, extra: null },
      parts: [{ weight: 3 }],
      _deleted: false,
    };
    const stored = roundTrip<Record<string, unknown>>({ ...(toStoredForm(items, wire as never) as Record<string, unknown>), _sync: { seq: 1, updatedAt: new Date(0), deleted: false } });
    expect(stored._id).toBeInstanceOf(ObjectId);
    expect(stored.ref).toBeInstanceOf(ObjectId);
    expect(bsonType(stored.big)).toBe('Long');
    expect(bsonType(stored.price)).toBe('Decimal128');
    expect(stored.ratio).toBeInstanceOf(Double);
    expect(stored.count).toBeInstanceOf(Int32);
    expect(stored.at).toEqual(new Date('2025-12-31T23:00:00Z'));
    expect((stored.bigs as unknown[]).map(bsonType)).toEqual(['Long', 'Long']);
    const part = stored.part as Record<string, unknown>;
    expect((part.id as Binary).sub_type).toBe(4);
    expect(part.weight).toBeInstanceOf(Double);
    expect(((stored.parts as Array<Record<string, unknown>>)[0]!.weight as Double)._bsontype).toBe('Double');
    const dict = stored.dict as Record<string, unknown>;
    expect(bsonType(dict.n)).toBe('Long');
    const any = stored.any as { a: unknown[] };
    expect(any.a.map(bsonType)).toEqual(['Int32', 'Double', 'Double']);

    expect(toWireForm(items, stored as never)).toEqual({
      ...wire,
      at: '2025-12-31T23:00:00.000Z',
      part: { ...wire.part, when: '2026-01-02T00:00:00.000Z' },
    });
  });

  it('leaves documents of the existing model as they were (strings, ints, booleans pass through)', () => {
    const tasks = loadModel(`directive @collection(name: String!) on OBJECT
      type Task @collection(name: "tasks") { id: ID!, title: String!, n: Int, ok: Boolean, tags: [String!] }`).collections[0]!;
    const wire = { id: 't1', title: 'x', n: 2, ok: true, tags: ['a'], _deleted: false };
    const stored = toStoredForm(tasks, wire as never);
    expect(stored).toEqual({ _id: 't1', title: 'x', n: 2, ok: true, tags: ['a'] });
    expect((stored as Record<string, unknown>).tags).toBe(wire.tags);
  });
});

describe('round trips (properties)', () => {
  it('Long: every int64, as a decimal string, stored as Int64 and read back exactly', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), (n) => {
        const stored = roundTrip({ v: storedValue(scalar('Long'), n.toString()) }).v;
        expect(bsonType(stored)).toBe('Long');
        expect(wireValue(scalar('Long'), stored)).toBe(n.toString());
        expect(new RegExp(LONG_PATTERN).test(n.toString())).toBe(true);
      }),
    );
  });

  it('Long: the wire pattern accepts exactly the int64 range, canonically written', () => {
    const pattern = new RegExp(LONG_PATTERN);
    fc.assert(
      fc.property(fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }), (n) => {
        expect(pattern.test(n.toString())).toBe(n >= -(2n ** 63n) && n <= 2n ** 63n - 1n);
      }),
      { numRuns: 2_000 },
    );
    for (const s of ['9223372036854775807', '-9223372036854775808']) expect(pattern.test(s)).toBe(true);
    for (const s of ['9223372036854775808', '-9223372036854775809', '-0', '01', '+1', '', '1.0', '1e3']) expect(pattern.test(s)).toBe(false);
  });

  it('Decimal: what Decimal128 writes reads back as the same Decimal128', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(10n ** 34n) + 1n, max: 10n ** 34n - 1n }), fc.integer({ min: -6176, max: 6111 }), (coefficient, exponent) => {
        const original = Decimal128.fromString(`${coefficient}E${exponent}`);
        const wire = wireValue(scalar('Decimal'), original) as string;
        const stored = roundTrip({ v: storedValue(scalar('Decimal'), wire) }).v as Decimal128;
        expect(bsonType(stored)).toBe('Decimal128');
        expect(Buffer.from(stored.bytes)).toEqual(Buffer.from(original.bytes));
      }),
    );
  });

  it('Float: every double stays a double, integral ones included', () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (x) => {
        const stored = roundTrip({ v: storedValue(scalar('Float'), x) }).v;
        expect(stored).toBeInstanceOf(Double);
        expect(Object.is(wireValue(scalar('Float'), stored), x)).toBe(true);
      }),
    );
  });

  it('ObjectId, UUID and Binary: any bytes, any case in, canonical out', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 12, maxLength: 12 }), fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.uint8Array({ maxLength: 64 }), fc.boolean(), (oid, uuid, bytes, upper) => {
        const hex = Buffer.from(oid).toString('hex');
        const u = new UUID(Buffer.from(uuid)).toHexString(true);
        const base64 = Buffer.from(bytes).toString('base64');
        const stored = roundTrip({
          o: storedValue(scalar('ObjectId'), upper ? hex.toUpperCase() : hex),
          u: storedValue(scalar('UUID'), upper ? u.toUpperCase() : u),
          b: storedValue(scalar('Binary'), base64),
        });
        expect(wireValue(scalar('ObjectId'), stored.o)).toBe(hex);
        expect(wireValue(scalar('UUID'), stored.u)).toBe(u);
        expect(wireValue(scalar('Binary'), stored.b)).toBe(base64);
        expect(Buffer.from((stored.b as Binary).buffer.subarray(0, (stored.b as Binary).position))).toEqual(Buffer.from(bytes));
      }),
    );
  });

  /** Any BSON value a Mixed may hold and a client may write, nested. */
  const mixedValue = fc.letrec((tie) => ({
    leaf: fc.oneof(
      fc.constant(null),
      fc.boolean(),
      fc.string({ maxLength: 8 }),
      fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }).map((n) => new Int32(n)),
      fc.double().map((x) => new Double(x)),
      fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map((n) => Long.fromBigInt(n)),
      fc.tuple(fc.bigInt({ min: -(10n ** 34n) + 1n, max: 10n ** 34n - 1n }), fc.integer({ min: -100, max: 100 })).map(([c, e]) => Decimal128.fromString(`${c}E${e}`)),
      fc.uint8Array({ minLength: 12, maxLength: 12 }).map((b) => new ObjectId(Buffer.from(b))),
      fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => new UUID(Buffer.from(b))),
      fc.uint8Array({ maxLength: 16 }).map((b) => new Binary(Buffer.from(b), 0)),
      fc.integer({ min: 0, max: 253_402_300_799_999 }).map((ms) => new Date(ms)),
    ),
    value: fc.oneof({ depthSize: 'small' }, tie('leaf'), fc.array(tie('value'), { maxLength: 4 }), fc.dictionary(fc.string({ minLength: 1, maxLength: 6 }).filter((k) => !k.startsWith('$') && !k.includes('.') && !k.includes('\u0000') && !['__proto__', 'constructor', 'prototype'].includes(k)), tie('value'), { maxKeys: 4 })),
  })).value;

  it('Mixed: any value survives wire and store exactly (the same BSON bytes)', () => {
    fc.assert(
      fc.property(mixedValue, (value) => {
        const wire = JSON.parse(JSON.stringify(mixedToWire(value))) as unknown;
        const stored = roundTrip({ v: mixedToStored(wire) }).v;
        expect(bsonBytes(stored)).toEqual(bsonBytes(value));
        expect(mixedToWire(stored)).toEqual(wire);
      }),
      { numRuns: 300 },
    );
  });

  it('Mixed: plain integers within int32 are int32, other numbers doubles; integral doubles get a wrapper', () => {
    expect(mixedToStored([5, 2 ** 31, 2.5, -0])).toEqual([new Int32(5), new Double(2 ** 31), new Double(2.5), new Int32(0)]);
    expect(mixedToWire([new Double(5), new Double(-0), new Double(Number.NaN), new Double(Number.POSITIVE_INFINITY), new Double(1e21), new Double(2.5), new Int32(5)])).toEqual([
      { $numberDouble: '5.0' },
      { $numberDouble: '-0.0' },
      { $numberDouble: 'NaN' },
      { $numberDouble: 'Infinity' },
      { $numberDouble: '1e+21' },
      2.5,
      5,
    ]);
    expect(mixedToWire([Long.fromNumber(5), Decimal128.fromString('1.10'), new ObjectId(OID), new UUID(UUID_TEXT), new Binary(Buffer.from('hi'), 0), new Date(0)])).toEqual([
      { $numberLong: '5' },
      { $numberDecimal: '1.10' },
      { $oid: OID },
      { $uuid: UUID_TEXT },
      { $binary: { base64: 'aGk=', subType: '00' } },
      { $date: '1970-01-01T00:00:00.000Z' },
    ]);
  });

  it('Dictionary: an embedded document of Mixed values', () => {
    const stored = roundTrip({ v: storedValue(scalar('Dictionary'), { a: 1, b: { $oid: OID }, c: { d: [true] } }) }).v as Record<string, unknown>;
    expect(stored.a).toBeInstanceOf(Int32);
    expect(stored.b).toBeInstanceOf(ObjectId);
    expect(wireValue(scalar('Dictionary'), stored)).toEqual({ a: 1, b: { $oid: OID }, c: { d: [true] } });
  });
});

describe('hostile input is refused, naming the field', () => {
  const hostileJson = [
    ['$where', '{"$where": "sleep(1000)"}', 'any.$where'],
    ['$regex', '{"a": {"$regex": ".*"}}', 'any.a.$regex'],
    ['$code', '{"$code": "x"}', 'any.$code'],
    ['$minKey', '{"$minKey": 1}', 'any.$minKey'],
    ['a wrapper with another key', '{"$oid": "5f1d7f3e9c8b7a6d5e4f3a21", "x": 1}', 'any.$oid'],
    ['a dotted key', '{"a.b": 1}', 'any.a.b'],
    ['a NUL in a key', '{"a\\u0000b": 1}', 'any.a\u0000b'],
    ['an empty key', '{"": 1}', 'any.'],
    ['__proto__', '{"__proto__": {"polluted": true}}', 'any.__proto__'],
    ['constructor', '{"x": [{"constructor": {"prototype": 1}}]}', 'any.x.0.constructor'],
    ['prototype', '{"prototype": 1}', 'any.prototype'],
    ['a malformed $oid', '{"$oid": "xyz"}', 'any.$oid'],
    ['a $numberLong out of range', '{"$numberLong": "9223372036854775808"}', 'any.$numberLong'],
    ['a $numberLong as a number', '{"$numberLong": 5}', 'any.$numberLong'],
    ['a $numberDecimal past 34 digits', '{"$numberDecimal": "12345678901234567890123456789012345"}', 'any.$numberDecimal'],
    ['a $numberDouble that is no number', '{"$numberDouble": "five"}', 'any.$numberDouble'],
    ['a $date without a time zone', '{"$date": "2026-01-01T00:00:00"}', 'any.$date'],
    ['an encrypted $binary', '{"$binary": {"base64": "AAAA", "subType": "06"}}', 'any.$binary'],
    ['a $binary UUID of 3 bytes', '{"$binary": {"base64": "AAAA", "subType": "04"}}', 'any.$binary'],
    ['a $binary with non-canonical base64', '{"$binary": {"base64": "QR==", "subType": "00"}}', 'any.$binary'],
    ['a $uuid without dashes', '{"$uuid": "f47ac10b58cc4372a5670e02b2c3d479"}', 'any.$uuid'],
  ] as const;

  it.each(hostileJson)('Mixed with %s', (_what, json, field) => {
    const doc = { id: OID, requiredAny: 1, any: JSON.parse(json) as unknown };
    const problem = wireDocumentProblem(items, doc);
    expect(problem?.field).toBe(field);
    expect(problem?.message).toMatch(/^Item\.any/);
    expect(() => toStoredForm(items, { ...doc, _deleted: false } as never)).toThrow(BsonValueError);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('bounds depth and size', () => {
    let deep: unknown = 1;
    for (let i = 0; i < MAX_MIXED_DEPTH + 1; i++) deep = [deep];
    expect(errorOf(() => mixedToStored(deep, 'any')).message).toMatch(/nests deeper than 32/);
    expect(errorOf(() => mixedToStored(Array.from({ length: 100_001 }, () => 1), 'any')).message).toMatch(/more than 100000 values/);
    let fine: unknown = 1;
    for (let i = 0; i < MAX_MIXED_DEPTH - 1; i++) fine = { a: fine };
    expect(() => mixedToStored(fine)).not.toThrow();
  });

  it.each([
    ['ref', 'xyz', /Item\.ref must be an ObjectId \(24 hex digits\), got "xyz"/],
    ['key', 'not-a-uuid', /Item\.key must be a UUID/],
    ['big', '9223372036854775808', /Item\.big must be a 64-bit integer/],
    ['price', '1.2.3', /Item\.price must be a decimal number/],
    ['price', '1E+9999', /Item\.price must be a decimal with at most 34 significant digits/],
    ['blob', 'not base64!', /Item\.blob must be base64/],
    ['dict', { $oid: OID }, /Item\.dict\.\$oid: the key "\$oid" is not allowed/],
    ['dict', [1], /Item\.dict must be an object/],
    ['bigs', ['1', 'x'], /Item\.bigs\.1 must be a 64-bit integer/],
    ['part', { id: 'x' }, /Item\.part\.id must be a UUID/],
  ] as const)('%s = %j', (field, value, message) => {
    const problem = wireDocumentProblem(items, { id: OID, requiredAny: 1, [field]: value });
    expect(problem?.message).toMatch(message);
  });

  it('takes a safe integer for a Long (the JSON Schema asks pushes for the string)', () => {
    expect(wireDocumentProblem(items, { id: OID, requiredAny: 1, big: 12 })).toBeNull();
    expect(wireDocumentProblem(items, { id: OID, requiredAny: 1, big: 2 ** 53 })?.field).toBe('big');
  });

  it('never returns a half-converted document: the first bad value throws before anything is returned', () => {
    const doc = { id: OID, requiredAny: 1, ref: OID, big: 'x', _deleted: false };
    const error = errorOf(() => toStoredForm(items, doc as never));
    expect(error.field).toBe('big');
    expect(toStoredFields(items.fields, { ref: OID, big: 'x' }, { lenient: true })).toEqual({ ref: new ObjectId(OID), big: 'x' });
  });

  it('refuses Decimal values, in documents, Mixed and filters, on a store without Decimal128 (FerretDB v1)', () => {
    configureBsonSupport({ decimal128: false });
    try {
      expect(wireDocumentProblem(items, { id: OID, requiredAny: 1, price: '1.5' })?.message).toMatch(/cannot hold Decimal values/);
      expect(wireDocumentProblem(items, { id: OID, requiredAny: { $numberDecimal: '1' } })?.message).toMatch(/cannot hold Decimal values/);
      expect(() => compileFilter(items, { price: { $gt: '1' } })).toThrow(/cannot hold Decimal values/);
    } finally {
      configureBsonSupport({ decimal128: true });
    }
  });
});

describe('primary keys', () => {
  it.each([
    [items, OID.toUpperCase(), ObjectId, OID],
    [byUuid, UUID_TEXT, Binary, UUID_TEXT],
    [byLong, '9007199254740993', Long, '9007199254740993'],
  ] as const)('%#: a wire id becomes an _id of the key type, and back', (collection, wire, cls, back) => {
    const stored = roundTrip({ _id: toStoredId(collection, wire) })._id;
    expect(stored).toBeInstanceOf(cls);
    expect(toWireId(collection, stored)).toBe(back);
    expect(isStoredIdOf(collection, stored)).toBe(true);
  });

  it('ID keys stay strings', () => {
    expect(toStoredId(byId, 'task-1')).toBe('task-1');
    expect(toWireId(byId, 'task-1')).toBe('task-1');
    expect(keyScalar(byId)).toBe('ID');
  });

  it('a Long key also reads from a promoted or int32 _id', () => {
    expect(toWireId(byLong, 5)).toBe('5');
    expect(toWireId(byLong, new Int32(5))).toBe('5');
  });

  it.each([
    [items, 'xyz', /id must be an ObjectId \(24 hex digits\), got "xyz"/],
    [byUuid, 'xyz', /id must be a UUID/],
    [byLong, '1.5', /id must be a 64-bit integer/],
    [byId, '', /id must be a non-empty string/],
  ] as const)('%#: a malformed id is refused clearly', (collection, wire, message) => {
    const error = errorOf(() => toStoredId(collection, wire));
    expect(error.message).toMatch(message);
    expect(error.field).toBe('id');
  });

  it('an _id of another type than the key cannot be addressed by a wire id', () => {
    expect(() => toWireId(items, 'a-string')).toThrow(/a stored _id of type string is not an ObjectId/);
    expect(() => toWireId(byId, new ObjectId(OID))).toThrow(/is not an ID/);
    expect(isStoredIdOf(byUuid, new Binary(Buffer.alloc(16), 0))).toBe(false);
  });
});

describe('the model and its JSON Schema', () => {
  it('accepts ObjectId!, UUID! and Long! keys and refuses others', () => {
    expect(keyScalar(items)).toBe('ObjectId');
    expect(() => loadModel('directive @collection(name: String!) on OBJECT\ntype A @collection(name: "as") { id: Decimal! }')).toThrow(/needs a primary key field "id: ID!" \(or ObjectId!, UUID!, Long!\)/);
    expect(() => loadModel('directive @collection(name: String!) on OBJECT\ntype A @collection(name: "as") { id: ObjectId }')).toThrow(/needs a primary key/);
  });

  it('keeps Binary, Mixed and Dictionary out of @queryable and Decimal out of @addWinsSet', () => {
    for (const type of ['Binary', 'Mixed', 'Dictionary', '[Mixed]']) {
      expect(() => loadModel(`directive @collection(name: String!) on OBJECT\ndirective @queryable on FIELD_DEFINITION\ntype A @collection(name: "as") { id: ID!, x: ${type} @queryable }`)).toThrow(/@queryable needs/);
    }
    expect(() => loadModel('directive @collection(name: String!) on OBJECT\ndirective @addWinsSet on FIELD_DEFINITION\ntype A @collection(name: "as") { id: ID!, x: [Decimal!] @addWinsSet }')).toThrow(/@addWinsSet needs/);
  });

  it('gives RxDB and the validator patterns for every wire form', () => {
    const schema = documentJsonSchema(items) as { properties: Record<string, Record<string, unknown>>; required: string[] };
    expect(schema.properties.id).toEqual({ type: 'string', pattern: '^[0-9a-f]{24}$', maxLength: 24 });
    expect(schema.properties.key).toMatchObject({ type: ['string', 'null'], maxLength: 36 });
    expect(schema.properties.big).toMatchObject({ type: ['string', 'null'], maxLength: 20 });
    expect(schema.properties.any).toEqual({});
    expect(schema.properties.requiredAny).toEqual({ not: { type: 'null' } });
    expect(schema.properties.dict).toEqual({ type: ['object', 'null'] });
    expect(schema.required).toEqual(['id', 'requiredAny']);
    expect(documentJsonSchema(byUuid).properties).toEqual({ id: expect.objectContaining({ maxLength: 36 }) });
    expect((documentJsonSchema(byId).properties as Record<string, unknown>).id).toEqual({ type: 'string', maxLength: 128 });
  });

  it('validates pushed documents with those patterns (ajv)', () => {
    const validate = createValidator(items);
    const ok = { id: OID, requiredAny: { any: 'thing' }, ref: OID, key: UUID_TEXT, big: '-12', price: '1.5E+3', blob: 'AA==', dict: { a: 1 }, _deleted: false };
    expect(validate(ok)).toBeNull();
    expect(validate({ ...ok, id: OID.toUpperCase() })).toMatchObject({ field: 'id' });
    expect(validate({ ...ok, big: 5 })).toMatchObject({ field: 'big' });
    expect(validate({ ...ok, big: '9223372036854775808' })).toMatchObject({ field: 'big' });
    expect(validate({ ...ok, blob: 'QR==' })).toMatchObject({ field: 'blob' });
    expect(validate({ ...ok, requiredAny: null })).toMatchObject({ field: 'requiredAny' });
    expect(validate({ ...ok, dict: [] })).toMatchObject({ field: 'dict' });
  });

  it('stamps Mixed and Dictionary values whole (their objects are values, not embedded documents)', () => {
    const fields = mergedFields(items);
    expect(changePaths(fields, { any: { a: { b: 1 } }, dict: { k: 1 }, part: { weight: 1, extra: { x: 1 } }, ratio: 1 }).sort()).toEqual(['any', 'dict', 'part.extra', 'part.weight', 'ratio']);
    expect(Object.keys(fields)).toEqual(['refs']);
    // A change another service made is stamped the same way.
    const outside = recordOutsideChange(fields, ['any', 'part'], {}, { any: { a: { b: 1 } }, part: { extra: { x: 1 }, weight: 2 } }, () => formatStamp(1, 0, 'dev'), 'server');
    expect(Object.keys(outside).sort()).toEqual(['any', 'part.extra', 'part.weight']);
  });
});

describe('filters on typed fields', () => {
  const stored = (fields: Record<string, unknown>) => ({ _id: new ObjectId(OID), _sync: { seq: 1, updatedAt: new Date(), deleted: false }, ...fields }) as never;

  it('turns operands into BSON values for MongoDB', () => {
    const filter = compileFilter(items, {
      id: OID.toUpperCase(),
      ref: { $in: [OID] },
      key: UUID_TEXT,
      big: { $gt: '9007199254740992' },
      price: { $lte: 10 },
      bigs: 5,
      at: { $lt: '2027-01-01T00:00:00Z' },
    });
    expect(filter.stored).toEqual({
      _id: new ObjectId(OID),
      ref: { $in: [new ObjectId(OID)] },
      key: new UUID(UUID_TEXT),
      big: { $gt: Long.fromString('9007199254740992') },
      price: { $lte: Decimal128.fromString('10') },
      bigs: Long.fromNumber(5),
      at: { $lt: new Date('2027-01-01T00:00:00Z') },
    });
  });

  it('matches in memory as MongoDB compares: Long and Decimal by number, ObjectId by bytes, whatever the driver promoted', () => {
    const m = (filter: unknown, fields: Record<string, unknown>) => compileFilter(items, filter).matches(stored(fields));
    expect(m({ big: { $gt: '9' } }, { big: Long.fromNumber(10) })).toBe(true); // as strings, "10" < "9"
    expect(m({ big: { $gt: '9' } }, { big: 10 })).toBe(true); // promoted
    expect(m({ big: { $gt: '-1' } }, { big: Long.fromNumber(-2) })).toBe(false);
    expect(m({ big: '9007199254740993' }, { big: Long.fromString('9007199254740992') })).toBe(false);
    expect(m({ big: { $in: ['1', '5'] } }, { big: new Int32(5) })).toBe(true);
    expect(m({ big: { $ne: '5' } }, { big: Long.fromNumber(5) })).toBe(false);
    expect(m({ price: '1.1' }, { price: Decimal128.fromString('1.10') })).toBe(true);
    expect(m({ price: { $gt: '999' } }, { price: Decimal128.fromString('1E+3') })).toBe(true);
    expect(m({ price: { $lt: '-0.12' } }, { price: Decimal128.fromString('-0.123') })).toBe(true);
    expect(m({ ref: { $gt: '5f1d7f3e9c8b7a6d5e4f3a20' } }, { ref: new ObjectId(OID) })).toBe(true);
    expect(m({ ref: OID }, { ref: OID })).toBe(false); // a string is not an ObjectId
    expect(m({ ref: { $ne: OID } }, { ref: OID })).toBe(true);
    expect(m({ key: UUID_TEXT.toUpperCase() }, { key: new UUID(UUID_TEXT) })).toBe(true);
    expect(m({ bigs: '2' }, { bigs: [Long.fromNumber(1), Long.fromNumber(2)] })).toBe(true);
    expect(m({ ratio: { $gte: 5 } }, { ratio: new Double(5) })).toBe(true);
    expect(m({ id: OID }, {})).toBe(true);
    expect(m({ big: { $exists: false } }, {})).toBe(true);
  });

  it('refuses what cannot mean the same in MongoDB and in memory', () => {
    expect(() => compileFilter(items, { any: 1 })).toThrow(/any is a Mixed field, which filters cannot use/);
    expect(() => compileFilter(items, { 'dict.a': 1 })).toThrow(/unknown field dict\.a/);
    expect(() => compileFilter(items, { ref: { $regex: '^5f' } })).toThrow(/ObjectId values are not text/);
    expect(() => compileFilter(items, { ref: 'xyz' })).toThrow(/"xyz" is not an ObjectId/);
    expect(() => compileFilter(items, { big: '1.5' })).toThrow(/is not a 64-bit integer/);
    expect(() => compileFilter(items, { price: '1E+9999' })).toThrow(/at most 34 significant digits/);
  });

  it('numericKey orders decimals as numbers and equates equal values however written', () => {
    const decimal = fc.tuple(fc.bigInt({ min: -(10n ** 20n), max: 10n ** 20n }), fc.integer({ min: -30, max: 30 })).map(([c, e]) => ({ c, e, text: `${c}E${e}` }));
    // c × 10^e compared exactly: scale both to the smaller exponent.
    const cmp = (a: { c: bigint; e: number }, b: { c: bigint; e: number }) => {
      const e = Math.min(a.e, b.e);
      const x = a.c * 10n ** BigInt(a.e - e);
      const y = b.c * 10n ** BigInt(b.e - e);
      return x < y ? -1 : x > y ? 1 : 0;
    };
    fc.assert(
      fc.property(decimal, decimal, (a, b) => {
        const ka = numericKey(a.text);
        const kb = numericKey(b.text);
        expect(ka < kb ? -1 : ka > kb ? 1 : 0).toBe(cmp(a, b));
      }),
      { numRuns: 2_000 },
    );
    expect(numericKey('1.10')).toBe(numericKey('1.1'));
    expect(numericKey('-0')).toBe(numericKey('0E+5'));
    expect(numericKey('NaN') < numericKey('-Infinity')).toBe(true);
    expect(numericKey('Infinity') > numericKey('1E+6000')).toBe(true);
  });

  it('exactDecimal gives each double its exact value, so doubles order as numbers', () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true }), fc.double({ noNaN: true }), (a, b) => {
        const ka = numericKey(exactDecimal(a));
        const kb = numericKey(exactDecimal(b));
        expect(ka < kb ? -1 : ka > kb ? 1 : 0).toBe(a < b ? -1 : a > b ? 1 : 0);
      }),
      { numRuns: 2_000 },
    );
    expect(numericKey(exactDecimal(0.1))).toBe(numericKey('0.1000000000000000055511151231257827021181583404541015625'));
    expect(numericKey(exactDecimal(0.1))).not.toBe(numericKey('0.1')); // 0.1 as a double is not 0.1
    expect(numericKey(exactDecimal(2 ** 60))).toBe(numericKey('1152921504606846976'));
  });

  it('matches wire documents the same way on the device (the SDK purges what left its view)', () => {
    const doc = { id: OID, big: '10', price: '1.10', ref: OID };
    const form = matchForm(items, doc, 'wire');
    expect(form.big).toBe(numericKey('10'));
    expect(form.price).toBe(numericKey('1.1'));
    expect(form.ref).toBe(OID);
  });
});

describe('RQL literals', () => {
  it('oid() and uuid() become the wire form, which the filter converts by the field type', () => {
    expect(parseRql(`ref == oid(${OID.toUpperCase()})`)).toEqual({ ref: { $eq: OID } });
    expect(parseRql(`key IN {uuid(${UUID_TEXT}), uuid(${UUID_TEXT.toUpperCase()})}`)).toEqual({ key: { $in: [UUID_TEXT, UUID_TEXT] } });
    expect(parseRql(`oid( ${OID} ) < ref`)).toEqual({ ref: { $gt: OID } });
    const filter = toFilter(items, `ref == oid(${OID}) AND big > $0 AND price <= 9.99`, ['9007199254740992']);
    expect(filter).toEqual({ $and: [{ ref: { $eq: OID } }, { big: { $gt: '9007199254740992' } }, { price: { $lte: '9.99' } }] });
    expect(compileFilter(items, filter).stored).toEqual({
      $and: [{ ref: { $eq: new ObjectId(OID) } }, { big: { $gt: Long.fromString('9007199254740992') } }, { price: { $lte: Decimal128.fromString('9.99') } }],
    });
  });

  it.each([
    ['ref == oid(5f1d)', 'expected oid(<24 hex digits>) at position 7'],
    ['ref == oid(zzzzzzzzzzzzzzzzzzzzzzzz)', 'expected oid(<24 hex digits>)'],
    ['key == uuid(f47ac10b58cc4372a5670e02b2c3d479)', 'expected uuid(<8-4-4-4-12 hex digits>)'],
  ])('%s is a syntax error', (query, message) => {
    expect(() => parseRql(query)).toThrow(RqlSyntaxError);
    expect(() => parseRql(query)).toThrow(message);
  });

  it('a field named oid is still a field', () => {
    expect(parseRql("oid == 'x'")).toEqual({ oid: { $eq: 'x' } });
  });
});

describe('wire fields helpers', () => {
  it('putWireFields and toStoredFields are inverse on valid documents', () => {
    const wire = { ref: OID, big: '1', ratio: 1.5, part: { weight: 2 } };
    const back: Record<string, unknown> = {};
    putWireFields(items.fields, roundTrip(toStoredFields(items.fields, wire)), back);
    expect(back).toEqual(wire);
  });
});

