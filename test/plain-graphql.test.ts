// Issue 2, case 8: a plain @urql/core client (no RxDB) and an RxDB client see each other's
// writes: mutations reach the RxDB client live; the RxDB client's write shows up in the urql
// client's query and watch subscription.
import { Client, fetchExchange, subscriptionExchange } from '@urql/core';
import { createClient as createWsClient } from 'graphql-ws/client';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { cleanup, newTask, openTestClient, startTestGateway, testToken, waitFor } from './helpers/harness.ts';

afterEach(cleanup);

function plainClient(httpUrl: string, wsUrl: string, token: string) {
  const ws = createWsClient({ url: wsUrl, webSocketImpl: WebSocket, connectionParams: { authToken: token } });
  const client = new Client({
    url: httpUrl,
    fetchOptions: { headers: { authorization: `Bearer ${token}` } },
    exchanges: [
      fetchExchange,
      subscriptionExchange({
        forwardSubscription: (request) => ({
          subscribe: (sink) => ({ unsubscribe: ws.subscribe({ ...request, query: request.query || '' }, sink) }),
        }),
      }),
    ],
    requestPolicy: 'network-only',
  });
  return { client, dispose: () => ws.dispose() };
}

describe('plain GraphQL clients and RxDB clients share data', () => {
  it('sees mutations live in RxDB and RxDB writes in queries and subscriptions', async () => {
    const gateway = await startTestGateway();
    const { client: urql, dispose } = plainClient(gateway.httpUrl, gateway.wsUrl, await testToken());
    try {
      const rxdb = await openTestClient(gateway.wsUrl);
      await waitFor('RxDB client connected', () => rxdb.connectionState === 'connected');

      const watched: Array<{ id: string; deleted: boolean; document: { title: string } | null }> = [];
      const watch = urql
        .subscription(`subscription { watchTasks(filter: { ownerId: "user-rx" }) { id deleted document { title status } } }`, {})
        .subscribe((r) => watched.push(...(r.data?.watchTasks ?? [])));

      // urql insert + update → RxDB, live
      const inserted = await urql
        .mutation(`mutation ($input: TaskInput!) { insertTask(input: $input) { id title status tags } }`, {
          input: { id: 'plain-1', ownerId: 'user-plain', title: 'from urql', status: 'TODO', priority: 2, tags: ['a'] },
        })
        .toPromise();
      expect(inserted.error).toBeUndefined();
      expect(inserted.data.insertTask).toEqual({ id: 'plain-1', title: 'from urql', status: 'TODO', tags: ['a'] });
      await waitFor('RxDB has the urql insert', () => rxdb.collections.tasks!.findOne('plain-1').exec());

      const updated = await urql
        .mutation(`mutation { updateTask(id: "plain-1", set: { status: DONE, title: "done via urql" }) { id title status priority } }`, {})
        .toPromise();
      expect(updated.data.updateTask).toEqual({ id: 'plain-1', title: 'done via urql', status: 'DONE', priority: 2 });
      await waitFor('RxDB has the urql update', async () => (await rxdb.collections.tasks!.findOne('plain-1').exec())?.status === 'DONE');

      // RxDB write → urql query and subscription
      const fromRx = newTask({ ownerId: 'user-rx', title: 'from RxDB' });
      await rxdb.collections.tasks!.insert(fromRx);
      const listed = await waitFor('urql query lists the RxDB write', async () => {
        const r = await urql.query(`{ tasks(filter: { ownerId: "user-rx" }) { id title } }`, {}).toPromise();
        return r.data?.tasks.length === 1 ? r.data.tasks : null;
      });
      expect(listed).toEqual([{ id: fromRx.id, title: 'from RxDB' }]);
      const byId = await urql.query(`query ($id: ID!) { task(id: $id) { title ownerId } }`, { id: fromRx.id }).toPromise();
      expect(byId.data.task).toEqual({ title: 'from RxDB', ownerId: 'user-rx' });
      await waitFor('urql subscription got the RxDB write', () => watched.some((c) => c.id === fromRx.id && c.document?.title === 'from RxDB'));

      // urql delete → RxDB; the watcher sees it as deleted; the filter kept urql's own task out
      const deleted = await urql.mutation(`mutation ($id: ID!) { deleteTask(id: $id) }`, { id: fromRx.id }).toPromise();
      expect(deleted.data.deleteTask).toBe(true);
      await waitFor('RxDB saw the delete', async () => (await rxdb.collections.tasks!.findOne(fromRx.id).exec()) === null);
      await waitFor('watcher saw the delete', () => watched.some((c) => c.id === fromRx.id && c.deleted));
      expect(watched.every((c) => c.id === fromRx.id)).toBe(true);
      watch.unsubscribe();

      // errors are clear and nothing is written
      const duplicate = await urql
        .mutation(`mutation { insertTask(input: { id: "plain-1", ownerId: "x", title: "dup", status: TODO, priority: 1, tags: [] }) { id } }`, {})
        .toPromise();
      expect(duplicate.error?.graphQLErrors[0]?.extensions.code).toBe('ALREADY_EXISTS');
      // Operators start with `$`, which GraphQL literals cannot spell: filters with operators go in variables.
      const byPriority = await urql.query(`query ($f: JSONObject) { tasks(filter: $f) { id } }`, { f: { priority: { $lte: 2 }, tags: 'a' } }).toPromise();
      expect(byPriority.data.tasks).toEqual([{ id: 'plain-1' }]);
      const badFilter = await urql.query(`query ($f: JSONObject) { tasks(filter: $f) { id } }`, { f: { title: { $where: 'sleep(1000)' } } }).toPromise();
      expect(badFilter.error?.graphQLErrors[0]?.message).toBe('bad filter: unsupported operator $where on title');
    } finally {
      await dispose();
    }
  });

  it('adds to counters with inc and keeps add-wins sets as sets', async () => {
    const gateway = await startTestGateway();
    const { client: urql, dispose } = plainClient(gateway.httpUrl, gateway.wsUrl, await testToken());
    try {
      const inserted = await urql
        .mutation(`mutation { insertTask(input: { id: "c-1", ownerId: "x", title: "t", status: TODO, priority: 1, tags: [], assigneeIds: ["ann", "bob", "ann"], minutesLogged: 10 }) { assigneeIds minutesLogged } }`, {})
        .toPromise();
      expect(inserted.data.insertTask).toEqual({ assigneeIds: ['ann', 'bob'], minutesLogged: 10 });
      // Concurrent increments all count (each is read and written holding the document's lock),
      // equal ones too: two +1 on 10 must not both write 11 and one pass for a retry.
      const add = (n: number) => urql.mutation(`mutation ($n: Int) { updateTask(id: "c-1", inc: { minutesLogged: $n }) { minutesLogged } }`, { n }).toPromise();
      const results = await Promise.all([add(5), add(7), add(-2), add(20), ...Array.from({ length: 8 }, () => add(1))]);
      for (const r of results) expect(r.error).toBeUndefined();
      const after = await urql.mutation(`mutation { updateTask(id: "c-1", set: { title: "u" }, inc: { minutesLogged: 1 }) { title minutesLogged } }`, {}).toPromise();
      expect(after.data.updateTask).toEqual({ title: 'u', minutesLogged: 49 });
      const rxdb = await openTestClient(gateway.wsUrl);
      await waitFor('RxDB client has the sums', async () => (await rxdb.collections.tasks!.findOne('c-1').exec())?.get('minutesLogged') === 49);
    } finally {
      await dispose();
    }
  });
});
