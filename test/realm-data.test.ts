// Issue 12: a database that a Realm app left behind, seeded only through the driver, syncs to a
// fresh SDK client, and the client's writes land back with every BSON type unchanged.
//
// Decimal128 is part of the model, but FerretDB 1.24 drops the connection on any Decimal128
// value (protocol/bson-values.ts, BsonSupport): on FerretDB the documents carry none and the
// gateway refuses one; on MongoDB (MONGODB_URI=...) they carry one each and it round-trips too.
import { resolve } from 'node:path';
import { readFileSync } from 'node:fs';
import { Binary, Decimal128, Double, Int32, Long, ObjectId, UUID, type Db } from 'mongodb';
import { afterEach, describe, expect, it } from 'vitest';
import { currentBsonSupport } from '../protocol/bson-values.ts';
import { cleanup, openDb, openTestClient, startTestGateway, uniqueName, waitFor, useOplogStore } from './helpers/harness.ts';

useOplogStore(); // these tests follow FerretDB's oplog (test/setup/ferretdb.ts)

afterEach(cleanup);

const SCHEMA_PATH = resolve(import.meta.dirname, 'fixtures/realm-tasks.graphql');
const SCHEMA = readFileSync(SCHEMA_PATH, 'utf8');
const DOCUMENTS = 10_000;

/** Reads documents as stored: int32, double and int64 stay what they are. */
function unpromoted(db: Db, name: string) {
  return db.collection(name, { promoteValues: false, promoteLongs: false });
}

function realmTask(i: number, projects: ObjectId[], decimals: boolean): Record<string, unknown> {
  return {
    _id: new ObjectId(),
    projectId: projects[i % projects.length],
    ownerId: 'user-1',
    title: `Realm task ${i}`,
    priority: Long.fromNumber(i % 5),
    ratio: new Double(i % 2 === 0 ? 2 : 0.5), // a double with an integral value stays a double
    dueDate: new Date(Date.UTC(2026, 11, 1 + (i % 28))),
    done: i % 3 === 0,
    ...(decimals ? { estimate: Decimal128.fromString(`${i}.50`) } : {}),
    ref: new UUID(),
    location: { name: `site ${i % 7}`, lat: new Double(48.5) },
    checklist: [
      { text: 'first', done: true },
      { text: 'second', done: false },
    ],
    labels: { color: 'red', weight: new Int32(3), big: Long.fromString('9007199254740993'), at: new Date(Date.UTC(2026, 0, 1)) },
  };
}

