// Issue 3: clients sync exactly the documents their subscriptions select.
import { afterEach, describe, expect, it } from 'vitest';
import type { Gateway } from '../gateway/server.ts';
import type { TributaryClient } from '../client-sdk/index.ts';
import { cleanup, graphqlHttp, newTask, openDb, openTestClient, startTestGateway, syncedIds, waitFor } from './helpers/harness.ts';

afterEach(cleanup);

async function seed(gateway: Gateway, tasks: Array<Record<string, unknown>>): Promise<void> {
  const writer = gateway.collections.get('tasks')!.writer;
  const result = await writer.push(tasks.map((t) => ({ assumedMasterState: null, newDocumentState: { ...t, _deleted: false } })));
  expect(result.rejected).toEqual([]);
}

async function localIds(client: TributaryClient): Promise<string[]> {
  return (await client.collections.tasks!.find().exec()).map((d) => d.id).sort();
}

async function serverIds(database: string, filter: Record<string, unknown>): Promise<string[]> {
  const db = await openDb(database);
  return syncedIds(db, 'tasks', false, filter);
}

function sampleTasks() {
  return [
    newTask({ id: 'a1', ownerId: 'ann', status: 'TODO', priority: 1, tags: ['home'] }),
    newTask({ id: 'a2', ownerId: 'ann', status: 'DONE', priority: 3, tags: ['work'] }),
    newTask({ id: 'b1', ownerId: 'bob', status: 'DONE', priority: 2, tags: ['work', 'urgent'] }),
    newTask({ id: 'b2', ownerId: 'bob', status: 'TODO', priority: 5, tags: [] }),
    newTask({ id: 'c1', ownerId: 'cat', status: 'IN_PROGRESS', priority: 4, tags: ['home'] }),
  ];
}

