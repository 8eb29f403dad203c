// Issue 14, point 3: tombstones are trimmed after TRIBUTARY_TOMBSTONE_RETENTION (shortened here);
// a device offline past it gets a client reset instead of missing deletes, and ends equal to
// MongoDB with its subscriptions bootstrapped again; a device that stayed in sync is not reset.
import { afterEach, describe, expect, it } from 'vitest';
import type { ClientResetResult, TributaryClient } from '../client-sdk/index.ts';
import { META_COLLECTION_PREFIX } from '../gateway/store/collection-store.ts';
import { parseDuration } from '../gateway/store/retention.ts';
import { cleanup, newTask, openDb, openTestClient, startTestGateway, waitFor } from './helpers/harness.ts';

afterEach(cleanup);

const ids = async (client: TributaryClient) => (await client.collections.tasks!.find().exec()).map((d) => d.id).sort();

describe('tombstone retention', () => {
  it('trims tombstones in the background; a device offline past retention resets and ends equal to MongoDB, deletes included', async () => {
    const gateway = await startTestGateway({ tombstoneRetentionMs: 1_500 });
    const db = await openDb(gateway.database);
    const resets: Record<string, ClientResetResult[]> = { away: [], present: [] };
    const open = (name: 'away' | 'present') =>
      openTestClient(gateway.wsUrl, { flexibleSync: true, clientReset: { onAfter: (r) => void resets[name]!.push(r) } });
    const writer = await openTestClient(gateway.wsUrl);
    const away = await open('away');
    const present = await open('present');
    for (const device of [away, present]) await device.subscriptions.update((m) => m.add('tasks', 'priority >= 1', { name: 'prioritised' }));

    await writer.collections.tasks!.bulkInsert(['t1', 't2', 't3', 't4'].map((id) => newTask({ id, priority: 2, assigneeIds: ['ann', 'bob'] })));
    await waitFor('the away device has everything', async () => (await ids(away)).length === 4);
    await (await writer.collections.tasks!.findOne('t4').exec())!.incrementalPatch({ assigneeIds: ['bob'] }); // a set removal
    await away.pause();
    await (await writer.collections.tasks!.findOne('t1').exec())!.remove();
    await (await writer.collections.tasks!.findOne('t2').exec())!.remove();
    await (await writer.collections.tasks!.findOne('t3').exec())!.incrementalPatch({ title: 'changed while away' });
    await waitFor('the present device sees the deletes', async () => JSON.stringify(await ids(present)) === '["t3","t4"]');

    const meta = db.collection(`${META_COLLECTION_PREFIX}tasks`);
    await waitFor('both tombstones are trimmed', async () => (await meta.countDocuments({ deleted: true })) === 0, 10_000);
    expect(await meta.countDocuments({ _id: { $in: ['t3', 't4'] } as never })).toBe(2); // live documents keep their metadata
    // The set's state drops the element it removed; its value stays.
    const assignees = async () => JSON.parse(((await meta.findOne({ _id: 't4' as never }))!.stamps as string)).assigneeIds as { add: object; remove: object };
    await waitFor('the removed element leaves the set state', async () => !Object.hasOwn((await assignees()).add, '"ann"'), 10_000);
    expect(Object.keys((await assignees()).add)).toEqual(['"bob"']);
    expect((await db.collection('tasks').findOne({ _id: 't4' as never }))!.assigneeIds).toEqual(['bob']);

    await away.resume();
    await waitFor('the away device resets', () => resets.away![0]);
    expect(resets.away![0]).toMatchObject({ reason: 'history-trimmed', recovered: [], discarded: [], restored: [] });
    await waitFor('the away device equals MongoDB', async () => JSON.stringify(await ids(away)) === '["t3","t4"]');
    expect((await away.collections.tasks!.findOne('t3').exec())!.title).toBe('changed while away');
    await away.subscriptions.waitForSynchronization();
    expect(away.subscriptions.state).toBe('complete');
    expect((await db.collection('tasks').find().toArray()).map((d) => d._id).sort()).toEqual(['t3', 't4']);

    // The device that stayed in sync goes on without a reset.
    await present.pause();
    await present.resume();
    await writer.collections.tasks!.insert(newTask({ id: 't5', priority: 3 }));
    await waitFor('both receive a new task', async () => (await ids(present)).includes('t5') && (await ids(away)).includes('t5'));
    expect(resets.present).toEqual([]);

    // An id whose tombstone was trimmed is free: a document written with it is a new document.
    await writer.collections.tasks!.insert(newTask({ id: 't1-again', priority: 1 }));
    await gateway.collections.get('tasks')!.writer.push([{ assumedMasterState: null, newDocumentState: { ...newTask({ id: 't1', title: 'new t1', priority: 1 }), _deleted: false } }]);
    await waitFor('the re-created t1 reaches the device', async () => (await away.collections.tasks!.findOne('t1').exec())?.title === 'new t1');
  });

  it('reads TRIBUTARY_TOMBSTONE_RETENTION as a duration', () => {
    expect(parseDuration('30d')).toBe(30 * 86_400_000);
    expect(parseDuration('12h')).toBe(43_200_000);
    expect(parseDuration('90m')).toBe(5_400_000);
    expect(parseDuration('1.5s')).toBe(1_500);
    expect(parseDuration('250')).toBe(250);
    expect(() => parseDuration('a month')).toThrow(/not a duration/);
  });
});
