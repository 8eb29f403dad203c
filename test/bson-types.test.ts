// Integration (issue 12): BSON types, exactly, through the real gateway. A collection keyed by
// ObjectId with a field of every type (test/fixtures/bson-types.graphql) is written through plain
// GraphQL and through the SDK; the driver then sees every stored value with its exact BSON type
// (read with promoteValues: false), and reads through the gateway give the wire forms back.
// Malformed values are refused with the field named, and nothing is stored. Filters on typed
// fields select the same documents in memory (mingo, on the match form) as in the store.
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Binary, Decimal128, Double, Int32, Long, MongoClient, ObjectId, type Document } from 'mongodb';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { compileFilter } from '../gateway/query/filter.ts';
import { toStoredForm } from '../gateway/store/collection-store.ts';
import { bsonSupportOf, configureBsonSupport } from '../protocol/bson-values.ts';
import { loadModel } from '../protocol/model.ts';
import { cleanup, graphqlHttp, mongoUri, openDb, openTestClient, startTestGateway, uniqueName, waitFor } from './helpers/harness.ts';

const SCHEMA_PATH = resolve(import.meta.dirname, 'fixtures/bson-types.graphql');
const SDL = readFileSync(SCHEMA_PATH, 'utf8');
const records = loadModel(SDL).collections[0]!;

const OWNER = '5f1d7f3e9c8b7a6d5e4f3a21';
const TOKEN = 'f47ac10b-58cc-4372-a567-0e02b2c3d479';
const RAW = { promoteValues: false, promoteLongs: false } as const;

/** Whether the store holds Decimal128 (MongoDB does; FerretDB v1 drops the connection instead). */
let decimals = true;

beforeAll(async () => {
  const client = new MongoClient(mongoUri());
  await client.connect();
  const info = await client.db('admin').command({ buildInfo: 1 });
  await client.close();
  // What the gateway must do at start (gateway/server.ts): the gateways here run in this process.
  configureBsonSupport(bsonSupportOf(info));
  decimals = bsonSupportOf(info).decimal128;
});

afterEach(cleanup);

/** A wire document with a value of every type. */
function sample(overrides: Record<string, unknown> = {}): Record<string, unknown> & { id: string } {
  return {
    id: new ObjectId().toHexString(),
    title: 'every type',
    ownerRef: OWNER,
    token: TOKEN,
    big: '9007199254740993',
    ...(decimals ? { price: '1.10' } : {}),
    blob: 'AAEC/w==',
    payload: {
      int: 1,
      double: { $numberDouble: '5.0' },
      fraction: 2.5,
      long: { $numberLong: '9007199254740993' },
      oid: { $oid: OWNER },
      uuid: { $uuid: TOKEN },
      date: { $date: '2026-01-01T00:00:00.000Z' },
      bytes: { $binary: { base64: 'aGk=', subType: '00' } },
      list: [1, 'two', null, true],
      nested: { deep: [{ x: 1 }] },
      ...(decimals ? { decimal: { $numberDecimal: '1E+3' } } : {}),
    },
    tags: { color: 'red', size: { $numberLong: '3' }, ratio: 0.5 },
    ratio: 5,
    count: 7,
    at: '2026-12-24T18:00:00.000Z',
    bigs: ['1', '-9223372036854775808'],
    inners: [{ uuid: TOKEN, when: '2026-01-02T03:04:05.000Z', weight: 1 }],
    ...overrides,
  } as Record<string, unknown> & { id: string };
}

const SELECTION = () => `id title ownerRef token big ${decimals ? 'price' : ''} blob payload tags ratio count at bigs inners { uuid when weight }`;

