// Issue 6: conflict resolution. Offline clients' edits merge field by field (later stamp wins,
// device id breaks ties), deletes win, per-collection strategies, clock skew bounded.
import { afterEach, describe, expect, it } from 'vitest';
import type { TributaryClient } from '../client-sdk/index.ts';
import type { Gateway } from '../gateway/server.ts';
import { cleanup, graphqlHttp, newTask, openDb, openTestClient, startTestGateway, syncedDocument, waitFor } from './helpers/harness.ts';
import { syncOperations } from '../protocol/operations.ts';
import { toWire } from '../client-sdk/stamps.ts';
import { freePort } from '../gateway/store/embedded-ferretdb.ts';

afterEach(cleanup);

async function twoOfflineClients(gateway: Gateway, options: { clockA?: () => number } = {}) {
  const [a, b] = await offlineClients(gateway, 2, {}, options);
  return { a: a!.client, b: b!.client, id: a!.id };
}

/** `count` clients holding one new task, all offline. */
async function offlineClients(gateway: Gateway, count: number, fields: Record<string, unknown> = {}, options: { clockA?: () => number } = {}) {
  const clients: TributaryClient[] = [];
  for (let i = 0; i < count; i++) clients.push(await openTestClient(gateway.wsUrl, i === 0 ? { clock: options.clockA } : {}));
  const task = newTask({ title: 'original', status: 'TODO', priority: 3, ...fields });
  await clients[0]!.collections.tasks!.insert(task);
  for (const client of clients) await waitFor('the task reached every client', () => client.collections.tasks!.findOne(task.id).exec());
  await clients[0]!.waitForSync();
  for (const client of clients) await client.pause();
  return clients.map((client) => ({ client, id: task.id }));
}

const edit = async (client: TributaryClient, id: string, patch: Record<string, unknown>) =>
  (await client.collections.tasks!.findOne(id).exec())!.incrementalPatch(patch);
const remove = async (client: TributaryClient, id: string) => (await client.collections.tasks!.findOne(id).exec())!.remove();
const local = async (client: TributaryClient, id: string) => (await client.collections.tasks!.findOne(id).exec())?.toJSON() ?? null;
const increment = async (client: TributaryClient, id: string, amount: number) =>
  (await client.collections.tasks!.findOne(id).exec())!.incrementalModify((doc) => ({ ...doc, minutesLogged: ((doc.minutesLogged as number | undefined) ?? 0) + amount }));
const setOf = async (client: TributaryClient, id: string) => [...(((await local(client, id))?.assigneeIds as string[] | undefined) ?? [])].sort();

async function reconnect(first: TributaryClient, second: TributaryClient): Promise<void> {
  await first.resume();
  await first.waitForSync();
  await second.resume();
  await second.waitForSync();
  await first.waitForSync();
}

