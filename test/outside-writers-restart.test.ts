// Issue 12: writes other services make while the gateway is down. The gateway runs as a child
// process and is killed (SIGKILL) with two SDK clients connected; meanwhile a service inserts,
// sets, increments, replaces and deletes with the driver; the gateway starts again on the same
// database and port. Every client converges to MongoDB, and nothing is missed or duplicated:
// each changed document gets exactly one new sequence (the counter of `_tributary_sequences`
// moves on by exactly the number of changed documents, one per document however many writes it
// took), and each client sees each changed document once after it reconnects (RxDB change
// events per id; the pulled documents too).
//  - Resumed: the oplog source reads on from its stored resume point before the gateway serves,
//    so the start's full comparison pass finds nothing left to repair.
//  - Lost: the stored resume point is older than the oplog's oldest entry; the source says so,
//    skips the oplog's past, and the full comparison pass brings every change (`/ready`,
//    outsideWrites.passes).
import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { Timestamp, type Db } from 'mongodb';
import { afterEach, describe, expect, it } from 'vitest';
import type { TributaryClient } from '../client-sdk/index.ts';
import { freePort } from '../gateway/store/embedded-ferretdb.ts';
import type { OutsideWritesStatus } from '../gateway/sync/outside-writes.ts';
import { cleanup, converged, mongoUri, newTask, openDb, openTestClient, rulesFixture, TEST_JWT, uniqueName, waitFor, useOplogStore } from './helpers/harness.ts';

useOplogStore(); // these tests follow FerretDB's oplog (test/setup/ferretdb.ts)

const ROOT = resolve(import.meta.dirname, '..');
const children: ChildProcess[] = [];
afterEach(async () => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
  await cleanup();
});

async function startGatewayProcess(port: number, database: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'gateway/main.ts'], {
    cwd: ROOT,
    env: { ...process.env, MONGODB_URI: mongoUri(), TRIBUTARY_DATABASE: database, PORT: String(port), LOG_LEVEL: 'warn', TRIBUTARY_JWT_SECRET: TEST_JWT.secret, TRIBUTARY_JWT_ISSUER: TEST_JWT.issuer, TRIBUTARY_JWT_AUDIENCE: TEST_JWT.audience, TRIBUTARY_RULES: rulesFixture('open') },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  children.push(child);
  await waitFor('gateway process ready', async () => (await fetch(`http://127.0.0.1:${port}/ready`)).ok, 30_000);
  return child;
}

