// Issue 5: permission rules in Realm's role format, one engine for sync and plain GraphQL,
// compensating writes.
import { resolve } from 'node:path';
import { Client, fetchExchange } from '@urql/core';
import { filter, firstValueFrom, take, toArray } from 'rxjs';
import { afterEach, describe, expect, it } from 'vitest';
import type { TributaryClient } from '../client-sdk/index.ts';
import type { Gateway } from '../gateway/server.ts';
import { syncOperations } from '../protocol/operations.ts';
import { cleanup, graphqlHttp, newTask, openDb, openTestClient, rulesFixture, startTestGateway, TEST_JWT, syncedDocument, testToken, waitFor } from './helpers/harness.ts';

afterEach(cleanup);

const REPO_RULES = resolve(import.meta.dirname, '../rules');

async function seedAs(gateway: Gateway, docs: Array<Record<string, unknown>>, collection = 'tasks'): Promise<void> {
  const result = await gateway.collections.get(collection)!.writer.push(docs.map((d) => ({ assumedMasterState: null, newDocumentState: { ...d, _deleted: false } })));
  expect(result.rejected).toEqual([]);
}

async function clientFor(gateway: Gateway, user: string): Promise<TributaryClient> {
  const client = await openTestClient(gateway.wsUrl, { connectionParams: { authToken: await testToken(user) }, flexibleSync: true });
  await client.subscriptions.update((m) => m.add('tasks', 'TRUEPREDICATE', { name: 'everything' }));
  return client;
}

const ids = async (client: TributaryClient, collection = 'tasks') => (await client.collections[collection]!.find().exec()).map((d) => d.id).sort();

