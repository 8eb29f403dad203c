// Issue 2, case 2: offline writes are kept locally and pushed on reconnect, in both directions.
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, newTask, openDb, openTestClient, startTestGateway, syncedIds, waitFor } from './helpers/harness.ts';

afterEach(cleanup);

describe('offline writes', () => {
  it('pushes 100 offline writes on reconnect and receives the other client’s offline writes', async () => {
    const gateway = await startTestGateway();
    const alice = await openTestClient(gateway.wsUrl);
    const bob = await openTestClient(gateway.wsUrl);
    await waitFor('both connected', () => alice.connectionState === 'connected' && bob.connectionState === 'connected');

    await alice.pause();
    await bob.pause();
    expect(alice.connectionState).toBe('paused');

    // 100 writes while offline: 60 inserts, 30 updates of those, 10 deletes.
    const aliceTasks = Array.from({ length: 60 }, (_, i) => newTask({ title: `alice offline ${i}` }));
    for (const task of aliceTasks) await alice.collections.tasks!.insert(task);
    for (const task of aliceTasks.slice(0, 30)) {
      const doc = await alice.collections.tasks!.findOne(task.id).exec();
      await doc!.incrementalPatch({ status: 'IN_PROGRESS' });
    }
    for (const task of aliceTasks.slice(50, 60)) {
      const doc = await alice.collections.tasks!.findOne(task.id).exec();
      await doc!.remove();
    }
    const bobTasks = Array.from({ length: 5 }, (_, i) => newTask({ title: `bob offline ${i}`, ownerId: 'user-2' }));
    await bob.collections.tasks!.bulkInsert(bobTasks);

    // Nothing reached the server while offline.
    const db = await openDb(gateway.database);
    expect(await db.collection('tasks').countDocuments()).toBe(0);

    await alice.resume();
    await bob.resume();

    const live = aliceTasks.slice(0, 50);
    await waitFor('bob has alice’s 50 live tasks', async () => (await bob.collections.tasks!.count({ selector: { title: { $regex: '^alice' } } }).exec()) === 50);
    await waitFor('alice has bob’s 5 tasks', async () => (await alice.collections.tasks!.count({ selector: { ownerId: 'user-2' } }).exec()) === 5);

    const onBob = await bob.collections.tasks!.findByIds(live.slice(0, 30).map((t) => t.id)).exec();
    expect([...onBob.values()].every((d) => d.status === 'IN_PROGRESS')).toBe(true);
    for (const deleted of aliceTasks.slice(50)) expect(await bob.collections.tasks!.findOne(deleted.id).exec()).toBeNull();

    expect(await syncedIds(db, 'tasks', false)).toHaveLength(55);
    expect(await syncedIds(db, 'tasks', false, { status: 'IN_PROGRESS' })).toHaveLength(30);
    expect(await syncedIds(db, 'tasks', true)).toHaveLength(10);
    expect(await db.collection('tasks').countDocuments()).toBe(55); // deletes leave nothing behind for other services
  });

  it('pauses and closes while reconnecting to a gateway that is down', async () => {
    const gateway = await startTestGateway();
    const client = await openTestClient(gateway.wsUrl);
    const other = await openTestClient(gateway.wsUrl);
    await Promise.all([client.waitForSync(), other.waitForSync()]);
    await gateway.stop();
    // Each is retrying (a connection attempt under way, or waiting for the next) when told to stop.
    await waitFor('reconnecting', () => client.connectionState !== 'connected' && other.connectionState !== 'connected');
    await client.pause();
    expect(client.connectionState).toBe('paused');
    await other.close();
    expect(other.connectionState).toBe('closed');
  });
});