describe('conflict resolution', () => {
  it('keeps both offline edits of different fields, everywhere', async () => {
    const gateway = await startTestGateway();
    const { a, b, id } = await twoOfflineClients(gateway);
    await edit(a, id, { title: 'renamed by a' });
    await edit(b, id, { status: 'DONE', priority: 1 });
    await reconnect(a, b);

    const expected = { title: 'renamed by a', status: 'DONE', priority: 1 };
    await waitFor('a converged', async () => (await local(a, id))?.status === 'DONE');
    await waitFor('b converged', async () => (await local(b, id))?.title === 'renamed by a');
    expect(await local(a, id)).toMatchObject(expected);
    expect(await local(b, id)).toMatchObject(expected);
    const db = await openDb(gateway.database);
    expect(await db.collection('tasks').findOne({ _id: id as never })).toMatchObject(expected);
  });

  it.each([
    ['the earlier editor pushes first', true],
    ['the later editor pushes first', false],
  ])('lets the later stamp win an edit of the same field (%s)', async (_what, earlierFirst) => {
    const gateway = await startTestGateway();
    const { a, b, id } = await twoOfflineClients(gateway);
    await edit(a, id, { title: 'earlier' });
    await new Promise((r) => setTimeout(r, 20));
    await edit(b, id, { title: 'later' });
    if (earlierFirst) await reconnect(a, b);
    else await reconnect(b, a);

    await waitFor('a converged', async () => (await local(a, id))?.title === 'later');
    await waitFor('b converged', async () => (await local(b, id))?.title === 'later');
    const db = await openDb(gateway.database);
    expect(await db.collection('tasks').findOne({ _id: id as never })).toMatchObject({ title: 'later' });
  });

  it.each([
    ['the delete is pushed first', true],
    ['the update is pushed first', false],
  ])('lets a delete win over a concurrent update (%s)', async (_what, deleteFirst) => {
    const gateway = await startTestGateway();
    const { a, b, id } = await twoOfflineClients(gateway);
    await remove(a, id);
    await edit(b, id, { title: 'edited after the delete, offline' });
    if (deleteFirst) await reconnect(a, b);
    else await reconnect(b, a);

    await waitFor('gone on b', async () => (await local(b, id)) === null);
    expect(await local(a, id)).toBeNull();
    const db = await openDb(gateway.database);
    expect(await syncedDocument(db, 'tasks', id)).toMatchObject({ _sync: { deleted: true } });
  });

  it('adds up the increments of three offline clients exactly, through retries and reconnects', async () => {
    const gateway = await startTestGateway({ port: await freePort() });
    const [a, b, c] = (await offlineClients(gateway, 3, { minutesLogged: 5 })).map((x) => x.client);
    const id = (await a!.collections.tasks!.find().exec())[0]!.id;
    for (const amount of [10, 5, 1]) await increment(a!, id, amount);
    for (let i = 0; i < 5; i++) await increment(b!, id, 2);
    await increment(c!, id, 30);
    await increment(c!, id, -7);

    // a reconnects; then its last push is delivered twice more, as a retry after a lost answer would.
    await a!.resume();
    await a!.waitForSync();
    const pushed = toWire((await a!.collections.tasks!.findOne(id).exec())!.toMutableJSON() as Record<string, unknown>)!;
    const push = syncOperations(gateway.model.collections[0]!);
    for (let retry = 0; retry < 2; retry++) {
      const result = await graphqlHttp(gateway.httpUrl, push.push, { rows: [{ assumedMasterState: null, newDocumentState: pushed }] });
      expect(result.errors).toBeUndefined();
    }
    // b goes online and off again, and keeps counting offline; c reconnects through a gateway restart.
    await b!.resume();
    await b!.waitForSync();
    await b!.pause();
    await increment(b!, id, 100);
    await gateway.stop();
    const restarted = await startTestGateway({ database: gateway.database, port: gateway.port });
    await c!.resume();
    await b!.resume();
    // A plain GraphQL client adds too.
    const plain = await graphqlHttp(restarted.httpUrl, `mutation ($id: ID!) { updateTask(id: $id, inc: { minutesLogged: 4 }) { minutesLogged } }`, { id });
    expect(plain.errors).toBeUndefined();

    const total = 5 + 16 + 10 + 23 + 100 + 4;
    for (const [name, client] of [['a', a], ['b', b], ['c', c]] as const) {
      await waitFor(`${name} holds the total`, async () => (await local(client!, id))?.minutesLogged === total);
    }
    const db = await openDb(gateway.database);
    expect(await db.collection('tasks').findOne({ _id: id as never })).toMatchObject({ minutesLogged: total });
  });

  it('keeps concurrent additions to an add-wins set, and lets a removal remove what it saw', async () => {
    const gateway = await startTestGateway();
    const [a, b, c] = (await offlineClients(gateway, 3, { assigneeIds: ['ann', 'bob'] })).map((x) => x.client);
    const id = (await a!.collections.tasks!.find().exec())[0]!.id;
    const assign = async (client: TributaryClient, change: (ids: string[]) => string[]) =>
      (await client.collections.tasks!.findOne(id).exec())!.incrementalModify((doc) => ({ ...doc, assigneeIds: change((doc.assigneeIds as string[]) ?? []) }));
    await assign(a!, (ids) => [...ids, 'carl']); // concurrent additions
    await assign(b!, (ids) => [...ids, 'dana']);
    await assign(a!, (ids) => ids.filter((x) => x !== 'bob')); // a removal of something everyone saw
    await assign(c!, (ids) => ids.filter((x) => x !== 'ann')); // c removes ann while b removes and adds her again
    await assign(b!, (ids) => ids.filter((x) => x !== 'ann'));
    await assign(b!, (ids) => [...ids, 'ann']);
    await c!.resume();
    await c!.waitForSync();
    await b!.resume();
    await b!.waitForSync();
    await a!.resume();
    await a!.waitForSync();

    const expected = ['ann', 'carl', 'dana'];
    for (const [name, client] of [['a', a], ['b', b], ['c', c]] as const) {
      await waitFor(`${name} converged`, async () => JSON.stringify(await setOf(client!, id)) === JSON.stringify(expected));
    }
    const db = await openDb(gateway.database);
    const stored = await db.collection('tasks').findOne({ _id: id as never });
    expect([...(stored!.assigneeIds as string[])].sort()).toEqual(expected);
    // A removal now, seen by everyone, removes everywhere.
    await assign(c!, (ids) => ids.filter((x) => x !== 'carl'));
    for (const [name, client] of [['a', a], ['b', b]] as const) {
      await waitFor(`${name} lost carl`, async () => JSON.stringify(await setOf(client!, id)) === JSON.stringify(['ann', 'dana']));
    }
  });

  it('applies the server-wins and custom strategies per collection', async () => {
    const serverWins = await startTestGateway({ conflictStrategies: { tasks: 'server-wins' } });
    const first = await twoOfflineClients(serverWins);
    await edit(first.a, first.id, { title: 'first to arrive' });
    await edit(first.b, first.id, { title: 'second to arrive' });
    await reconnect(first.a, first.b);
    await waitFor('b takes the server’s state', async () => (await local(first.b, first.id))?.title === 'first to arrive');

    const custom = await startTestGateway({
      conflictStrategies: { tasks: ({ server, client }) => ({ ...client, title: `${server.title} + ${client.title}` }) },
    });
    const second = await twoOfflineClients(custom);
    await edit(second.a, second.id, { title: 'A' });
    await edit(second.b, second.id, { title: 'B' });
    await reconnect(second.a, second.b);
    await waitFor('both hold the resolver’s result', async () => (await local(second.a, second.id))?.title === 'A + B' && (await local(second.b, second.id))?.title === 'A + B');
  });

  it('applies a plain mutation made on top of an edit stamped by a fast clock, and keeps deleted ids deleted', async () => {
    const gateway = await startTestGateway();
    const fast = await openTestClient(gateway.wsUrl, { clock: () => Date.now() + 30_000 }); // within the allowed skew
    const task = newTask();
    await fast.collections.tasks!.insert(task);
    await fast.waitForSync();
    const updated = await graphqlHttp(gateway.httpUrl, `mutation ($id: ID!) { updateTask(id: $id, set: { title: "plain" }) { title } }`, { id: task.id });
    expect(updated.errors).toBeUndefined();
    expect(updated.data!.updateTask.title).toBe('plain');
    await waitFor('the device took it', async () => (await local(fast, task.id))?.title === 'plain');

    await remove(fast, task.id);
    await fast.waitForSync();
    const again = await graphqlHttp(gateway.httpUrl, `mutation ($input: TaskInput!) { insertTask(input: $input) { id } }`, { input: task });
    expect(again.errors?.[0]).toMatchObject({ message: expect.stringContaining('ids are never reused'), extensions: { code: 'ALREADY_EXISTS' } });
  });

  it('does not let a device whose clock is an hour ahead win against a correct later edit', async () => {
    const gateway = await startTestGateway({ maxClockSkewMs: 1_000 });
    const { a, b, id } = await twoOfflineClients(gateway, { clockA: () => Date.now() + 3_600_000 });
    await edit(a, id, { title: 'from the fast clock' });
    await a.resume();
    await a.waitForSync();
    await new Promise((r) => setTimeout(r, 1_500)); // past the bound
    await edit(b, id, { title: 'correct and later' });
    await b.resume();
    await b.waitForSync();

    await waitFor('a converged', async () => (await local(a, id))?.title === 'correct and later');
    const db = await openDb(gateway.database);
    expect(await db.collection('tasks').findOne({ _id: id as never })).toMatchObject({ title: 'correct and later' });
  });
});