async function kill(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

async function outsideStatus(port: number): Promise<OutsideWritesStatus> {
  return ((await (await fetch(`http://127.0.0.1:${port}/ready`)).json()) as { outsideWrites: OutsideWritesStatus }).outsideWrites;
}

/** The fields compared between MongoDB and the clients (the type's; a service's document may lack some). */
const FIELDS = ['ownerId', 'title', 'status', 'priority', 'tags', 'description', 'minutesLogged', 'assigneeIds'] as const;

async function mongoState(db: Db): Promise<Record<string, unknown>[]> {
  const docs = await db.collection('tasks').find().sort({ _id: 1 }).toArray();
  return docs.map((d) => ({ id: d._id, ...Object.fromEntries(FIELDS.map((f) => [f, d[f]])) }));
}

async function clientState(client: TributaryClient): Promise<Record<string, unknown>[]> {
  const docs = await client.collections.tasks!.find({ sort: [{ id: 'asc' }] }).exec();
  return docs.map((d) => {
    const json = d.toJSON() as Record<string, unknown>;
    return { id: json.id, ...Object.fromEntries(FIELDS.map((f) => [f, json[f]])) };
  });
}

async function sequenceCounter(db: Db): Promise<number> {
  return ((await db.collection<{ _id: string; seq: number }>('_tributary_sequences').findOne({ _id: 'tasks' }))?.seq as number) ?? 0;
}

async function metadata(db: Db): Promise<Map<string, { seq: number; deleted: boolean }>> {
  const metas = await db.collection('_tributary_sync_tasks').find().toArray();
  return new Map(metas.map((m) => [String(m._id), { seq: m.seq as number, deleted: m.deleted as boolean }]));
}

/** Change events per document id a client's collection emits from now on. */
function recordEvents(client: TributaryClient): Map<string, string[]> {
  const events = new Map<string, string[]>();
  client.collections.tasks!.$.subscribe((event) => {
    events.set(event.documentId, [...(events.get(event.documentId) ?? []), event.operation]);
  });
  return events;
}

/**
 * Two clients holding `count` synced tasks (made by the first), on a gateway process whose outside
 * change source has stored its resume point.
 */
async function setUp(count: number) {
  const port = await freePort();
  const database = uniqueName('outside_restart');
  const db = await openDb(database);
  const gateway = await startGatewayProcess(port, database);
  const wsUrl = `ws://127.0.0.1:${port}/graphql`;
  const clients = [await openTestClient(wsUrl), await openTestClient(wsUrl)];
  const tasks = Array.from({ length: count }, (_, i) => newTask({ id: `t${String(i).padStart(2, '0')}`, title: `task ${i}`, minutesLogged: 10, assigneeIds: ['ann'] }));
  await clients[0]!.collections.tasks!.bulkInsert(tasks);
  for (const client of clients) await waitFor('the client holds every task', async () => (await client.collections.tasks!.count().exec()) === count);
  await waitFor('MongoDB and the clients agree', () => converged(clients, () => mongoState(db), clientState));
  await waitFor('the resume point is stored', async () => (await db.collection('_tributary_resume').countDocuments()) === 1);
  // Long enough for the oplog entries of these writes to have been read (and found to be the
  // gateway's own: nothing written for them).
  await new Promise((r) => setTimeout(r, 1_000));
  expect(await sequenceCounter(db)).toBe(count);
  return { port, database, db, gateway, clients, wsUrl };
}

/**
 * What a service does while the gateway is down: 3 inserts (insertMany and insertOne), a $set and
 * an $inc of one document (two writes, one change), an $inc, a $push, a replaceOne, and a
 * deleteMany of three. 10 changed documents; t00, t08 and t09 are left alone.
 */
async function outsideWrites(db: Db): Promise<{ changed: string[]; inserted: string[]; updated: string[]; deleted: string[] }> {
  const tasks = db.collection('tasks');
  const service = (id: string, overrides: Record<string, unknown> = {}) => {
    const { id: _id, ...task } = newTask({ id, ...overrides });
    return { _id, ...task };
  };
  await tasks.insertMany([service('new-1', { title: 'inserted 1', minutesLogged: 3 }), service('new-2', { title: 'inserted 2' })] as never[]);
  await tasks.insertOne(service('new-3', { title: 'inserted 3', assigneeIds: ['bob'] }) as never);
  await tasks.updateOne({ _id: 't01' as never }, { $set: { title: 'set by a service' } });
  await tasks.updateOne({ _id: 't01' as never }, { $inc: { minutesLogged: 5 } });
  await tasks.updateOne({ _id: 't02' as never }, { $inc: { minutesLogged: -4 } });
  await tasks.updateOne({ _id: 't03' as never }, { $push: { assigneeIds: 'cy' } } as never);
  await tasks.replaceOne({ _id: 't04' as never }, { ownerId: 'user-1', title: 'replaced', status: 'DONE', priority: 1, tags: [] });
  const { deletedCount } = await tasks.deleteMany({ _id: { $in: ['t05', 't06', 't07'] } } as never);
  expect(deletedCount).toBe(3);
  const inserted = ['new-1', 'new-2', 'new-3'];
  const updated = ['t01', 't02', 't03', 't04'];
  const deleted = ['t05', 't06', 't07'];
  return { changed: [...inserted, ...updated, ...deleted], inserted, updated, deleted };
}

/** Every client equals MongoDB; each changed document got one new sequence and reached each client once. */
async function expectCaughtUp(
  db: Db,
  clients: TributaryClient[],
  events: Array<Map<string, string[]>>,
  downloadedBefore: number[],
  before: { counter: number; metas: Map<string, { seq: number; deleted: boolean }> },
  writes: Awaited<ReturnType<typeof outsideWrites>>,
  /** Repaired before the gateway served (exactly once), or while clients resubscribe (at most twice). */
  delivery: 'before serving' | 'while serving',
): Promise<void> {
  await waitFor('every client converged to MongoDB', () => converged(clients, () => mongoState(db), clientState), 30_000);
  const server = await mongoState(db);
  expect(server.map((d) => d.id)).toEqual(['new-1', 'new-2', 'new-3', 't00', 't01', 't02', 't03', 't04', 't08', 't09']);
  expect(server.find((d) => d.id === 't01')).toMatchObject({ title: 'set by a service', minutesLogged: 15 });
  expect(server.find((d) => d.id === 't02')).toMatchObject({ minutesLogged: 6 });
  expect(server.find((d) => d.id === 't03')).toMatchObject({ assigneeIds: ['ann', 'cy'] });
  expect(server.find((d) => d.id === 't04')).toMatchObject({ title: 'replaced', minutesLogged: undefined, assigneeIds: undefined });

  // One new sequence per changed document, none for the others.
  expect(await sequenceCounter(db)).toBe(before.counter + writes.changed.length);
  const after = await metadata(db);
  const moved = [...after].filter(([id, m]) => m.seq !== before.metas.get(id)?.seq).map(([id]) => id);
  expect(moved.sort()).toEqual([...writes.changed].sort());
  const seqs = [...after.values()].map((m) => m.seq);
  expect(new Set(seqs).size).toBe(seqs.length);
  for (const id of writes.changed) expect(after.get(id)!.seq, id).toBeGreaterThan(before.counter);
  for (const id of writes.deleted) expect(after.get(id)!.deleted, id).toBe(true);

  // Each client saw each changed document once, and nothing else. (A change committed while a
  // client resubscribes may come by its resync pull and by the live stream both: the same
  // version twice, which changes nothing the second time.)
  const expected = Object.fromEntries([
    ...writes.inserted.map((id) => [id, ['INSERT']]),
    ...writes.updated.map((id) => [id, ['UPDATE']]),
    ...writes.deleted.map((id) => [id, ['DELETE']]),
  ]);
  clients.forEach((client, i) => {
    expect(Object.fromEntries(events[i]!), `client ${i}'s change events`).toEqual(expected);
    const downloaded = client.counters.downloaded.tasks! - downloadedBefore[i]!;
    if (delivery === 'before serving') expect(downloaded, `client ${i}'s downloaded documents`).toBe(writes.changed.length);
    else expect(downloaded, `client ${i}'s downloaded documents`).toBeGreaterThanOrEqual(writes.changed.length);
    expect(downloaded, `client ${i}'s downloaded documents`).toBeLessThanOrEqual(2 * writes.changed.length);
  });
}

describe('outside writes while the gateway is down', () => {
  it('after kill -9 and a restart, every change reaches every client, each once (the oplog resumes)', { timeout: 120_000 }, async () => {
    const { port, database, db, gateway, clients } = await setUp(10);
    const before = { counter: await sequenceCounter(db), metas: await metadata(db) };
    const downloadedBefore = clients.map((c) => c.counters.downloaded.tasks!);

    await kill(gateway);
    for (const client of clients) await waitFor('the client notices the gateway is gone', () => client.connectionState !== 'connected');
    const events = clients.map(recordEvents);
    const writes = await outsideWrites(db);

    await startGatewayProcess(port, database);
    await expectCaughtUp(db, clients, events, downloadedBefore, before, writes, 'before serving');

    // The oplog brought every change before the gateway served; the start's pass found none.
    await waitFor('the full pass is done', async () => (await outsideStatus(port)).passes.tasks?.state === 'done');
    const status = await outsideStatus(port);
    expect(status.source).toBe('oplog');
    expect(status.passes.tasks!.counts).toEqual({ adopted: 0, changed: 0, deleted: 0 });
    expect(status.passes.tasks!.read).toBe(10);
  });

  it('with the resume point lost (older than the oplog), the full comparison pass brings every change', { timeout: 120_000 }, async () => {
    const { port, database, db, gateway, clients } = await setUp(10);
    const before = { counter: await sequenceCounter(db), metas: await metadata(db) };
    const downloadedBefore = clients.map((c) => c.counters.downloaded.tasks!);

    await kill(gateway);
    for (const client of clients) await waitFor('the client notices the gateway is gone', () => client.connectionState !== 'connected');
    const resume = db.collection<{ _id: string; ts?: Timestamp }>('_tributary_resume');
    const resumeId = `outside-changes:oplog:${database}`;
    const stored = await resume.findOne({ _id: resumeId });
    expect(stored?.ts).toBeInstanceOf(Timestamp);
    const oldest = await (await openDb('local')).collection('oplog.rs').find({}, { limit: 1, projection: { ts: 1 } }).toArray();
    expect((oldest[0]!.ts as Timestamp).t, "the oplog's oldest entry").toBeGreaterThan(1);
    await resume.updateOne({ _id: resumeId }, { $set: { ts: new Timestamp({ t: 1, i: 1 }), recent: [] } });
    const events = clients.map(recordEvents);
    const writes = await outsideWrites(db);

    await startGatewayProcess(port, database);
    await expectCaughtUp(db, clients, events, downloadedBefore, before, writes, 'while serving');

    await waitFor('the full pass is done', async () => (await outsideStatus(port)).passes.tasks?.state === 'done');
    const status = await outsideStatus(port);
    expect(status.passes.tasks!.counts).toEqual({ adopted: writes.inserted.length, changed: writes.updated.length, deleted: writes.deleted.length });
    // Following goes on from now: a write made after the restart still arrives, through the oplog.
    await db.collection('tasks').updateOne({ _id: 't00' as never }, { $set: { title: 'after the restart' } });
    for (const client of clients) await waitFor('a later outside write arrives', async () => (await client.collections.tasks!.findOne('t00').exec())?.title === 'after the restart', 5_000);
    expect((await outsideStatus(port)).passes.tasks!.counts).toEqual({ adopted: writes.inserted.length, changed: writes.updated.length, deleted: writes.deleted.length });
  });
});