/** Every stored value with its exact BSON type, as MongoDB holds it. */
function expectExactTypes(raw: Document | null, wire: Record<string, unknown>): void {
  expect(raw).not.toBeNull();
  const doc = raw!;
  expect(doc._id).toBeInstanceOf(ObjectId);
  expect((doc._id as ObjectId).toHexString()).toBe(wire.id);
  expect(doc.ownerRef).toBeInstanceOf(ObjectId);
  expect(doc.token).toBeInstanceOf(Binary);
  expect((doc.token as Binary).sub_type).toBe(4);
  expect(doc.big).toBeInstanceOf(Long);
  expect(String(doc.big)).toBe(wire.big);
  if (decimals) {
    expect(doc.price).toBeInstanceOf(Decimal128);
    expect(String(doc.price)).toBe(wire.price);
  }
  expect(doc.blob).toBeInstanceOf(Binary);
  expect((doc.blob as Binary).sub_type).toBe(0);
  expect((doc.blob as Binary).toString('base64')).toBe(wire.blob);
  // A Float is a double even at 5.0; an Int an int32.
  expect(doc.ratio).toBeInstanceOf(Double);
  expect(doc.count).toBeInstanceOf(Int32);
  expect(doc.at).toBeInstanceOf(Date);
  expect((doc.bigs as unknown[]).every((v) => v instanceof Long)).toBe(true);
  const inner = (doc.inners as Document[])[0]!;
  expect((inner.uuid as Binary).sub_type).toBe(4);
  expect(inner.when).toBeInstanceOf(Date);
  expect(inner.weight).toBeInstanceOf(Double);
  const payload = doc.payload as Document;
  expect(payload.int).toBeInstanceOf(Int32);
  expect(payload.double).toBeInstanceOf(Double);
  expect((payload.double as Double).value).toBe(5);
  expect(payload.fraction).toBeInstanceOf(Double);
  expect(payload.long).toBeInstanceOf(Long);
  expect(String(payload.long)).toBe('9007199254740993');
  expect(payload.oid).toBeInstanceOf(ObjectId);
  expect((payload.uuid as Binary).sub_type).toBe(4);
  expect(payload.date).toBeInstanceOf(Date);
  expect((payload.bytes as Binary).sub_type).toBe(0);
  expect((payload.list as unknown[])[0]).toBeInstanceOf(Int32);
  if (decimals) expect(payload.decimal).toBeInstanceOf(Decimal128);
  const tags = doc.tags as Document;
  expect(tags.color).toBe('red');
  expect(tags.size).toBeInstanceOf(Long);
  expect(tags.ratio).toBeInstanceOf(Double);
}

