// Issue 14, point 2: client reset with Realm's modes. The database is restored to an earlier copy
// while a device holds a later checkpoint and writes it has not synced; each mode does what it
// promises, checked on the device, in MongoDB, and in what the callbacks received. A replaced
// database and a forced reset reset too.
import { Db } from 'mongodb';
import { afterEach, describe, expect, it } from 'vitest';
import type { ClientResetMode, ClientResetRequired, ClientResetResult, ClientResetState, TributaryClient } from '../client-sdk/index.ts';
import { ClientResets } from '../gateway/sync/client-reset.ts';
import { getRxStorageMemory } from 'rxdb/plugins/storage-memory';
import { cleanup, newTask, openDb, openTestClient, startTestGateway, uniqueName, waitFor } from './helpers/harness.ts';

afterEach(cleanup);

async function copyDatabase(from: Db, to: Db): Promise<void> {
  await to.dropDatabase();
  for (const { name } of await from.listCollections().toArray()) {
    const docs = await from.collection(name).find().toArray();
    if (docs.length > 0) await to.collection(name).insertMany(docs);
  }
}

const titles = async (client: TributaryClient) => Object.fromEntries((await client.collections.tasks!.find().exec()).map((d) => [d.id, d.title]));
const stored = async (db: Db) => Object.fromEntries((await db.collection('tasks').find().toArray()).map((d) => [String(d._id), d.title]));

interface Seen {
  before: ClientResetState[];
  after: ClientResetResult[];
  manual: ClientResetRequired[];
}

/**
 * A device syncs, the database is backed up, the device writes once more (acknowledged), then
 * offline: an insert, an edit and a delete. The database is restored from the backup and the
 * gateway restarted; the device comes back.
 */
async function restoredDatabase(mode: ClientResetMode) {
  const database = uniqueName('reset');
  const db = await openDb(database);
  const backup = await openDb(`${database}_backup`);
  const first = await startTestGateway({ database });
  const seen: Seen = { before: [], after: [], manual: [] };
  const device = await openTestClient(first.wsUrl, {
    clientReset: { mode, onBefore: (s) => void seen.before.push(s), onAfter: (r) => void seen.after.push(r), onManual: (e) => void seen.manual.push(e) },
  });
  const tasks = device.collections.tasks!;
  await tasks.bulkInsert([newTask({ id: 'kept', title: 'kept' }), newTask({ id: 'edited', title: 'before' }), newTask({ id: 'doomed', title: 'doomed' })]);
  await waitFor('the first writes land', async () => Object.keys(await stored(db)).length === 3);
  await copyDatabase(db, backup);
  await tasks.insert(newTask({ id: 'after-backup', title: 'acknowledged after the backup' }));
  await waitFor('acknowledged', async () => (await stored(db))['after-backup']);
  await device.waitForSync();

  await device.pause();
  await tasks.insert(newTask({ id: 'offline-new', title: 'written offline' }));
  await (await tasks.findOne('edited').exec())!.incrementalPatch({ title: 'edited offline' });
  await (await tasks.findOne('doomed').exec())!.remove();

  await first.stop();
  await copyDatabase(backup, db);
  const second = await startTestGateway({ database, port: first.port });
  const errors: unknown[] = [];
  device.errors$.subscribe((e) => errors.push(e));
  await device.resume();
  return { db, device, seen, errors, gateway: second };
}

const unsyncedOf = (state: ClientResetState) => state.unsynced.map((c) => `${c.kind} ${c.id}${c.fields.length ? ` ${c.fields.join(',')}` : ''}`).sort();