describe('permission rules', () => {
  it('owner-only: a client asking for everything receives only what its read filter allows', async () => {
    const gateway = await startTestGateway({ rulesPath: rulesFixture('owner-only') });
    await seedAs(gateway, [newTask({ id: 'ann-1', ownerId: 'ann' }), newTask({ id: 'ann-2', ownerId: 'ann' }), newTask({ id: 'bob-1', ownerId: 'bob' })]);
    const ann = await clientFor(gateway, 'ann');
    const bob = await clientFor(gateway, 'bob');
    expect(await ids(ann)).toEqual(['ann-1', 'ann-2']);
    expect(await ids(bob)).toEqual(['bob-1']);

    // live: a new task of bob's reaches bob only
    await seedAs(gateway, [newTask({ id: 'bob-2', ownerId: 'bob' })]);
    await waitFor('bob receives bob-2', () => bob.collections.tasks!.findOne('bob-2').exec());
    await new Promise((r) => setTimeout(r, 300));
    expect(await ids(ann)).toEqual(['ann-1', 'ann-2']);

    // a plain urql client gives the same answers as sync for the same user
    const urql = new Client({ url: gateway.httpUrl, exchanges: [fetchExchange], requestPolicy: 'network-only', fetchOptions: { headers: { authorization: `Bearer ${await testToken('ann')}` } } });
    const listed = await urql.query('{ tasks { id } }', {}).toPromise();
    expect(listed.data.tasks.map((t: { id: string }) => t.id)).toEqual(await ids(ann));
    expect((await urql.query('{ task(id: "bob-1") { id title } }', {}).toPromise()).data).toEqual({ task: null });
    const forged = await urql.mutation('mutation { insertTask(input: { id: "u1", ownerId: "bob", title: "x", status: TODO, priority: 1, tags: [] }) { id } }', {}).toPromise();
    expect(forged.error?.graphQLErrors[0]?.extensions).toMatchObject({ code: 'PERMISSION_DENIED' });
    const own = await urql.mutation('mutation { insertTask(input: { id: "u2", ownerId: "ann", title: "x", status: TODO, priority: 1, tags: [] }) { id } }', {}).toPromise();
    expect(own.data).toEqual({ insertTask: { id: 'u2' } });
    await waitFor('the urql write reaches ann’s device', () => ann.collections.tasks!.findOne('u2').exec());
  });

  it('turns forged and out-of-rights writes into compensating writes (231), reverted on the device, while the rest of the batch lands', async () => {
    const gateway = await startTestGateway({ rulesPath: rulesFixture('owner-only') });
    await seedAs(gateway, [newTask({ id: 'ann-1', ownerId: 'ann' })]);
    const ann = await clientFor(gateway, 'ann');
    const errors = firstValueFrom(ann.errors$.pipe(filter((e) => e.kind === 'rejected'), take(2), toArray()));

    await ann.collections.tasks!.bulkInsert([newTask({ id: 'forged', ownerId: 'bob' }), newTask({ id: 'fine', ownerId: 'ann' })]);
    const mine = await ann.collections.tasks!.findOne('ann-1').exec();
    await mine!.incrementalPatch({ ownerId: 'bob' }); // giving it away: it would leave the write filter

    const reported = await errors;
    expect(reported).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ kind: 'rejected', collection: 'tasks', id: 'forged', code: 'PERMISSION_DENIED', realmCode: 231 }),
        expect.objectContaining({ kind: 'rejected', collection: 'tasks', id: 'ann-1', code: 'PERMISSION_DENIED', realmCode: 231 }),
      ]),
    );
    await waitFor('the forged task is removed from the device', async () => (await ann.collections.tasks!.findOne('forged').exec()) === null);
    await waitFor('the given-away task is reverted', async () => (await ann.collections.tasks!.findOne('ann-1').exec())?.ownerId === 'ann');
    const db = await openDb(gateway.database);
    await waitFor('the valid write landed', async () => (await db.collection('tasks').countDocuments({ _id: 'fine' as never })) === 1);
    expect(await db.collection('tasks').countDocuments({ _id: 'forged' as never })).toBe(0);
    expect(await db.collection('tasks').findOne({ _id: 'ann-1' as never })).toMatchObject({ ownerId: 'ann' });
  });

  it('public-read/owner-write: everyone reads; deleting without rights and writing a read-only field are refused', async () => {
    const gateway = await startTestGateway({ rulesPath: rulesFixture('public-read') });
    await seedAs(gateway, [newTask({ id: 'ann-1', ownerId: 'ann', priority: 3 }), newTask({ id: 'bob-1', ownerId: 'bob' })]);
    const ops = syncOperations(gateway.model.collections.find((c) => c.name === 'tasks')!);
    const bob = await testToken('bob');
    const pulled = await graphqlHttp(gateway.httpUrl, ops.pull, { checkpoint: null, limit: 100 }, bob);
    expect(pulled.data!.pullTasks.documents.map((d: { id: string }) => d.id).sort()).toEqual(['ann-1', 'bob-1']);

    const ann1 = pulled.data!.pullTasks.documents.find((d: { id: string }) => d.id === 'ann-1');
    const bob1 = pulled.data!.pullTasks.documents.find((d: { id: string }) => d.id === 'bob-1');
    const push = (rows: unknown[]) => graphqlHttp(gateway.httpUrl, ops.push, { rows }, bob);
    const result = (
      await push([
        { assumedMasterState: ann1, newDocumentState: { ...ann1, title: 'bob was here' } }, // not bob's
        { assumedMasterState: bob1, newDocumentState: { ...bob1, _deleted: true } }, // no delete right
        { assumedMasterState: bob1, newDocumentState: { ...bob1, priority: 1 } }, // read-only field
      ])
    ).data!.pushTasks;
    expect(result.rejected).toEqual([
      { id: 'ann-1', code: 'PERMISSION_DENIED', field: null, message: 'write to "ann-1" in table "Task" not allowed; the role may not change this document', realmCode: 231 },
      { id: 'bob-1', code: 'PERMISSION_DENIED', field: null, message: 'write to "bob-1" in table "Task" not allowed; the role may not delete this document', realmCode: 231 },
      { id: 'bob-1', code: 'PERMISSION_DENIED', field: 'priority', message: 'write to "bob-1" in table "Task" not allowed; the role may not write Task.priority', realmCode: 231 },
    ]);
    // The same two through bob's SDK client: refused, reverted on the device, reported with 231.
    const device = await clientFor(gateway, 'bob');
    const reported = firstValueFrom(device.errors$.pipe(filter((e) => e.kind === 'rejected'), take(2), toArray()));
    await (await device.collections.tasks!.findOne('bob-1').exec())!.remove();
    await waitFor('the delete is reverted', () => device.collections.tasks!.findOne('bob-1').exec());
    await (await device.collections.tasks!.findOne('bob-1').exec())!.incrementalPatch({ priority: 5 });
    await waitFor('the read-only field is reverted', async () => (await device.collections.tasks!.findOne('bob-1').exec())?.priority === bob1.priority);
    expect(await reported).toEqual([
      expect.objectContaining({ id: 'bob-1', code: 'PERMISSION_DENIED', realmCode: 231, message: 'write to "bob-1" in table "Task" not allowed; the role may not delete this document' }),
      expect.objectContaining({ id: 'bob-1', code: 'PERMISSION_DENIED', realmCode: 231, field: 'priority' }),
    ]);

    const ok = await push([{ assumedMasterState: bob1, newDocumentState: { ...bob1, title: 'renamed by bob' } }]);
    expect(ok.data!.pushTasks).toEqual({ conflicts: [], rejected: [] });
    const db = await openDb(gateway.database);
    expect(await db.collection('tasks').findOne({ _id: 'ann-1' as never })).toMatchObject({ title: expect.not.stringMatching('bob was here'), priority: 3 });
    expect(await syncedDocument(db, 'tasks', 'bob-1')).toMatchObject({ title: 'renamed by bob', _sync: { deleted: false } });
  });

  it('shared with a team through custom_data, with an admin role chosen by apply_when', async () => {
    const gateway = await startTestGateway({ rulesPath: REPO_RULES, auth: { jwt: TEST_JWT, customData: { collection: 'userData', userIdField: 'userId' } } });
    const db = await openDb(gateway.database);
    await db.collection('userData').insertMany([
      { userId: 'ann', teamId: 'team-a' },
      { userId: 'root', isAdmin: true },
    ]);
    const project = (id: string, ownerId: string, teamId: string | null) => ({ id, ownerId, teamId, name: id, archived: false, createdAt: '2026-01-01T00:00:00.000Z' });
    await seedAs(gateway, [project('p-team', 'carl', 'team-a'), project('p-other', 'carl', 'team-b'), project('p-solo', 'dora', null)], 'projects');
    const list = async (user: string) => ((await graphqlHttp(gateway.httpUrl, '{ projects { id } }', {}, await testToken(user))).data!.projects as Array<{ id: string }>).map((p) => p.id).sort();
    expect(await list('ann')).toEqual(['p-team']);
    expect(await list('bob')).toEqual([]); // no team: a missing custom_data value matches nothing
    expect(await list('root')).toEqual(['p-other', 'p-solo', 'p-team']);
    // team members read but do not write
    const denied = await graphqlHttp(gateway.httpUrl, 'mutation { updateProject(id: "p-team", set: { name: "mine now" }) { id } }', {}, await testToken('ann'));
    expect(denied.errors?.[0]).toMatchObject({ extensions: { code: 'PERMISSION_DENIED' } });
  });

  it('lets nothing unreadable out: not in pull, stream, bootstrap, conflict replies, compensating writes or plain GraphQL', async () => {
    const gateway = await startTestGateway({ rulesPath: rulesFixture('owner-only') });
    const secret = newTask({ id: 'secret', ownerId: 'bob', title: 'bob’s secret plan' });
    await seedAs(gateway, [secret]);
    const ann = await testToken('ann');
    const ops = syncOperations(gateway.model.collections.find((c) => c.name === 'tasks')!);
    const leaks = (payload: unknown) => JSON.stringify(payload).includes('secret plan');

    const pulled = await graphqlHttp(gateway.httpUrl, ops.pull, { checkpoint: null, limit: 100 }, ann);
    // Not even as a removal: ann never could read it (PROTOCOL.md, section 4).
    expect(pulled.data!.pullTasks.documents).toEqual([]);
    const boot = await graphqlHttp(gateway.httpUrl, ops.bootstrap, { query: {}, limit: 100 }, ann);
    expect(boot.data!.bootstrapTasks.documents).toEqual([]);
    // a push against the hidden document: the reply is a removal, nothing more
    const pushed = await graphqlHttp(gateway.httpUrl, ops.push, { rows: [{ assumedMasterState: null, newDocumentState: { ...secret, ownerId: 'ann', title: 'mine', _deleted: false } }] }, ann);
    expect(pushed.data!.pushTasks.conflicts).toEqual([{ id: 'secret', _deleted: true }]);
    expect(pushed.data!.pushTasks.rejected[0]).toMatchObject({ code: 'PERMISSION_DENIED', realmCode: 231 });
    const plain = await graphqlHttp(gateway.httpUrl, '{ task(id: "secret") { title } tasks { id } }', {}, ann);
    const updated = await graphqlHttp(gateway.httpUrl, 'mutation { updateTask(id: "secret", set: { title: "x" }) { id } }', {}, ann);
    expect(updated.errors?.[0]?.extensions).toMatchObject({ code: 'NOT_FOUND' });

    // live: ann's stream and watch see nothing of bob's changes
    const client = await clientFor(gateway, 'ann');
    const watched: unknown[] = [];
    const { createClient } = await import('graphql-ws/client');
    const { WebSocket } = await import('ws');
    const ws = createClient({ url: gateway.wsUrl, webSocketImpl: WebSocket, connectionParams: { authToken: ann } });
    ws.subscribe({ query: 'subscription { watchTasks { id document { title } } }' }, { next: (v) => watched.push(v), error: () => {}, complete: () => {} });
    await new Promise((r) => setTimeout(r, 200));
    await seedAs(gateway, [newTask({ id: 'secret-2', ownerId: 'bob', title: 'another secret plan' })]);
    await new Promise((r) => setTimeout(r, 500));
    await ws.dispose();
    expect(await ids(client)).toEqual([]);
    expect(watched).toEqual([]);
    for (const payload of [pulled, boot, pushed, plain, updated]) expect(leaks(payload)).toBe(false);
  });

  it('never sends fields the role may not read', async () => {
    const gateway = await startTestGateway({ rulesPath: rulesFixture('public-read') });
    await seedAs(gateway, [{ id: 'p1', ownerId: 'ann', name: 'Apollo', color: 'classified-red', archived: false, createdAt: '2026-01-01T00:00:00.000Z' }], 'projects');
    const token = await testToken('ann');
    const ops = syncOperations(gateway.model.collections.find((c) => c.name === 'projects')!);
    const pulled = await graphqlHttp(gateway.httpUrl, ops.pull, { checkpoint: null, limit: 10 }, token);
    expect(pulled.data!.pullProjects.documents[0]).toMatchObject({ id: 'p1', name: 'Apollo' });
    const plain = await graphqlHttp(gateway.httpUrl, '{ project(id: "p1") { name color } }', {}, token);
    expect(plain.data).toEqual({ project: { name: 'Apollo', color: null } });
    expect(JSON.stringify([pulled, plain])).not.toContain('classified-red');
    // nor their stamps (a counter's state would tell its value)
    const stamped = await graphqlHttp(gateway.httpUrl, ops.pull, { checkpoint: null, limit: 10, stamps: true }, token);
    expect(Object.keys(stamped.data!.pullProjects.documents[0]._stamps)).toContain('name');
    expect(Object.keys(stamped.data!.pullProjects.documents[0]._stamps)).not.toContain('color');
  });

  it.each([
    ['malformed', /malformed\/tasks\.json: tasks role "broken": insert: must be true, false or an expression object/],
    ['not-queryable', /not-queryable\/tasks\.json: tasks role "by-description": document_filters\.read: "description" is not a queryable field/],
  ])('stops startup on a %s rules file, naming the file and the path in it', async (fixture, message) => {
    await expect(startTestGateway({ rulesPath: rulesFixture(fixture) })).rejects.toThrow(message);
  });
});
