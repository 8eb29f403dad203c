// Cross-user reads: nothing of a document a user may not read leaves the gateway, on any path,
// including work cached for another user (a bootstrap's or a pull's open cursor) and live
// subscriptions whose access was revoked while they ran.
import { resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, newTask, openDb, rulesFixture, startTestGateway, TEST_JWT, waitFor } from '../helpers/harness.ts';
import { attacker, expectNothingLeaked, seed, tasksOps } from './attack.ts';

afterEach(cleanup);

const annTasks = Array.from({ length: 10 }, (_, i) => newTask({ id: `ann-secret-${i}`, ownerId: 'ann', title: `ann secret title ${i}` }));
const annSecrets = [...annTasks.map((t) => t.id), ...annTasks.map((t) => t.title as string)];

describe('another user’s documents', () => {
  it('are not in a bootstrap page continued with another user’s cursor', async () => {
    const gateway = await startTestGateway({ rulesPath: rulesFixture('owner-only') });
    await seed(gateway, 'tasks', [...annTasks, newTask({ id: 'bob-0', ownerId: 'bob' }), newTask({ id: 'bob-z', ownerId: 'bob' })]);
    const ops = tasksOps(gateway);
    const ann = await attacker(gateway, 'ann');
    const bob = await attacker(gateway, 'bob');

    const first = await ann.http(ops.bootstrap, { query: {}, limit: 3 });
    const { next, snapshot, documents } = first.data!.bootstrapTasks;
    expect(documents.map((d: { id: string }) => d.id)).toEqual(['ann-secret-0', 'ann-secret-1', 'ann-secret-2']);

    // Bob replays Ann's cursor position: the page Ann's open cursor would give next.
    const stolen = await bob.http(ops.bootstrap, { query: {}, exclude: null, after: next, snapshot, limit: 100 });
    expect(stolen.errors).toBeUndefined();
    expect(stolen.data!.bootstrapTasks.documents.map((d: { id: string }) => d.id)).toEqual(['bob-0', 'bob-z']);
    expectNothingLeaked(bob, annSecrets.filter((s) => s !== next));

    // Ann's own next page is still whole.
    const annNext = await ann.http(ops.bootstrap, { query: {}, after: next, snapshot, limit: 100 });
    expect(annNext.data!.bootstrapTasks.documents.map((d: { id: string }) => d.id)).toEqual(annTasks.slice(3).map((t) => t.id));
  });

  it('are not in another user’s pulls, not even as removals, and a user still learns of documents it lost', async () => {
    const gateway = await startTestGateway({ rulesPath: rulesFixture('owner-only') });
    await seed(gateway, 'tasks', [...annTasks, newTask({ id: 'bob-moved', ownerId: 'bob' }), newTask({ id: 'bob-kept', ownerId: 'bob' })]);
    const ops = tasksOps(gateway);
    const bob = await attacker(gateway, 'bob');
    const before = await bob.http(ops.pull, { checkpoint: null, limit: 100 });
    expect(before.data!.pullTasks.documents.map((d: { id: string }) => d.id).sort()).toEqual(['bob-kept', 'bob-moved']);
    const checkpoint = before.data!.pullTasks.checkpoint;

    // Bob's task is given to Ann, and Ann's tasks change (and one is deleted).
    const writer = gateway.collections.get('tasks')!.writer;
    const moved = { ...newTask({ id: 'bob-moved', ownerId: 'ann', title: 'now ann secret title' }), _deleted: false };
    const stored = (await gateway.collections.get('tasks')!.store.current('bob-moved'))!;
    expect((await writer.push([{ assumedMasterState: gateway.collections.get('tasks')!.store.toWire(stored), newDocumentState: moved }])).conflicts).toEqual([]);
    await seed(gateway, 'tasks', [newTask({ id: 'ann-secret-new', ownerId: 'ann', title: 'ann secret title new' })]);
    const gone = annTasks[0]!;
    await writer.push([{ assumedMasterState: { ...gone, _deleted: false }, newDocumentState: { ...gone, _deleted: true } }]);

    for (const view of [undefined, [{ status: 'TODO' }], [{}]]) {
      const answer = await bob.http(ops.pull, { checkpoint, limit: 100, view });
      expect(answer.errors).toBeUndefined();
      // Bob learns that the task he held left him, and nothing of Ann's.
      expect(answer.data!.pullTasks.documents).toEqual([{ id: 'bob-moved', _deleted: true }]);
    }
    const fromScratch = await bob.http(ops.pull, { checkpoint: null, limit: 100 });
    expect(fromScratch.data!.pullTasks.documents.map((d: { id: string }) => d.id)).toEqual(['bob-kept', 'bob-moved']);
    expectNothingLeaked(bob, [...annSecrets, 'ann-secret-new', 'now ann secret title']);
  });

  it('are read past in pulls: a page is full of the user’s own changes, so a short page still means up to date', async () => {
    const gateway = await startTestGateway({ rulesPath: rulesFixture('owner-only') });
    // Bob's 4 tasks sit between 10 of Ann's in the change feed.
    await seed(gateway, 'tasks', annTasks.slice(0, 5));
    await seed(gateway, 'tasks', [newTask({ id: 'bob-a', ownerId: 'bob' }), newTask({ id: 'bob-b', ownerId: 'bob' })]);
    await seed(gateway, 'tasks', annTasks.slice(5));
    await seed(gateway, 'tasks', [newTask({ id: 'bob-c', ownerId: 'bob' }), newTask({ id: 'bob-d', ownerId: 'bob' })]);
    const ops = tasksOps(gateway);
    const bob = await attacker(gateway, 'bob');
    const pages: string[][] = [];
    let checkpoint = null;
    for (let more = true; more; ) {
      const bulk: { documents: Array<{ id: string }>; checkpoint: unknown; hasMore: boolean } = (await bob.http(ops.pull, { checkpoint, limit: 2 })).data!.pullTasks;
      pages.push(bulk.documents.map((d) => d.id));
      checkpoint = bulk.checkpoint;
      more = bulk.hasMore;
    }
    // RxDB's stock replication stops at the first page shorter than its batch size.
    expect(pages[0]).toEqual(['bob-a', 'bob-b']);
    expect(pages.flat()).toEqual(['bob-a', 'bob-b', 'bob-c', 'bob-d']);
    expectNothingLeaked(bob, annSecrets);
  });

  it('are not in plain queries, gets, watches or streams of another user', async () => {
    const gateway = await startTestGateway({ rulesPath: rulesFixture('owner-only') });
    await seed(gateway, 'tasks', [newTask({ id: 'bob-1', ownerId: 'bob' })]);
    const ops = tasksOps(gateway);
    const bob = await attacker(gateway, 'bob');
    const watch = bob.subscribe('subscription ($f: JSONObject) { watchTasks(filter: $f) { id deleted document { id title } } }', { f: {} });
    const stream = bob.subscribe(ops.stream, {});
    await waitFor('the stream started', () => stream.events.length >= 1);
    await seed(gateway, 'tasks', annTasks);
    await seed(gateway, 'tasks', [newTask({ id: 'bob-2', ownerId: 'bob' })]);
    await waitFor('bob’s own change arrived on both', () => JSON.stringify(watch.events).includes('bob-2') && JSON.stringify(stream.events).includes('bob-2'));

    const list = await bob.http('query ($f: JSONObject) { tasks(filter: $f, limit: 1000) { id title } }', { f: {} });
    expect(list.data!.tasks.map((t: { id: string }) => t.id)).toEqual(['bob-1', 'bob-2']);
    const get = await bob.http('query { task(id: "ann-secret-1") { id title } }');
    expect(get.data!.task).toBeNull();
    expectNothingLeaked(bob, annSecrets.filter((s) => s !== 'ann-secret-1'));
    expectNothingLeaked(bob, annTasks.map((t) => t.title as string));
    await bob.close();
  });

  it('stop reaching a plain watch as soon as the user loses access', async () => {
    const gateway = await startTestGateway({
      rulesPath: resolve(import.meta.dirname, '../../rules'),
      auth: { jwt: TEST_JWT, customData: { collection: 'userData', userIdField: 'userId' } },
      customDataPollMs: 100,
    });
    const db = await openDb(gateway.database);
    await db.collection('userData').insertOne({ userId: 'bob', teamId: 'team-a' });
    const project = (name: string) => ({ id: 'p-team', ownerId: 'carl', teamId: 'team-a', name, archived: false, createdAt: '2026-01-01T00:00:00.000Z' });
    await seed(gateway, 'projects', [project('first')]);
    const bob = await attacker(gateway, 'bob');
    const watch = bob.subscribe('subscription { watchProjects { id deleted document { id name } } }');
    const projects = gateway.collections.get('projects')!;
    const rename = async (from: string, to: string) => {
      const result = await projects.writer.push([{ assumedMasterState: { ...project(from), _deleted: false }, newDocumentState: { ...project(to), _deleted: false } }]);
      expect(result.conflicts).toEqual([]);
    };
    await new Promise((r) => setTimeout(r, 300));
    await rename('first', 'second');
    await waitFor('bob sees his team’s project change', () => JSON.stringify(watch.events).includes('second'));

    await db.collection('userData').updateOne({ userId: 'bob' }, { $set: { teamId: 'team-b' } });
    await new Promise((r) => setTimeout(r, 600)); // a few custom-data polls
    await rename('second', 'secret third name');
    await new Promise((r) => setTimeout(r, 800));
    expectNothingLeaked(bob, ['secret third name']);
    await bob.close();
  });
});