describe('BSON types through plain GraphQL', () => {
  it('stores every type exactly and answers with the wire forms', async () => {
    const gateway = await startTestGateway({ schemaPath: SCHEMA_PATH });
    const doc = sample();
    const inserted = await graphqlHttp(gateway.httpUrl, `mutation ($input: RecordInput!) { insertRecord(input: $input) { ${SELECTION()} } }`, {
      input: { ...doc, ownerRef: OWNER.toUpperCase(), token: TOKEN.toUpperCase() },
    });
    expect(inserted.errors).toBeUndefined();
    expect(inserted.data!.insertRecord).toEqual(doc);

    const db = await openDb(gateway.database);
    expectExactTypes(await db.collection('records').findOne({ _id: new ObjectId(doc.id) }, RAW), doc);

    const byId = await graphqlHttp(gateway.httpUrl, `query ($id: ObjectId!) { record(id: $id) { ${SELECTION()} } }`, { id: doc.id.toUpperCase() });
    expect(byId.errors).toBeUndefined();
    expect(byId.data!.record).toEqual(doc);

    const list = async (filter: unknown) => {
      const r = await graphqlHttp(gateway.httpUrl, `query ($f: JSONObject) { records(filter: $f) { id } }`, { f: filter });
      expect(r.errors).toBeUndefined();
      return (r.data!.records as Array<{ id: string }>).map((x) => x.id);
    };
    expect(await list({ big: { $gt: '9007199254740992' } })).toEqual([doc.id]);
    expect(await list({ big: { $gt: '9007199254740993' } })).toEqual([]);
    expect(await list({ id: doc.id, ownerRef: OWNER.toUpperCase(), token: TOKEN, bigs: '1' })).toEqual([doc.id]);
    if (decimals) expect(await list({ price: '1.1' })).toEqual([doc.id]);
  });

  it('refuses malformed values, naming what is wrong, and stores nothing', async () => {
    const gateway = await startTestGateway({ schemaPath: SCHEMA_PATH });
    const insert = (input: Record<string, unknown>) => graphqlHttp(gateway.httpUrl, `mutation ($input: RecordInput!) { insertRecord(input: $input) { id } }`, { input });
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ ownerRef: 'xyz' }, /ObjectId must be 24 hex digits, got "xyz"/],
      [{ token: 'f47ac10b58cc4372a5670e02b2c3d479' }, /UUID must be a UUID/],
      [{ big: '9223372036854775808' }, /Long must be a 64-bit integer/],
      [{ blob: 'not base64' }, /Binary must be base64/],
      [{ payload: { $where: 'sleep(100)' } }, /Mixed: \$where: the key "\$where" is not allowed/],
      [{ payload: { a: { 'b.c': 1 } } }, /Mixed: a\.b\.c: the key "b\.c" contains "\."/],
      [{ tags: { x: { $regex: '.*' } } }, /Dictionary: x\.\$regex/],
    ];
    // FerretDB v1 has no Decimal128 (it drops the connection on one): refused before the store.
    if (!decimals) cases.push([{ price: '1.5' }, /Decimal: this store \(FerretDB v1\) cannot hold Decimal values/], [{ payload: { $numberDecimal: '1' } }, /cannot hold Decimal values/]);
    for (const [fields, message] of cases) {
      const doc = sample(fields);
      const r = await insert(JSON.parse(JSON.stringify(doc)) as Record<string, unknown>);
      expect(r.errors?.[0]?.message, JSON.stringify(fields)).toMatch(message);
    }
    const proto = JSON.parse(`{"tags": {"__proto__": {"polluted": true}}}`) as Record<string, unknown>;
    const r = await insert({ ...sample(), ...proto });
    expect(r.errors?.[0]?.message).toMatch(/Dictionary: __proto__: the key "__proto__" is not allowed/);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();

    const badId = await graphqlHttp(gateway.httpUrl, `{ record(id: "xyz") { id } }`);
    expect(badId.errors?.[0]?.message).toMatch(/ObjectId must be 24 hex digits/);

    const db = await openDb(gateway.database);
    expect(await db.collection('records').countDocuments({})).toBe(0);
  });

  it('refuses malformed values in sync pushes, naming the field (SCHEMA_VIOLATION), and stores nothing', async () => {
    const gateway = await startTestGateway({ schemaPath: SCHEMA_PATH });
    const push = async (doc: Record<string, unknown>) => {
      const r = await graphqlHttp(gateway.httpUrl, `mutation ($rows: [SyncPushRow!]!) { pushRecords(rows: $rows) { rejected { id code field message } } }`, {
        rows: [{ assumedMasterState: null, newDocumentState: { ...doc, _deleted: false } }],
      });
      expect(r.errors, JSON.stringify(r.errors)).toBeUndefined();
      return (r.data!.pushRecords as { rejected: Array<{ code: string; field: string; message: string }> }).rejected;
    };
    // The JSON Schema's patterns.
    expect(await push(sample({ big: '9223372036854775808' }))).toMatchObject([{ code: 'SCHEMA_VIOLATION', field: 'big' }]);
    expect(await push(sample({ ownerRef: OWNER.toUpperCase() }))).toMatchObject([{ code: 'SCHEMA_VIOLATION', field: 'ownerRef' }]);
    expect(await push(sample({ id: 'xyz' }))).toMatchObject([{ id: 'xyz' }]);
    // The codec's checks (what JSON Schema cannot say): a forbidden key inside a Mixed value.
    expect(await push(sample({ payload: { a: { $where: 'x' } } }))).toMatchObject([{ code: 'SCHEMA_VIOLATION', field: 'payload.a.$where' }]);
    expect(await push(sample({ tags: { 'a.b': 1 } }))).toMatchObject([{ code: 'SCHEMA_VIOLATION', field: 'tags.a.b' }]);
    if (!decimals) expect(await push(sample({ price: '1.5' }))).toMatchObject([{ code: 'SCHEMA_VIOLATION', field: 'price', message: expect.stringMatching(/cannot hold Decimal values/) }]);
    const db = await openDb(gateway.database);
    expect(await db.collection('records').countDocuments({})).toBe(0);
  });
});

describe('BSON types through the SDK', () => {
  it('stores what an RxDB client writes exactly, and another client receives the wire forms', async () => {
    const gateway = await startTestGateway({ schemaPath: SCHEMA_PATH });
    const writer = await openTestClient(gateway.wsUrl, { schema: SDL });
    const doc = sample();
    await writer.collections.records!.insert(doc);
    await writer.waitForSync();
    const db = await openDb(gateway.database);
    const raw = await waitFor('the document is stored', () => db.collection('records').findOne({ _id: new ObjectId(doc.id) }, RAW));
    expectExactTypes(raw, doc);

    const reader = await openTestClient(gateway.wsUrl, { schema: SDL });
    const received = await waitFor('the other client has it', () => reader.collections.records!.findOne(doc.id).exec());
    const fields = Object.fromEntries(Object.keys(doc).map((k) => [k, received.get(k) as unknown]));
    expect(fields).toEqual(doc);

    // An update from the SDK keeps every type (here the ones it changes).
    const current = await writer.collections.records!.findOne(doc.id).exec();
    await current!.incrementalPatch({ big: '-5', payload: { now: { $numberDouble: '7.0' } }, ratio: 6 });
    await writer.waitForSync();
    const updated = await waitFor('the update is stored', async () => {
      const d = await db.collection('records').findOne({ _id: new ObjectId(doc.id) }, RAW);
      return d && String(d.big) === '-5' ? d : null;
    });
    expect(updated.big).toBeInstanceOf(Long);
    expect((updated.payload as Document).now).toBeInstanceOf(Double);
    expect(updated.ratio).toBeInstanceOf(Double);
    expect(updated._id).toBeInstanceOf(ObjectId);
    await waitFor('the other client has the update', async () => (await reader.collections.records!.findOne(doc.id).exec())?.get('big') === '-5');
  });
});