describe('client reset after the database is restored from a backup', () => {
  it('recoverUnsyncedChanges (the default): local writes not acknowledged are applied onto the restored state; acknowledged writes lost with the restore come back', async () => {
    const { db, device, seen, errors } = await restoredDatabase('recoverUnsyncedChanges');
    await waitFor('the reset completes', () => seen.after[0]);
    expect(errors).toContainEqual(expect.objectContaining({ kind: 'clientReset', reason: 'checkpoint-ahead', mode: 'recoverUnsyncedChanges' }));
    expect(unsyncedOf(seen.before[0]!).map((s) => s.split(' ').slice(0, 2).join(' '))).toEqual(['delete doomed', 'insert offline-new', 'update edited']);
    expect(seen.before[0]!.documents.tasks!.map((d) => d.id).sort()).toEqual(['after-backup', 'edited', 'kept', 'offline-new']);
    const result = seen.after[0]!;
    expect(result.mode).toBe('recoverUnsyncedChanges');
    expect(result.discarded).toEqual([]);
    expect(result.recovered.map((c) => c.id).sort()).toEqual(['doomed', 'edited', 'offline-new']);
    expect(result.restored.map((c) => c.id)).toEqual(['after-backup']);
    const expected = { kept: 'kept', edited: 'edited offline', 'offline-new': 'written offline', 'after-backup': 'acknowledged after the backup' };
    await waitFor('MongoDB holds the recovered state', async () => JSON.stringify(sorted(await stored(db))) === JSON.stringify(sorted(expected)));
    await device.waitForSync();
    expect(sorted(await titles(device))).toEqual(sorted(expected));
  });

  it('discardUnsyncedChanges: the device takes the restored state, and the app is told exactly which writes were dropped', async () => {
    const { db, device, seen } = await restoredDatabase('discardUnsyncedChanges');
    await waitFor('the reset completes', () => seen.after[0]);
    const result = seen.after[0]!;
    expect(result.mode).toBe('discardUnsyncedChanges');
    expect(result.recovered).toEqual([]);
    expect(result.discarded.map((c) => `${c.kind} ${c.id}`).sort()).toEqual(['delete doomed', 'insert offline-new', 'update edited']);
    expect(result.discarded.find((c) => c.id === 'edited')).toMatchObject({ fields: ['title'], document: expect.objectContaining({ title: 'edited offline' }) });
    await device.waitForSync();
    await waitFor('the acknowledged write lost with the restore is back', async () => (await stored(db))['after-backup']);
    const expected = { kept: 'kept', edited: 'before', doomed: 'doomed', 'after-backup': 'acknowledged after the backup' };
    await waitFor('the device holds the server state', async () => JSON.stringify(sorted(await titles(device))) === JSON.stringify(sorted(expected)));
    expect(sorted(await stored(db))).toEqual(sorted(expected));
  });

  it('recoverOrDiscard recovers when it can', async () => {
    const { db, seen } = await restoredDatabase('recoverOrDiscard');
    await waitFor('the reset completes', () => seen.after[0]);
    expect(seen.after[0]).toMatchObject({ mode: 'recoverUnsyncedChanges', discarded: [] });
    await waitFor('the offline insert lands', async () => (await stored(db))['offline-new']);
  });

  it('manual: syncing stops and the app decides; resetNow carries the reset out', async () => {
    const { db, device, seen, errors } = await restoredDatabase('manual');
    await waitFor('the app is told', () => seen.manual[0]);
    expect(seen.manual[0]).toMatchObject({ kind: 'clientReset', reason: 'checkpoint-ahead', mode: 'manual' });
    expect(errors).toContainEqual(seen.manual[0]);
    await new Promise((r) => setTimeout(r, 500));
    expect((await stored(db))['offline-new']).toBeUndefined(); // nothing was pushed meanwhile
    expect(seen.after).toEqual([]);
    const result = await device.resetNow('recoverUnsyncedChanges');
    expect(result.recovered.map((c) => c.id).sort()).toEqual(['doomed', 'edited', 'offline-new']);
    await waitFor('the recovered insert lands', async () => (await stored(db))['offline-new']);
  });
});

