// Hidden fields (field-level rules): a user may filter, count, watch and be told "already
// applied" only about fields it may read. Filters on a hidden field are refused as if the field
// did not exist; a push naming a hidden field is refused whatever the value, so a right guess
// and a wrong one get the same answer; a push without the hidden fields keeps them.
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, newTask, openDb, rulesFixture, startTestGateway, waitFor } from '../helpers/harness.ts';
import { attacker, expectNothingLeaked, seed, tasksOps, type GraphQLAnswer } from './attack.ts';

afterEach(cleanup);

const SECRET = 'SECRET-DESCRIPTION-8c1f';
const task = newTask({ id: 'shared-1', ownerId: 'lead', assigneeIds: ['bob'], description: SECRET, priority: 4, title: 'visible title' });

async function setup() {
  const gateway = await startTestGateway({ rulesPath: rulesFixture('hidden-fields') });
  await seed(gateway, 'tasks', [task, newTask({ id: 'shared-2', ownerId: 'lead', assigneeIds: ['bob'], description: 'other', priority: 1 })]);
  const bob = await attacker(gateway, 'bob');
  return { gateway, bob, ops: tasksOps(gateway) };
}

function expectUnknownField(answer: GraphQLAnswer, field: string) {
  expect(answer.errors?.[0]?.extensions?.code).toBe('BAD_QUERY');
  expect(answer.errors?.[0]?.message).toContain(`unknown field ${field}`);
  expect(answer.data?.tasks ?? answer.data?.pullTasks ?? answer.data?.bootstrapTasks ?? null).toBeNull();
}

describe('fields a user may not read', () => {
  it('cannot be filtered on, counted or watched: every such filter is refused as an unknown field', async () => {
    const { bob, ops } = await setup();
    expectUnknownField(await bob.http('query ($f: JSONObject) { tasks(filter: $f) { id } }', { f: { description: { $regex: '^S' } } }), 'description');
    expectUnknownField(await bob.http('query ($f: JSONObject) { tasks(filter: $f) { id } }', { f: { $or: [{ title: 'x' }, { priority: 4 }] } }), 'priority');
    expectUnknownField(await bob.http(ops.pull, { checkpoint: null, limit: 10, view: [{ priority: { $gte: 4 } }] }), 'priority');
    expectUnknownField(await bob.http(ops.bootstrap, { query: { priority: 4 }, limit: 10 }), 'priority');
    expectUnknownField(await bob.http(ops.bootstrap, { query: {}, exclude: [{ priority: { $lt: 4 } }], limit: 10 }), 'priority');

    const watch = bob.subscribe('subscription ($f: JSONObject) { watchTasks(filter: $f) { id } }', { f: { priority: 4 } });
    const stream = bob.subscribe(ops.stream, { view: [{ priority: 4 }] });
    await waitFor('both subscriptions refused', () => watch.events.length + watch.errors.length > 0 && stream.events.length + stream.errors.length > 0);
    for (const refused of [watch.events[0], stream.events[0]]) {
      expect(JSON.stringify(refused)).toContain('unknown field priority');
    }

    // What it may read still works, and what it receives has no hidden field.
    const list = await bob.http('query { tasks { id title } }');
    expect(list.data!.tasks.map((t: { id: string }) => t.id)).toEqual(['shared-1', 'shared-2']);
    const pulled = await bob.http(ops.pull, { checkpoint: null, limit: 10, view: [{ title: 'visible title' }] });
    expect(pulled.data!.pullTasks.documents.find((d: { id: string }) => d.id === 'shared-1')).not.toHaveProperty('priority');
    const first = await bob.http(ops.bootstrap, { query: {}, limit: 10 });
    expect(first.data!.bootstrapTasks.estimatedTotal).toBe(2);
    expectNothingLeaked(bob, [SECRET]);
    await bob.close();
  });

  it('give the same answer to a push with the right value and one with a wrong guess, and keep their value when left out', async () => {
    const { gateway, bob, ops } = await setup();
    const visible = { ...task, _deleted: false } as Record<string, unknown>;
    delete visible.description;
    delete visible.priority;
    const guess = async (description: string) => {
      const answer = await bob.http(ops.push, { rows: [{ assumedMasterState: visible, newDocumentState: { ...visible, description } }] });
      expect(answer.errors).toBeUndefined();
      return answer.data!.pushTasks;
    };
    const right = await guess(SECRET);
    const wrong = await guess('a wrong guess');
    expect(right).toEqual(wrong);
    expect(right.rejected).toEqual([{ id: 'shared-1', code: 'PERMISSION_DENIED', field: 'description', message: 'write to "shared-1" in table "Task" not allowed; the role may not write Task.description', realmCode: 231 }]);

    // Stamped pushes too: a stamp on a hidden field is the same refusal.
    const stamped = await bob.http(ops.push, { rows: [{ assumedMasterState: visible, newDocumentState: { ...visible, _stamps: { priority: '000mghl5xb4:0000:dev' } } }] });
    expect(stamped.data!.pushTasks.rejected[0]).toMatchObject({ code: 'PERMISSION_DENIED', field: 'priority' });

    // A retry of the state it sees is "already applied", whatever the hidden fields hold.
    const retry = await bob.http(ops.push, { rows: [{ assumedMasterState: visible, newDocumentState: visible }] });
    expect(retry.data!.pushTasks).toEqual({ conflicts: [], rejected: [] });

    // An edit of a field it may write leaves the hidden ones as they were.
    const edit = await bob.http(ops.push, { rows: [{ assumedMasterState: visible, newDocumentState: { ...visible, title: 'edited by bob' } }] });
    expect(edit.data!.pushTasks).toEqual({ conflicts: [], rejected: [] });
    const stored = await (await openDb(gateway.database)).collection('tasks').findOne({ _id: 'shared-1' as never });
    expect(stored).toMatchObject({ title: 'edited by bob', description: SECRET, priority: 4 });
    expectNothingLeaked(bob, [SECRET]);
    await bob.close();
  });
});