describe('filters on typed fields: the same documents in memory as in the store', () => {
  const OIDS = ['5f1d7f3e9c8b7a6d5e4f3a21', '5f1d7f3e9c8b7a6d5e4f3a22', '000000000000000000000000'];
  const UUIDS = [TOKEN, '00000000-0000-4000-8000-000000000000', 'ffffffff-ffff-4fff-bfff-ffffffffffff'];
  const LONGS = ['-9223372036854775808', '-10', '-1', '0', '9', '10', '9007199254740992', '9007199254740993', '9223372036854775807'];
  const FLOATS = [-1.5, 0, 5, 5.5, 1e20];
  const INTS = [-1, 0, 3, 10];
  const DATES = ['2026-01-01T00:00:00.000Z', '2026-06-01T00:00:00.000Z', '1999-12-31T23:59:59.999Z'];
  const DECIMALS = ['1.1', '1.10', '-0', '0', '999', '1E+3', '-0.12', '-0.123', 'NaN', 'Infinity'];
  const pools: Record<string, readonly unknown[]> = { ownerRef: OIDS, token: UUIDS, big: LONGS, ratio: FLOATS, count: INTS, at: DATES, bigs: LONGS, title: ['a', 'b'] };

  it('for random documents and filters (ObjectId, UUID, Long, Decimal where the store has it, Float, Int, DateTime, lists)', async () => {
    const fields = { ...pools, ...(decimals ? { price: DECIMALS } : {}) };
    const db = await openDb(uniqueName('bsonfilters'));
    const collection = db.collection(uniqueName('docs'));
    const doc = fc.record(
      Object.fromEntries(Object.entries(fields).map(([name, pool]) => [name, name === 'bigs' ? fc.array(fc.constantFrom(...pool), { maxLength: 3 }) : fc.constantFrom(...pool)])),
      { requiredKeys: [] },
    );
    const docs = fc.sample(doc, 60).map((d, i) => ({ ...d, id: ObjectId.createFromTime(i + 1).toHexString() }));
    await collection.insertMany(docs.map((d) => toStoredForm(records, { ...d, _deleted: false } as never) as Document));

    const operand = (name: string) => fc.constantFrom(...fields[name as keyof typeof fields]!);
    const condition = fc.constantFrom(...Object.keys(fields)).chain((name) =>
      fc.oneof(
        operand(name).map((v) => ({ [name]: v })),
        fc.tuple(fc.constantFrom('$eq', '$ne', '$gt', '$gte', '$lt', '$lte'), operand(name)).map(([op, v]) => ({ [name]: { [op]: v } })),
        fc.tuple(fc.constantFrom('$in', '$nin'), fc.array(operand(name), { minLength: 1, maxLength: 3 })).map(([op, v]) => ({ [name]: { [op]: v } })),
        fc.boolean().map((exists) => ({ [name]: { $exists: exists } })),
      ),
    );
    const filter = fc.oneof(condition, fc.tuple(fc.constantFrom('$and', '$or', '$nor'), fc.array(condition, { minLength: 1, maxLength: 3 })).map(([op, parts]) => ({ [op]: parts })));

    // In memory: documents as the gateway reads them (the driver's default promotion), and unpromoted.
    const promoted = await collection.find({}).toArray();
    const unpromoted = await collection.find({}, RAW).toArray();
    const ids = (list: Document[]) => list.map((d) => (d._id as ObjectId).toHexString()).sort();
    for (const f of fc.sample(filter, 300)) {
      const compiled = compileFilter(records, f);
      const inStore = ids(await collection.find(compiled.stored as Document).toArray());
      expect(ids(promoted.filter((d) => compiled.matches(d as never))), JSON.stringify(f)).toEqual(inStore);
      expect(ids(unpromoted.filter((d) => compiled.matches(d as never))), JSON.stringify(f)).toEqual(inStore);
    }
  });
});