describe('a database a Realm app left behind', () => {
  it(`syncs ${DOCUMENTS.toLocaleString('en')} Realm-shaped documents to a fresh client, and its writes keep every BSON type`, { timeout: 480_000 }, async () => {
    const database = uniqueName('realm');
    const db = await openDb(database);
    const projects = Array.from({ length: 50 }, () => new ObjectId());
    await db.collection('Project').insertMany(projects.map((_id, i) => ({ _id, name: `Project ${i}` })) as never[]);
    // Decimal128 only where the store holds it (see the header).
    const gateway = await startTestGateway({ database, schemaPath: SCHEMA_PATH, followOutsideChanges: true });
    const decimals = currentBsonSupport().decimal128;
    const seeded: Array<Record<string, unknown>> = [];
    for (let i = 0; i < DOCUMENTS; i += 1_000) {
      const batch = Array.from({ length: 1_000 }, (_, j) => realmTask(i + j, projects, decimals));
      seeded.push(...batch);
      await db.collection('Task').insertMany(batch as never[]);
    }

    const client = await openTestClient(gateway.wsUrl, { schema: SCHEMA });
    await waitFor('the client holds every task and project', async () => (await client.collections.Task!.count().exec()) === DOCUMENTS && (await client.collections.Project!.count().exec()) === 50, 400_000); // ~30 s alone; the suite's other files share the one FerretDB

    // What the device holds is the documented wire form of each type.
    const sample = seeded[2]!;
    const local = (await client.collections.Task!.findOne((sample._id as ObjectId).toHexString()).exec())!.toJSON() as Record<string, any>;
    expect(local).toMatchObject({
      id: (sample._id as ObjectId).toHexString(),
      projectId: (sample.projectId as ObjectId).toHexString(),
      priority: '2',
      ratio: 2,
      dueDate: (sample.dueDate as Date).toISOString(),
      ref: (sample.ref as UUID).toHexString(true),
      location: { name: 'site 2', lat: 48.5 },
      checklist: [
        { text: 'first', done: true },
        { text: 'second', done: false },
      ],
      labels: { color: 'red', weight: 3, big: { $numberLong: '9007199254740993' }, at: { $date: '2026-01-01T00:00:00.000Z' } },
    });
    if (decimals) expect(local.estimate).toBe('2.50');

    // The device edits one field of a legacy document, and creates a document of its own.
    await (await client.collections.Task!.findOne(local.id).exec())!.incrementalPatch({ title: 'edited on the device', done: true });
    const created = new ObjectId().toHexString();
    const createdRef = new UUID().toHexString(true);
    await client.collections.Task!.insert({
      id: created,
      projectId: projects[0]!.toHexString(),
      ownerId: 'user-1',
      title: 'created on the device',
      priority: '9223372036854775807',
      ratio: 3,
      dueDate: '2027-01-01T00:00:00.000Z',
      done: false,
      ...(decimals ? { estimate: '12.25' } : {}),
      ref: createdRef,
      location: { name: 'home', lat: 1 },
      checklist: [{ text: 'only', done: false }],
      labels: { n: 1, d: { $numberDouble: '2.0' }, id: { $oid: projects[1]!.toHexString() } },
    });
    const tasks = unpromoted(db, 'Task');
    await waitFor('both writes are in MongoDB', async () => {
      const edited = await tasks.findOne({ _id: sample._id as never });
      return edited?.title === 'edited on the device' && (await tasks.findOne({ _id: new ObjectId(created) as never })) !== null;
    }, 30_000);

    // The edited document: the changed fields changed, every other value kept its BSON type.
    const edited = (await tasks.findOne({ _id: sample._id as never }))!;
    expect(edited._id).toBeInstanceOf(ObjectId);
    expect(edited.projectId).toBeInstanceOf(ObjectId);
    expect((edited.projectId as ObjectId).equals(sample.projectId as ObjectId)).toBe(true);
    expect(edited.priority).toBeInstanceOf(Long);
    expect(edited.ratio).toBeInstanceOf(Double);
    expect((edited.ratio as Double).value).toBe(2);
    expect(edited.dueDate).toEqual(sample.dueDate);
    expect(edited.ref).toBeInstanceOf(Binary);
    expect((edited.ref as Binary).sub_type).toBe(Binary.SUBTYPE_UUID);
    expect((edited.location as Record<string, unknown>).lat).toBeInstanceOf(Double);
    expect((edited.labels as Record<string, unknown>).weight).toBeInstanceOf(Int32);
    expect((edited.labels as Record<string, unknown>).big).toEqual(Long.fromString('9007199254740993'));
    expect((edited.labels as Record<string, unknown>).at).toEqual(new Date(Date.UTC(2026, 0, 1)));
    if (decimals) expect(edited.estimate).toEqual(sample.estimate);
    expect(edited.done).toBe(true);

    // The device's own document, in the types of the model.
    const mine = (await tasks.findOne({ _id: new ObjectId(created) as never }))!;
    expect(mine._id).toBeInstanceOf(ObjectId);
    expect(mine.projectId).toEqual(projects[0]);
    expect(mine.priority).toEqual(Long.fromString('9223372036854775807'));
    expect(mine.ratio).toBeInstanceOf(Double);
    expect(mine.dueDate).toEqual(new Date('2027-01-01T00:00:00.000Z'));
    expect(new UUID((mine.ref as Binary).buffer).toHexString(true)).toBe(createdRef);
    expect((mine.ref as Binary).sub_type).toBe(Binary.SUBTYPE_UUID);
    expect((mine.labels as Record<string, unknown>).n).toBeInstanceOf(Int32);
    expect((mine.labels as Record<string, unknown>).d).toBeInstanceOf(Double);
    expect((mine.labels as Record<string, unknown>).id).toEqual(projects[1]);
    if (decimals) expect(mine.estimate).toEqual(Decimal128.fromString('12.25'));
  });
});
