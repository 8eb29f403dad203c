// The "lost delete" the randomized convergence run reported: a device inserts a document and
// deletes it while the insert's push is still on its way. Nothing is lost: RxDB pushes the delete
// after the insert (with the inserted state as its assumed master state) and the gateway applies
// it. What failed was the run's check that every replica had converged: it compared states only,
// and at that moment no replica held the document (the device had deleted it, the server and the
// other devices did not have it yet), so the run went on to read MongoDB just as the insert
// landed, before the delete. `converged()` first waits until no client has anything left to sync.
import { afterEach, describe, expect, it } from 'vitest';
import type { TributaryClient } from '../client-sdk/index.ts';
import type { PushResult } from '../protocol/messages.ts';
import { cleanup, converged, newTask, openDb, openTestClient, startTestGateway, syncedDocument, waitFor } from './helpers/harness.ts';

afterEach(cleanup);

describe('a delete made while the insert is being pushed', () => {
  it('reaches the server, and no replica counts as converged before it does', async () => {
    const gateway = await startTestGateway();
    const db = await openDb(gateway.database);
    const a = await openTestClient(gateway.wsUrl);
    const b = await openTestClient(gateway.wsUrl);
    await Promise.all([a.waitForSync(), b.waitForSync()]);

    // Hold every push at the gateway until released, recording what arrives.
    const writer = gateway.collections.get('tasks')!.writer;
    const push = writer.push.bind(writer);
    const pushed: Array<{ deleted: boolean; assumed: boolean }> = [];
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    writer.push = async (rows, permissions) => {
      for (const row of rows as Array<{ newDocumentState: { _deleted?: boolean }; assumedMasterState?: unknown }>) {
        pushed.push({ deleted: row.newDocumentState._deleted === true, assumed: Boolean(row.assumedMasterState) });
      }
      await released;
      return push(rows, permissions) as Promise<PushResult>;
    };

    const task = newTask();
    await a.collections.tasks!.insert(task);
    await waitFor('the insert is at the gateway', () => pushed.length === 1);
    await (await a.collections.tasks!.findOne(task.id).exec())!.remove();

    const server = async () => {
      const doc = await syncedDocument(db, 'tasks', task.id);
      return doc && !doc._sync.deleted ? String(doc._id) : null;
    };
    const local = async (client: TributaryClient) => (await client.collections.tasks!.findOne(task.id).exec())?.id ?? null;
    // Every replica holds nothing right now, but a's insert and delete are still to land.
    expect(await converged([a, b], server, local, 500)).toBe(false);

    release();
    await waitFor('converged', () => converged([a, b], server, local));
    expect(await local(a)).toBeNull();
    expect(await local(b)).toBeNull();
    expect((await syncedDocument(db, 'tasks', task.id))?._sync.deleted).toBe(true);
    expect(await db.collection('tasks').findOne({ _id: task.id as never })).toBeNull();
    // The insert, then the delete on top of it.
    expect(pushed).toEqual([
      { deleted: false, assumed: false },
      { deleted: true, assumed: true },
    ]);
  });
});
