// Issue 2, case 1: two clients in separate RxDB databases, online, see each other's changes
// live; MongoDB holds them.
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, newTask, openDb, openTestClient, startTestGateway, syncedDocument, waitFor } from './helpers/harness.ts';

afterEach(cleanup);

describe('live two-way sync', () => {
  it('delivers each client’s inserts, updates and deletes to the other and stores them in MongoDB', async () => {
    const gateway = await startTestGateway();
    const alice = await openTestClient(gateway.wsUrl);
    const bob = await openTestClient(gateway.wsUrl);
    await waitFor('both connected', () => alice.connectionState === 'connected' && bob.connectionState === 'connected');

    const aliceTask = newTask({ title: 'from alice', dueDate: '2026-12-24T18:00:00.000Z' });
    const bobTask = newTask({ title: 'from bob', ownerId: 'user-2' });
    await alice.collections.tasks!.insert(aliceTask);
    await bob.collections.tasks!.insert(bobTask);

    await waitFor('bob has alice’s task', () => bob.collections.tasks!.findOne(aliceTask.id).exec());
    await waitFor('alice has bob’s task', () => alice.collections.tasks!.findOne(bobTask.id).exec());

    const onBob = await bob.collections.tasks!.findOne(aliceTask.id).exec();
    await onBob!.incrementalPatch({ status: 'DONE', tags: ['work', 'urgent'] });
    await waitFor('alice sees bob’s update', async () => (await alice.collections.tasks!.findOne(aliceTask.id).exec())?.status === 'DONE');

    const onAlice = await alice.collections.tasks!.findOne(bobTask.id).exec();
    await onAlice!.remove();
    await waitFor('bob sees alice’s delete', async () => (await bob.collections.tasks!.findOne(bobTask.id).exec()) === null);

    const db = await openDb(gateway.database);
    const stored = await syncedDocument(db, 'tasks', aliceTask.id);
    expect(stored).toMatchObject({ title: 'from alice', status: 'DONE', tags: ['work', 'urgent'], _sync: { deleted: false } });
    expect(stored!.dueDate).toEqual(new Date('2026-12-24T18:00:00.000Z'));
    // Deleted: gone from the collection, with a tombstone (its queryable fields) beside it.
    expect(await db.collection('tasks').findOne({ _id: bobTask.id as never })).toBeNull();
    expect(await syncedDocument(db, 'tasks', bobTask.id)).toMatchObject({ title: 'from bob', _sync: { deleted: true } });
  });
});
