// Issue 6: conflict resolution. Offline clients' edits merge field by field (later stamp wins,
// device id breaks ties), deletes win, per-collection strategies, clock skew bounded.
import { afterEach, describe, expect, it } from 'vitest';
import type { TributaryClient } from '../client-sdk/index.ts';
import type { Gateway } from '../gateway/server.ts';
import { cleanup, newTask, openDb, openTestClient, startTestGateway, waitFor } from './helpers/harness.ts';

afterEach(cleanup);

async function twoOfflineClients(gateway: Gateway, options: { clockA?: () => number } = {}) {
  const a = await openTestClient(gateway.wsUrl, { clock: options.clockA });
  const b = await openTestClient(gateway.wsUrl);
  const task = newTask({ title: 'original', status: 'TODO', priority: 3 });
  await a.collections.tasks!.insert(task);
  await waitFor('b has the task', () => b.collections.tasks!.findOne(task.id).exec());
  await a.waitForSync();
  await a.pause();
  await b.pause();
  return { a, b, id: task.id };
}

const edit = async (client: TributaryClient, id: string, patch: Record<string, unknown>) =>
  (await client.collections.tasks!.findOne(id).exec())!.incrementalPatch(patch);
const remove = async (client: TributaryClient, id: string) => (await client.collections.tasks!.findOne(id).exec())!.remove();
const local = async (client: TributaryClient, id: string) => (await client.collections.tasks!.findOne(id).exec())?.toJSON() ?? null;

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
    expect(await db.collection('tasks').findOne({ _id: id as never })).toMatchObject({ _sync: { deleted: true } });
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
