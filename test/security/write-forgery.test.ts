// Write forgery: a delete is a write like any other (no tombstone planted on ids a user does not
// hold), refusals say nothing about documents a user cannot read, and nothing can be stored that
// the API could not return.
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, newTask, openDb, rulesFixture, startTestGateway } from '../helpers/harness.ts';
import { attacker, expectNothingLeaked, seed, tasksOps } from './attack.ts';

afterEach(cleanup);

describe('forged writes', () => {
  it('cannot plant tombstones: deleting what does not exist or what the user cannot read writes nothing', async () => {
    const gateway = await startTestGateway({ rulesPath: rulesFixture('owner-only') });
    await seed(gateway, 'tasks', [newTask({ id: 'ann-existing', ownerId: 'ann', title: 'ann secret title' })]);
    const db = await openDb(gateway.database);
    const ops = tasksOps(gateway);
    const bob = await attacker(gateway, 'bob');

    const planted = Array.from({ length: 999 }, (_, i) => ({ assumedMasterState: null, newDocumentState: { id: `ann-future-${i}`, _deleted: true, ownerId: 'ann', junk: 'x'.repeat(100) } }));
    planted.push({ assumedMasterState: null, newDocumentState: { id: 'ann-future-big', _deleted: true, ownerId: 'bob', junk: 'y'.repeat(4_000_000) } });
    const missing = await bob.http(ops.push, { rows: planted });
    expect(missing.errors).toBeUndefined();
    expect(missing.data!.pushTasks).toEqual({ conflicts: [], rejected: [] });
    // Deleting Ann's document gets the very same answer, and changes nothing.
    const foreign = await bob.http(ops.push, { rows: [{ assumedMasterState: null, newDocumentState: { id: 'ann-existing', _deleted: true } }] });
    expect(foreign.data!.pushTasks).toEqual({ conflicts: [], rejected: [] });
    expect(await db.collection('tasks').countDocuments()).toBe(1);
    expect(await db.collection('tasks').findOne({ _id: 'ann-existing' as never })).toMatchObject({ _sync: { deleted: false } });

    // Ann can still use the ids Bob tried to take.
    const ann = await attacker(gateway, 'ann');
    const created = await ann.http(ops.push, { rows: [{ assumedMasterState: null, newDocumentState: { ...newTask({ id: 'ann-future-7', ownerId: 'ann' }), _deleted: false } }] });
    expect(created.data!.pushTasks).toEqual({ conflicts: [], rejected: [] });
    expect(await db.collection('tasks').findOne({ _id: 'ann-future-7' as never })).toMatchObject({ ownerId: 'ann', _sync: { deleted: false } });
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
    expect(taken.errors?.[0]).toEqual(free.errors?.[0]);
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