describe('other resets', () => {
  it('a database made anew: the device resets (its epoch names another feed) and ends with the new database’s state', async () => {
    const database = uniqueName('replaced');
    const db = await openDb(database);
    const first = await startTestGateway({ database });
    const results: ClientResetResult[] = [];
    const device = await openTestClient(first.wsUrl, { clientReset: { mode: 'discardUnsyncedChanges', onAfter: (r) => void results.push(r) } });
    await device.collections.tasks!.insert(newTask({ id: 'old-world' }));
    await waitFor('it lands', async () => (await stored(db))['old-world']);
    // A change from elsewhere, so that the device holds a checkpoint (a device that never pulled
    // a change has none, and nothing to tell it apart from a new device).
    await first.collections.get('tasks')!.writer.push([{ assumedMasterState: null, newDocumentState: { ...newTask({ id: 'old-world-2' }), _deleted: false } }]);
    await waitFor('the device pulled it', () => device.collections.tasks!.findOne('old-world-2').exec());
    await device.pause();
    await first.stop();
    await db.dropDatabase();
    const second = await startTestGateway({ database, port: first.port });
    await second.collections.get('tasks')!.writer.push([{ assumedMasterState: null, newDocumentState: { ...newTask({ id: 'new-world' }), _deleted: false } }]);
    await device.resume();
    await waitFor('the reset completes', () => results[0]);
    expect(results[0]!.reason).toBe('database-replaced');
    await waitFor('the device holds the new database', async () => JSON.stringify(Object.keys(await titles(device))) === '["new-world"]');
    expect(Object.keys(await stored(db))).toEqual(['new-world']);
  });

  it('a forced reset of one user resets that user’s devices only, and keeps their unsynced writes', async () => {
    const gateway = await startTestGateway();
    const db = await openDb(gateway.database);
    const results: Record<string, ClientResetResult[]> = { ann: [], bob: [] };
    const { testToken } = await import('./helpers/harness.ts');
    const open = async (user: 'ann' | 'bob') => openTestClient(gateway.wsUrl, { connectionParams: { authToken: await testToken(user) }, clientReset: { onAfter: (r) => void results[user]!.push(r) } });
    const ann = await open('ann');
    const bob = await open('bob');
    await ann.collections.tasks!.insert(newTask({ id: 'a1' }));
    await waitFor('bob has it', () => bob.collections.tasks!.findOne('a1').exec());
    await ann.pause();
    await ann.collections.tasks!.insert(newTask({ id: 'a2-offline' }));
    await new ClientResets(db).force('tasks', 'ann');
    await new Promise((r) => setTimeout(r, 1_100)); // the gateway reads reset documents at most once a second
    await ann.resume();
    await waitFor('ann resets', () => results.ann![0]);
    expect(results.ann![0]).toMatchObject({ reason: 'forced' });
    expect(results.ann![0]!.recovered.map((c) => c.id)).toEqual(['a2-offline']);
    await waitFor('the unsynced write lands', async () => (await stored(db))['a2-offline']);
    await bob.collections.tasks!.insert(newTask({ id: 'b1' }));
    await waitFor('ann receives bob’s write after the reset', () => ann.collections.tasks!.findOne('b1').exec());
    expect(results.bob).toEqual([]);
    // A second pull after the reset is not reset again.
    await ann.pause();
    await ann.resume();
    await ann.waitForSync();
    expect(results.ann).toHaveLength(1);
  });
});

describe('resets a device cannot miss', () => {
  it('a device that has only pulled empty pages (so RxDB stored no checkpoint) resets too', async () => {
    const gateway = await startTestGateway();
    const db = await openDb(gateway.database);
    const results: ClientResetResult[] = [];
    const device = await openTestClient(gateway.wsUrl, { clientReset: { onAfter: (r) => void results.push(r) } });
    await device.waitForSync();
    await device.pause();
    await device.collections.tasks!.insert(newTask({ id: 'offline', title: 'written offline' }));
    await new ClientResets(db).force('tasks');
    await new Promise((r) => setTimeout(r, 1_100)); // the gateway reads reset documents at most once a second
    await device.resume();
    await waitFor('the device resets', () => results[0]);
    expect(results[0]).toMatchObject({ reason: 'forced', discarded: [] });
    expect(results[0]!.recovered.map((c) => c.id)).toEqual(['offline']);
    await waitFor('its write lands', async () => (await stored(db)).offline === 'written offline');
  });

  it('a device online when a reset is forced resets at the next change it receives', async () => {
    const gateway = await startTestGateway();
    const db = await openDb(gateway.database);
    const results: ClientResetResult[] = [];
    const device = await openTestClient(gateway.wsUrl, { clientReset: { onAfter: (r) => void results.push(r) } });
    const writer = gateway.collections.get('tasks')!.writer;
    await writer.push([{ assumedMasterState: null, newDocumentState: { ...newTask({ id: 'first', title: 'first' }), _deleted: false } }]);
    await waitFor('the device has it', () => device.collections.tasks!.findOne('first').exec());
    await device.waitForSync();
    await new ClientResets(db).force('tasks');
    await new Promise((r) => setTimeout(r, 1_100));
    await writer.push([{ assumedMasterState: null, newDocumentState: { ...newTask({ id: 'second', title: 'second' }), _deleted: false } }]);
    await waitFor('the device resets', () => results[0]);
    expect(results[0]).toMatchObject({ reason: 'forced', recovered: [], discarded: [] });
    await device.waitForSync();
    expect(sorted(await titles(device))).toEqual(sorted(await stored(db)));
    expect(results).toHaveLength(1);
  });
});

