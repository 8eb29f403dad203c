// Issue 2, case 4: a retried push (its acknowledgement lost) does not apply twice.
import { afterEach, describe, expect, it } from 'vitest';
import { syncOperations } from '../protocol/operations.ts';
import { cleanup, graphqlHttp, newTask, openDb, startTestGateway, syncedDocument } from './helpers/harness.ts';

afterEach(cleanup);

describe('push idempotency', () => {
  it('acknowledges a repeated push without writing again, and still refuses a stale one', async () => {
    const gateway = await startTestGateway();
    const ops = syncOperations(gateway.model.collections.find((c) => c.name === 'tasks')!);
    const db = await openDb(gateway.database);
    const changes: string[] = [];
    gateway.collections.get('tasks')!.feed.subscribe((batch) => changes.push(...batch.documents.map((d) => `${d.id}:${d.title}`)));

    const created = { ...newTask({ title: 'v1' }), _deleted: false };
    const insert = { rows: [{ assumedMasterState: null, newDocumentState: created }] };
    const first = await graphqlHttp(gateway.httpUrl, ops.push, insert);
    expect(first.data!.pushTasks).toEqual({ conflicts: [], rejected: [] });
    const afterFirst = await syncedDocument(db, 'tasks', created.id);

    // The client never saw the ack and sends the very same push again.
    const retried = await graphqlHttp(gateway.httpUrl, ops.push, insert);
    expect(retried.data!.pushTasks).toEqual({ conflicts: [], rejected: [] });
    const afterRetry = await syncedDocument(db, 'tasks', created.id);
    expect(afterRetry!._sync).toEqual(afterFirst!._sync); // same sequence, same timestamp: not written again

    // An update pushed twice, with another client's change in between: the retry is stale.
    const update = { rows: [{ assumedMasterState: created, newDocumentState: { ...created, title: 'v2' } }] };
    expect((await graphqlHttp(gateway.httpUrl, ops.push, update)).data!.pushTasks.conflicts).toEqual([]);
    const v3 = { ...created, title: 'v3' };
    await graphqlHttp(gateway.httpUrl, ops.push, { rows: [{ assumedMasterState: { ...created, title: 'v2' }, newDocumentState: v3 }] });
    const stale = await graphqlHttp(gateway.httpUrl, ops.push, update);
    expect(stale.data!.pushTasks.conflicts).toEqual([expect.objectContaining({ id: created.id, title: 'v3' })]);
    expect((await db.collection('tasks').findOne({ _id: created.id as never }))!.title).toBe('v3');

    await waitForFeed(() => changes.length >= 3);
    expect(changes).toEqual([`${created.id}:v1`, `${created.id}:v2`, `${created.id}:v3`]);
  });

  it('writes a push of 250 updates and 250 optimistic inserts of existing documents (FerretDB v1 hangs on 100 updates in one command)', async () => {
    const gateway = await startTestGateway();
    const ops = syncOperations(gateway.model.collections.find((c) => c.name === 'tasks')!);
    const db = await openDb(gateway.database);
    const tasks = Array.from({ length: 500 }, () => ({ ...newTask({ title: 'v1' }), _deleted: false }));
    const inserted = await graphqlHttp(gateway.httpUrl, ops.push, { rows: tasks.map((t) => ({ assumedMasterState: null, newDocumentState: t })) });
    expect(inserted.data!.pushTasks).toEqual({ conflicts: [], rejected: [] });
    // Half as stock RxDB updates (on top of the stored state), half as stamped changes from a
    // device that never saw the documents (inserted optimistically, then merged).
    const rows = tasks.map((t, i) =>
      i % 2 === 0
        ? { assumedMasterState: t, newDocumentState: { ...t, title: 'v2' } }
        : { assumedMasterState: null, newDocumentState: { ...t, title: 'v2', _stamps: { title: '0zzzzzzzzzz:0000:device' } } },
    );
    const updated = await graphqlHttp(gateway.httpUrl, ops.push, { rows });
    expect(updated.data!.pushTasks.rejected).toEqual([]);
    expect(await db.collection('tasks').countDocuments({ title: 'v2' })).toBe(500);
  });

  it('an insert of a deleted id (pushed without a read) still meets its tombstone: the delete stands', async () => {
    const gateway = await startTestGateway();
    const ops = syncOperations(gateway.model.collections.find((c) => c.name === 'tasks')!);
    const db = await openDb(gateway.database);
    const created = { ...newTask({ title: 'v1' }), _deleted: false };
    await graphqlHttp(gateway.httpUrl, ops.push, { rows: [{ assumedMasterState: null, newDocumentState: created }] });
    await graphqlHttp(gateway.httpUrl, ops.push, { rows: [{ assumedMasterState: created, newDocumentState: { ...created, _deleted: true } }] });
    const tombstone = await syncedDocument(db, 'tasks', created.id);
    expect(tombstone!._sync.deleted).toBe(true);

    // A device that never saw the document or its delete creates the same id again, unstamped.
    const again = await graphqlHttp(gateway.httpUrl, ops.push, { rows: [{ assumedMasterState: null, newDocumentState: { ...created, title: 'again' } }] });
    expect(again.data!.pushTasks.conflicts).toEqual([expect.objectContaining({ id: created.id, _deleted: true })]);
    expect(await db.collection('tasks').findOne({ _id: created.id as never })).toBeNull();
    expect((await syncedDocument(db, 'tasks', created.id))!._sync).toEqual(tombstone!._sync);
  });
});

async function waitForFeed(check: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !check(); i++) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, 300)); // and nothing more arrives
}
