// Write forgery: a delete is a write like any other (no tombstone planted on ids a user does not
// hold), refusals say nothing about documents a user cannot read, and nothing can be stored that
// the API could not return.
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, newTask, openDb, rulesFixture, startTestGateway, syncedDocument } from '../helpers/harness.ts';
import { attacker, expectNothingLeaked, seed, tasksOps } from './attack.ts';

afterEach(cleanup);

describe('forged writes', () => {
  it('cannot plant tombstones: a delete is checked like an insert, and one of a document the user cannot read gets the same answer and writes nothing', async () => {
    const gateway = await startTestGateway({ rulesPath: rulesFixture('owner-only') });
    await seed(gateway, 'tasks', [newTask({ id: 'ann-existing', ownerId: 'ann', title: 'ann secret title' })]);
    const db = await openDb(gateway.database);
    const ops = tasksOps(gateway);
    const bob = await attacker(gateway, 'bob');
    const push = async (rows: unknown[]) => (await bob.http(ops.push, { rows })).data!.pushTasks;
    const tombstone = (id: string, fields: Record<string, unknown>) => ({ assumedMasterState: null, newDocumentState: { ...newTask({ id, ...fields }), _deleted: true } });

    // The attack: 1,000 tombstones on ids Ann will use, with junk, one of 4 MB.
    const planted = Array.from({ length: 999 }, (_, i) => ({ assumedMasterState: null, newDocumentState: { id: `ann-future-${i}`, _deleted: true, ownerId: 'ann', junk: 'x'.repeat(100) } }));
    planted.push({ assumedMasterState: null, newDocumentState: { id: 'ann-future-big', _deleted: true, ownerId: 'bob', junk: 'y'.repeat(4_000_000) } });
    const refused = await push(planted);
    expect(refused.rejected).toHaveLength(1_000);
    expect(new Set(refused.rejected.map((r: { code: string }) => r.code))).toEqual(new Set(['SCHEMA_VIOLATION']));
    // Well-formed, in Ann's name: refused for what it is, on a free id and on Ann's own alike.
    const onFree = await push([tombstone('ann-future-1', { ownerId: 'ann' })]);
    const onAnns = await push([tombstone('ann-existing', { ownerId: 'ann' })]);
    expect(JSON.stringify(onAnns).replaceAll('ann-existing', 'ID')).toBe(JSON.stringify(onFree).replaceAll('ann-future-1', 'ID'));
    expect(onFree.rejected[0]).toMatchObject({ code: 'PERMISSION_DENIED', realmCode: 231 });
    // In his own name: a delete of what he created offline is stored; one of Ann's document is
    // answered the same way and changes nothing.
    expect(await push([tombstone('bob-offline', { ownerId: 'bob' })])).toEqual({ conflicts: [], rejected: [] });
    expect(await push([tombstone('ann-existing', { ownerId: 'bob' })])).toEqual({ conflicts: [], rejected: [] });

    // Ann's task, and Bob's tombstone beside the documents (deletes leave no document).
    expect(await db.collection('tasks').countDocuments()).toBe(1);
    expect(await db.collection('_tributary_sync_tasks').countDocuments()).toBe(2);
    expect(await syncedDocument(db, 'tasks', 'ann-existing')).toMatchObject({ ownerId: 'ann', _sync: { deleted: false } });
    expect(await syncedDocument(db, 'tasks', 'bob-offline')).toMatchObject({ ownerId: 'bob', _sync: { deleted: true } });

    // Ann can still use the ids Bob tried to take.
    const ann = await attacker(gateway, 'ann');
    const created = await ann.http(ops.push, { rows: [{ assumedMasterState: null, newDocumentState: { ...newTask({ id: 'ann-future-7', ownerId: 'ann' }), _deleted: false } }] });
    expect(created.data!.pushTasks).toEqual({ conflicts: [], rejected: [] });
    expect(await syncedDocument(db, 'tasks', 'ann-future-7')).toMatchObject({ ownerId: 'ann', _sync: { deleted: false } });
    expectNothingLeaked(bob, ['ann secret title']);
  });

  it('answers an insert of another user’s id as it answers an insert of a free id the user may not make', async () => {
    const gateway = await startTestGateway({ rulesPath: rulesFixture('owner-only') });
    await seed(gateway, 'tasks', [newTask({ id: 'ann-existing', ownerId: 'ann', title: 'ann secret title' })]);
    const ops = tasksOps(gateway);
    const bob = await attacker(gateway, 'bob');
    const insert = 'mutation ($input: TaskInput!) { insertTask(input: $input) { id } }';
    const strip = (t: Record<string, unknown>) => ({ ...t });

    // As Ann's: refused for what the document is, whether or not the id exists.
    const taken = await bob.http(insert, { input: strip(newTask({ id: 'ann-existing', ownerId: 'ann' })) });
    const free = await bob.http(insert, { input: strip(newTask({ id: 'no-such-id', ownerId: 'ann' })) });
    // (The reason names the id the client wrote, which it knows: the rest is the same.)
    const withoutId = (error: { message: string } | undefined, id: string) => error && { ...error, message: error.message.replace(JSON.stringify(id), '<id>') };
    expect(withoutId(taken.errors?.[0], 'ann-existing')).toEqual(withoutId(free.errors?.[0], 'no-such-id'));
    expect(taken.errors?.[0]?.extensions?.code).toBe('PERMISSION_DENIED');

    // Over sync, likewise: the same rejection and the same authoritative state shape.
    const row = (id: string) => ({ assumedMasterState: null, newDocumentState: { ...newTask({ id, ownerId: 'ann' }), _deleted: false } });
    const pushTaken = await bob.http(ops.push, { rows: [row('ann-existing')] });
    const pushFree = await bob.http(ops.push, { rows: [row('no-such-id')] });
    const normalize = (answer: typeof pushTaken, id: string) => JSON.stringify(answer.data!.pushTasks).replaceAll(id, 'ID');
    expect(normalize(pushTaken, 'ann-existing')).toBe(normalize(pushFree, 'no-such-id'));

    // As his own: an id in use is refused the same way whoever holds it, live or deleted.
    const own = await bob.http(insert, { input: strip(newTask({ id: 'bob-1', ownerId: 'bob' })) });
    expect(own.errors).toBeUndefined();
    const again = await bob.http(insert, { input: strip(newTask({ id: 'bob-1', ownerId: 'bob' })) });
    const onAnns = await bob.http(insert, { input: strip(newTask({ id: 'ann-existing', ownerId: 'bob' })) });
    expect(again.errors?.[0]?.extensions?.code).toBe('ALREADY_EXISTS');
    expect(onAnns.errors?.[0]?.message.replace('ann-existing', 'ID')).toBe(again.errors?.[0]?.message.replace('bob-1', 'ID'));
    expectNothingLeaked(bob, ['ann secret title']);
  });

  it('answers a push of many rows for one id row by row, not with an internal error after writing some', async () => {
    const gateway = await startTestGateway();
    const user = await attacker(gateway, 'user-1');
    const task = newTask();
    const rows = Array.from({ length: 20 }, (_, i) => ({ assumedMasterState: null, newDocumentState: { ...task, title: `v${i}`, _deleted: false } }));
    const answer = await user.http(tasksOps(gateway).push, { rows });
    expect(answer.errors).toBeUndefined();
    expect(answer.data!.pushTasks.rejected).toEqual([]);
    // The first row inserts; every later one, made without a base, is a conflict with it.
    expect(answer.data!.pushTasks.conflicts).toHaveLength(19);
    const db = await openDb(gateway.database);
    expect(await db.collection('tasks').findOne({ _id: task.id as never })).toMatchObject({ title: 'v0' });
  });

  it('cannot store an integer the API could not return', async () => {
    const gateway = await startTestGateway();
    const db = await openDb(gateway.database);
    const user = await attacker(gateway, 'user-1');
    const task = newTask({ id: 'counter', minutesLogged: 0 });
    expect((await user.http('mutation ($input: TaskInput!) { insertTask(input: $input) { id } }', { input: task })).errors).toBeUndefined();
    const inc = 'mutation ($by: Int!) { updateTask(id: "counter", inc: { minutesLogged: $by }) { minutesLogged } }';
    expect((await user.http(inc, { by: 2_147_483_647 })).data!.updateTask.minutesLogged).toBe(2_147_483_647);
    const past = await user.http(inc, { by: 1 });
    expect(past.errors?.[0]).toMatchObject({ extensions: { code: 'SCHEMA_VIOLATION', field: 'minutesLogged' } });
    expect(await db.collection('tasks').findOne({ _id: 'counter' as never })).toMatchObject({ minutesLogged: 2_147_483_647 });
    // Over sync too.
    const ops = tasksOps(gateway);
    const pushed = await user.http(ops.push, { rows: [{ assumedMasterState: null, newDocumentState: { ...newTask({ id: 'big', priority: 2 ** 40 }), _deleted: false } }] });
    expect(pushed.data!.pushTasks.rejected[0]).toMatchObject({ code: 'SCHEMA_VIOLATION', field: 'priority' });
    expect((await user.http('query { task(id: "counter") { minutesLogged } }')).data!.task.minutesLogged).toBe(2_147_483_647);
  });
});