describe('a reset asked for again while it downloads', () => {
  it('starts the download over, keeps every unsynced write (also those made between the two), and ends equal to MongoDB', async () => {
    const gateway = await startTestGateway();
    const db = await openDb(gateway.database);
    const results: ClientResetResult[] = [];
    let resetting = false;
    // Small pages: the fresh state takes 40 pulls, so the second reset comes in the middle.
    const device = await openTestClient(gateway.wsUrl, { pullBatchSize: 5, clientReset: { onBefore: () => void (resetting = true), onAfter: (r) => void results.push(r) } });
    const tasks = device.collections.tasks!;
    const seeded = Array.from({ length: 200 }, (_, i) => newTask({ id: `d${String(i).padStart(3, '0')}`, title: 'seeded' }));
    await gateway.collections.get('tasks')!.writer.push(seeded.map((doc) => ({ assumedMasterState: null, newDocumentState: { ...doc, _deleted: false } })));
    await waitFor('the device holds them (and a checkpoint)', async () => (await tasks.count().exec()) === 200);
    await device.pause();
    await tasks.insert(newTask({ id: 'unsynced', title: 'written offline' }));
    const resets = new ClientResets(db);
    await resets.force('tasks');
    await new Promise((r) => setTimeout(r, 1_100)); // the gateway reads reset documents at most once a second

    // The device goes offline as the first page of the fresh state arrives; meanwhile the app
    // writes, and another reset is forced.
    let pausedMidway: Promise<void> | null = null;
    // (After a few pages: the fresh replications have stored a checkpoint of the first reset's epoch.)
    let inserted = 0;
    const watching = tasks.insert$.subscribe(() => {
      if (resetting && ++inserted >= 20 && !pausedMidway) pausedMidway = device.pause();
    });
    await device.resume();
    await waitFor('the device is offline in the middle of the reset', () => pausedMidway !== null);
    await pausedMidway;
    watching.unsubscribe();
    expect(results).toEqual([]);
    expect(await tasks.count().exec()).toBeLessThan(200);
    await tasks.insert(newTask({ id: 'between', title: 'written between the resets' }));
    const pulled = (await tasks.find().exec()).find((d) => d.id.startsWith('d'))!;
    await pulled.incrementalPatch({ title: 'edited between the resets' });
    await resets.force('tasks');
    await new Promise((r) => setTimeout(r, 1_100));
    await device.resume();

    await waitFor('the reset completes', () => results[0], 30_000);
    expect(results[0]).toMatchObject({ reason: 'forced', mode: 'recoverUnsyncedChanges', discarded: [] });
    expect(results[0]!.recovered.map((c) => c.id).sort()).toEqual(['between', pulled.id, 'unsynced'].sort());
    await device.waitForSync();
    const server = await stored(db);
    expect(server).toMatchObject({ unsynced: 'written offline', between: 'written between the resets', [pulled.id]: 'edited between the resets' });
    expect(Object.keys(server)).toHaveLength(202);
    expect(sorted(await titles(device))).toEqual(sorted(server));
    expect(results).toHaveLength(1);
  });
});

describe('a reset cut short', () => {
  it('is finished on the next open, and the writes it was carrying are kept', async () => {
    const gateway = await startTestGateway();
    const db = await openDb(gateway.database);
    const storage = getRxStorageMemory();
    const databaseName = uniqueName('interrupted');
    // The app stops in the middle of the reset (here: its onBefore throws).
    const first = await openTestClient(gateway.wsUrl, { storage, databaseName, clientReset: { onBefore: () => { throw new Error('the app stopped here'); } } });
    const errors: string[] = [];
    first.errors$.subscribe((e) => 'message' in e && errors.push(e.message));
    await gateway.collections.get('tasks')!.writer.push([{ assumedMasterState: null, newDocumentState: { ...newTask({ id: 'synced' }), _deleted: false } }]);
    await waitFor('the device has it (and a checkpoint)', () => first.collections.tasks!.findOne('synced').exec());
    await first.pause();
    await first.collections.tasks!.insert(newTask({ id: 'unsynced', title: 'written offline' }));
    await new ClientResets(db).force('tasks');
    await new Promise((r) => setTimeout(r, 1_100)); // the gateway reads reset documents at most once a second
    await first.resume();
    await waitFor('the reset is cut short', () => errors.find((m) => m.includes('client reset failed: the app stopped here')));
    await first.close();
    expect((await stored(db)).unsynced).toBeUndefined();

    const results: ClientResetResult[] = [];
    const second = await openTestClient(gateway.wsUrl, { storage, databaseName, clientReset: { onAfter: (r) => void results.push(r) } });
    await waitFor('the reset is finished', () => results[0]);
    expect(results[0]).toMatchObject({ reason: 'forced', mode: 'recoverUnsyncedChanges' });
    expect(results[0]!.recovered.map((c) => c.id)).toEqual(['unsynced']);
    await waitFor('the write it carried lands', async () => (await stored(db)).unsynced === 'written offline');
    await second.waitForSync();
    expect(Object.keys(sorted(await titles(second)))).toEqual(['synced', 'unsynced']);
  });
});

function sorted<T extends Record<string, unknown>>(o: T): T {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : 1))) as T;
}