describe('Flexible Sync subscriptions', () => {
  it('gives each client exactly its slice, and the union to a client with overlapping subscriptions', async () => {
    const gateway = await startTestGateway();
    await seed(gateway, sampleTasks());
    const ann = await openTestClient(gateway.wsUrl, { flexibleSync: true });
    const done = await openTestClient(gateway.wsUrl, { flexibleSync: true });
    const both = await openTestClient(gateway.wsUrl, { flexibleSync: true });

    await ann.subscriptions.update((m) => m.add('tasks', "ownerId == 'ann'", { name: 'mine' }));
    await done.subscriptions.update((m) => m.add('tasks', { status: 'DONE' }, { name: 'done' }));
    await both.subscriptions.update((m) => {
      m.add('tasks', "ownerId == 'ann'");
      m.add('tasks', { status: { $eq: 'DONE' } });
    });

    expect(ann.subscriptions.state).toBe('complete');
    expect(await localIds(ann)).toEqual(await serverIds(gateway.database, { ownerId: 'ann' }));
    expect(await localIds(done)).toEqual(await serverIds(gateway.database, { status: 'DONE' }));
    expect(await localIds(both)).toEqual(await serverIds(gateway.database, { $or: [{ ownerId: 'ann' }, { status: 'DONE' }] }));
    expect(await localIds(both)).toEqual(['a1', 'a2', 'b1']);
  });

  it('subscribes by list length (RQL @count and @size) and by ANY, ALL and NONE over a list, as the driver counts in MongoDB', async () => {
    const gateway = await startTestGateway();
    await seed(gateway, [
      newTask({ id: 'none', tags: [] }),
      newTask({ id: 'one', tags: ['x'] }),
      newTask({ id: 'two', tags: ['x', 'y'] }),
      newTask({ id: 'three', tags: ['x', 'y', 'z'] }),
    ]);
    const cases: Array<[string, string[], Record<string, unknown>]> = [
      ['tags.@count >= 2', ['three', 'two'], { 'tags.1': { $exists: true } }],
      ['tags.@size == 1', ['one'], { tags: { $size: 1 } }],
      ['tags.@count == 0', ['none'], { tags: { $size: 0 } }],
      ["ANY tags == 'y'", ['three', 'two'], { tags: 'y' }],
      ["ALL tags == 'x'", ['none', 'one'], { tags: { $nin: ['y', 'z'] } }], // (the tags here are x, y, z)
      ["NONE tags == 'z'", ['none', 'one', 'two'], { tags: { $ne: 'z' } }],
    ];
    for (const [query, expected, driverFilter] of cases) {
      const client = await openTestClient(gateway.wsUrl, { flexibleSync: true });
      await client.subscriptions.update((m) => m.add('tasks', query));
      expect(client.subscriptions.state, query).toBe('complete');
      expect(await localIds(client), query).toEqual(expected);
      expect(await serverIds(gateway.database, driverFilter), query).toEqual(expected);
      await client.close();
    }
  });

  it('removes a document that moves out of view on that device only, and brings it back when it moves back', async () => {
    const gateway = await startTestGateway();
    await seed(gateway, sampleTasks());
    const ann = await openTestClient(gateway.wsUrl, { flexibleSync: true });
    const both = await openTestClient(gateway.wsUrl, { flexibleSync: true });
    await ann.subscriptions.update((m) => m.add('tasks', "ownerId == 'ann'"));
    await both.subscriptions.update((m) => {
      m.add('tasks', "ownerId == 'ann'");
      m.add('tasks', "status == 'DONE'");
    });

    // a2 (ann, DONE) is handed to bob: out of ann's view, still in both's (DONE).
    const moved = await graphqlHttp(gateway.httpUrl, 'mutation { updateTask(id: "a2", set: { ownerId: "bob" }) { id } }');
    expect(moved.errors).toBeUndefined();
    await waitFor('a2 left ann’s device', async () => (await ann.collections.tasks!.findOne('a2').exec()) === null);
    await waitFor('both sees the new owner', async () => (await both.collections.tasks!.findOne('a2').exec())?.ownerId === 'bob');
    expect(await serverIds(gateway.database, { _id: 'a2' })).toEqual(['a2']);

    // a document moving into view arrives live
    await graphqlHttp(gateway.httpUrl, 'mutation { updateTask(id: "c1", set: { ownerId: "ann" }) { id } }');
    await waitFor('c1 arrived on ann’s device', () => ann.collections.tasks!.findOne('c1').exec());

    await graphqlHttp(gateway.httpUrl, 'mutation { updateTask(id: "a2", set: { ownerId: "ann" }) { id } }');
    await waitFor('a2 came back to ann', () => ann.collections.tasks!.findOne('a2').exec());
    expect(await localIds(ann)).toEqual(await serverIds(gateway.database, { ownerId: 'ann' }));
  });

  it('purges a removed subscription’s documents locally, keeping those another subscription still selects', async () => {
    const gateway = await startTestGateway();
    await seed(gateway, sampleTasks());
    const client = await openTestClient(gateway.wsUrl, { flexibleSync: true });
    await client.subscriptions.update((m) => {
      m.add('tasks', "ownerId == 'ann'", { name: 'ann' });
      m.add('tasks', "status == 'DONE'", { name: 'done' });
    });
    expect(await localIds(client)).toEqual(['a1', 'a2', 'b1']);
    const downloadedBefore = client.counters.downloaded.tasks!;

    await client.subscriptions.update((m) => m.removeByName('ann'));
    expect(await localIds(client)).toEqual(['a2', 'b1']); // a2 is DONE too
    expect(await serverIds(gateway.database, {})).toEqual(['a1', 'a2', 'b1', 'b2', 'c1']); // nothing deleted on the server

    // adding a query back re-sends only what the device does not hold
    await client.subscriptions.update((m) => m.add('tasks', "ownerId == 'ann'", { name: 'ann' }));
    expect(await localIds(client)).toEqual(['a1', 'a2', 'b1']);
    expect(client.counters.downloaded.tasks! - downloadedBefore).toBe(1); // a1 only

    await client.subscriptions.update((m) => m.removeAll());
    expect(await localIds(client)).toEqual([]);
    expect(await serverIds(gateway.database, {})).toHaveLength(5);
  });

  it.each([
    ['a field that is not queryable', "description == 'x'", /"description" is not a queryable field/],
    ['an unsupported operator', { title: { $where: 'sleep(100)' } }, /unsupported operator \$where on title/],
    ['a syntax error, with its position', "status == 'TODO' AND", /expected .* at position 20/],
    ['an unknown field', 'colour == 1', /unknown field colour in Task/],
  ])('puts the set in Error with BAD_QUERY for %s, and recovers on the next valid update', async (_what, query, message) => {
    const gateway = await startTestGateway();
    await seed(gateway, sampleTasks());
    const client = await openTestClient(gateway.wsUrl, { flexibleSync: true });
    await client.subscriptions.update((m) => m.add('tasks', "ownerId == 'bob'", { name: 'bob' }));

    const failed = client.subscriptions.update((m) => m.add('tasks', query as never, { name: 'bad' }));
    await expect(failed).rejects.toMatchObject({ code: 'BAD_QUERY', realmCode: 226, message });
    expect(client.subscriptions.state).toBe('error');
    expect(client.subscriptions.error?.message).toMatch(message);
    expect(await localIds(client)).toEqual(['b1', 'b2']); // the previous queries keep syncing

    await client.subscriptions.update((m) => {
      m.removeByName('bad');
      m.add('tasks', 'priority <= 1');
    });
    expect(client.subscriptions.state).toBe('complete');
    expect(await localIds(client)).toEqual(['a1', 'b1', 'b2']);
  });

  it('goes Pending → Bootstrapping → Complete, and marks a version Superseded when a newer one is sent first', async () => {
    const gateway = await startTestGateway();
    await seed(gateway, sampleTasks());
    const client = await openTestClient(gateway.wsUrl, { flexibleSync: true });
    const seen: string[] = [];
    client.subscriptions.changes$.subscribe((s) => {
      const entry = `${s.version}:${s.state}`;
      if (seen.at(-1) !== entry) seen.push(entry);
    });

    await client.subscriptions.update((m) => m.add('tasks', "ownerId == 'ann'"));
    expect(seen).toEqual(['0:complete', '1:pending', '1:bootstrapping', '1:complete']);

    const first = client.subscriptions.update((m) => m.add('tasks', "ownerId == 'bob'"));
    const second = client.subscriptions.update((m) => m.add('tasks', "ownerId == 'cat'"));
    await expect(first).rejects.toMatchObject({ name: 'SupersededError' });
    await second;
    expect(seen).toContain('2:superseded');
    expect(seen.at(-1)).toBe('3:complete');
    expect(client.subscriptions.version).toBe(3);
    expect(await localIds(client)).toEqual(['a1', 'a2', 'b1', 'b2', 'c1']);
  });

  it('updates a named subscription’s query, or throws when asked to', async () => {
    const gateway = await startTestGateway();
    await seed(gateway, sampleTasks());
    const client = await openTestClient(gateway.wsUrl, { flexibleSync: true });
    await client.subscriptions.update((m) => m.add('tasks', "ownerId == 'ann'", { name: 'owner' }));
    await client.subscriptions.update((m) => m.add('tasks', "ownerId == 'cat'", { name: 'owner' }));
    expect(client.subscriptions.subscriptions).toHaveLength(1);
    expect(await localIds(client)).toEqual(['c1']);
    await expect(client.subscriptions.update((m) => m.add('tasks', "ownerId == 'bob'", { name: 'owner', throwOnUpdate: true }))).rejects.toThrow(
      'a subscription named "owner" already exists with another query',
    );
  });

  it('subscribes and unsubscribes with an RxDB query', async () => {
    const gateway = await startTestGateway();
    await seed(gateway, sampleTasks());
    const client = await openTestClient(gateway.wsUrl, { flexibleSync: true });
    const query = client.collections.tasks!.find({ selector: { tags: 'home' } });
    await client.subscribe(query);
    expect((await query.exec()).map((d) => d.id).sort()).toEqual(['a1', 'c1']);
    await client.unsubscribe(query);
    expect(await localIds(client)).toEqual([]);
  });

  it('applies initial subscriptions on first open, reruns them on open when asked, and resumes without downloading again', async () => {
    const gateway = await startTestGateway();
    await seed(gateway, sampleTasks());
    const databaseName = `reopen_${Date.now()}`;
    let window = "priority <= 2";
    const options = () => ({
      databaseName,
      flexibleSync: { initialSubscriptions: { update: (m: import('../client-sdk/index.ts').MutableSubscriptionSet) => m.add('tasks', window, { name: 'window' }), rerunOnOpen: true } },
    });

    const first = await openTestClient(gateway.wsUrl, options());
    await first.subscriptions.waitForSynchronization();
    expect(await localIds(first)).toEqual(['a1', 'b1']);
    await first.close();

    // Same query on reopen: nothing new to download.
    const again = await openTestClient(gateway.wsUrl, options());
    await again.subscriptions.waitForSynchronization();
    await waitFor('connected', () => again.connectionState === 'connected');
    await new Promise((r) => setTimeout(r, 300));
    expect(await localIds(again)).toEqual(['a1', 'b1']);
    expect(again.counters.downloaded.tasks).toBe(0);
    await again.close();

    // The window moved: rerunOnOpen updates the named subscription.
    window = 'priority <= 3';
    const moved = await openTestClient(gateway.wsUrl, options());
    await waitFor('the new window is complete', () => moved.subscriptions.version === 3 && moved.subscriptions.state === 'complete');
    expect(await localIds(moved)).toEqual(['a1', 'a2', 'b1']);
  });
});
