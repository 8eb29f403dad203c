// A push interrupted between its document write and its metadata write (the gateway died, or the
// store failed it) must not count a device's counter increment twice when the device pushes the
// same change again: the pending record makes the next repair complete the write
// (gateway/sync/reconcile.ts) instead of taking it for another service's change.
import { afterEach, describe, expect, it } from 'vitest';
import { CollectionStore, type MetaDocument } from '../gateway/store/collection-store.ts';
import { cleanup, newTask, openDb, openTestClient, startTestGateway, syncedDocument, waitFor } from './helpers/harness.ts';

afterEach(cleanup);

/** Makes the store's next bulk write to `target` fail, as a gateway dying at that point would leave it. */
function failNextWrite(store: CollectionStore, target: 'documents' | 'meta'): { failed: () => boolean } {
  const original = store.writeMany.bind(store);
  let failed = false;
  store.writeMany = (async (collection, ops) => {
    if (!failed && collection === store[target]) {
      failed = true;
      throw new Error(`the gateway stopped before writing ${target}`);
    }
    return original(collection, ops);
  }) as CollectionStore['writeMany'];
  return { failed: () => failed };
}

describe('a push interrupted between the document and its metadata', () => {
  for (const target of ['meta', 'documents'] as const) {
    it(`counts a counter increment once when the device pushes it again (failed write: ${target})`, async () => {
      const gateway = await startTestGateway();
      const db = await openDb(gateway.database);
      const store = gateway.collections.get('tasks')!.store;
      const device = await openTestClient(gateway.wsUrl);
      const task = newTask({ minutesLogged: 10 });
      await device.collections.tasks!.insert(task);
      await device.waitForSync();
      await waitFor('the task is at the gateway', async () => (await syncedDocument(db, 'tasks', task.id))?.minutesLogged === 10);

      const fault = failNextWrite(store, target);
      await (await device.collections.tasks!.findOne(task.id).exec())!.incrementalPatch({ minutesLogged: 18 }); // +8
      await waitFor('the first push failed', () => fault.failed());
      // With the metadata write failed, the document holds the increment and its metadata does not.
      if (target === 'meta') expect((await db.collection('tasks').findOne({ _id: task.id as never }))!.minutesLogged).toBe(18);

      // The device retries the same push; the gateway completes or redoes the write, once.
      const consistent = async () => {
        const doc = await db.collection('tasks').findOne({ _id: task.id as never });
        const meta = await store.meta.findOne({ _id: task.id as never });
        return doc !== null && meta !== null && CollectionStore.digest(meta.hashes ?? {}) === CollectionStore.digest(store.fieldHashes(doc as never));
      };
      if (target === 'meta') expect(await consistent()).toBe(false); // what a crash leaves
      await waitFor('the device and MongoDB agree, the metadata with them', async () => {
        await device.waitForSync();
        const stored = await db.collection('tasks').findOne({ _id: task.id as never });
        const local = (await device.collections.tasks!.findOne(task.id).exec())?.get('minutesLogged');
        return (await consistent()) && stored?.minutesLogged === local;
      });
      expect((await db.collection('tasks').findOne({ _id: task.id as never }))!.minutesLogged).toBe(18);
      expect((await device.collections.tasks!.findOne(task.id).exec())!.get('minutesLogged')).toBe(18);
      // Nothing is left pending once the metadata is written (records are deleted in batches).
      await store.flushPending();
      expect(await store.pending.countDocuments({})).toBe(0);
    });
  }
});

describe('a new document whose metadata another writer wrote between its document and its metadata', () => {
  // An overlap the store locks exclude, unless one was taken over from a holder still writing
  // (its renewals late on a loaded store): another instance's repair completes this push's
  // pending record, and the push's own metadata insert then finds the `_id` taken.
  it('keeps the document: it is not taken back as if over a tombstone, and the push is acknowledged', async () => {
    const gateway = await startTestGateway();
    const db = await openDb(gateway.database);
    const store = gateway.collections.get('tasks')!.store;
    const original = store.writeMany.bind(store);
    let raced = 0;
    store.writeMany = (async (collection: unknown, ops: Array<Record<string, unknown>>) => {
      if (collection === store.meta && raced === 0 && ops.every((op) => 'insertOne' in op)) {
        raced = ops.length;
        await store.meta.insertMany(ops.map((op) => ({ ...(op as { insertOne: { document: MetaDocument } }).insertOne.document })));
      }
      return original(collection as never, ops as never);
    }) as CollectionStore['writeMany'];

    const device = await openTestClient(gateway.wsUrl);
    const task = newTask({ title: 'raced' });
    await device.collections.tasks!.insert(task);
    await device.waitForSync();
    expect(raced).toBe(1);
    // Acknowledged, so stored: the document with the metadata that says it is live.
    expect(await db.collection('tasks').findOne({ _id: task.id as never })).toMatchObject({ title: 'raced' });
    expect(await store.meta.findOne({ _id: task.id as never })).toMatchObject({ deleted: false });
    expect((await device.collections.tasks!.findOne(task.id).exec())?.get('title')).toBe('raced');
  });
});
