// What one request, or one socket, may cost the gateway. A black-box attack found: one 40 KB
// request of 1,000 aliases of `tasks(limit: 1000)` ran 35 s and answered 107 MB while another
// client waited 26 s; 5,000 stream subscriptions on one socket took 1 GB; JSON nested 50,000
// deep was accepted (5,000 deep was stored). Each is now refused up front with a code
// (PROTOCOL.md section 10), over HTTP and over graphql-ws, and the gateway keeps answering.
import { createClient, type Client } from 'graphql-ws/client';
import { getIntrospectionQuery } from 'graphql';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { syncOperations } from '../../protocol/operations.ts';
import type { Gateway } from '../../gateway/server.ts';
import { cleanup, graphqlHttp, newTask, openDb, startTestGateway, testToken, waitFor } from '../helpers/harness.ts';
import { seed } from './attack.ts';

afterEach(cleanup);
// This file's own sockets, closed before the gateways (afterEach hooks run last-registered first).
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

type Answer = { data?: Record<string, any>; errors?: Array<{ message: string; extensions?: Record<string, unknown> }> };

/** A graphql-ws socket of a test user; `run` resolves with the result or the GraphQL errors of one operation. */
function socket(gateway: Gateway, token: Promise<string> = testToken()) {
  let closed: { code: number; reason: string } | undefined;
  const client: Client = createClient({
    url: gateway.wsUrl,
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    lazy: false,
    connectionParams: async () => ({ authToken: await token }),
    on: { closed: (e) => (closed = { code: (e as CloseEvent).code, reason: (e as CloseEvent).reason }) },
  });
  const run = (query: string, variables: Record<string, unknown> = {}) =>
    new Promise<Answer>((resolve) => {
      let result: Answer = {};
      client.subscribe({ query, variables }, { next: (r) => (result = r as Answer), error: (e) => resolve(Array.isArray(e) ? { errors: e } : { errors: [{ message: `closed: ${String((e as CloseEvent).code)}` }] }), complete: () => resolve(result) });
    });
  cleanups.push(() => client.dispose());
  return { client, run, closed: () => closed };
}

/** Another client's plain request answers promptly: the gateway is not busy with the attack. */
async function answersPromptly(gateway: Gateway, withinMs = 2_000): Promise<void> {
  const started = Date.now();
  const answer = await graphqlHttp(gateway.httpUrl, '{ viewer { id } tasks(limit: 5) { id } }', {}, await testToken('bystander'));
  expect(answer.errors).toBeUndefined();
  expect(answer.data?.viewer).toEqual({ id: 'bystander' });
  expect(Date.now() - started).toBeLessThan(withinMs);
}

/**
 * A raw graphql-transport-ws conversation, for messages JSON.stringify cannot write (it
 * overflows the stack on deep nesting): `send` takes the subscribe payload as JSON text.
 */
async function rawSocket(gateway: Gateway) {
  const raw = new WebSocket(gateway.wsUrl, 'graphql-transport-ws');
  await new Promise((r) => raw.once('open', r));
  raw.send(JSON.stringify({ type: 'connection_init', payload: { authToken: await testToken() } }));
  await new Promise((r) => raw.once('message', r)); // connection_ack
  const answers = new Map<string, (message: { type: string; payload?: unknown }) => void>();
  raw.on('message', (data) => {
    const message = JSON.parse(String(data)) as { id: string; type: string; payload?: unknown };
    answers.get(message.id)?.(message);
  });
  let next = 0;
  cleanups.push(() => raw.close());
  return {
    raw,
    send: (payloadJson: string) =>
      new Promise<{ type: string; payload?: unknown }>((resolve) => {
        const id = String(++next);
        answers.set(id, resolve);
        raw.send(`{"id":"${id}","type":"subscribe","payload":${payloadJson}}`);
      }),
  };
}

/** A raw answer as a result: errors come in an `error` message (refused before execution) or in a `next` one. */
const errorsOf = (message: { type: string; payload?: unknown }): Answer => (message.type === 'error' ? { errors: message.payload as Answer['errors'] } : (message.payload as Answer));

/** JSON text of an object nested `levels` deep (JSON.stringify overflows on it). */
const deepJson = (levels: number) => `${'{"a":'.repeat(levels - 1)}{"leaf":true}${'}'.repeat(levels - 1)}`;

const aliases = (n: number, field = 'tasks(limit: 1000) { id title }') => `{ ${Array.from({ length: n }, (_, i) => `a${i}: ${field}`).join(' ')} }`;

describe('query cost', () => {
  it('refuses the 1,000-alias request (40 KB) at once over HTTP and WebSocket, while another client is served', async () => {
    const gateway = await startTestGateway();
    await graphqlHttp(gateway.httpUrl, 'mutation ($rows: [SyncPushRow!]!) { pushTasks(rows: $rows) { rejected { id } } }', {
      rows: Array.from({ length: 200 }, () => ({ assumedMasterState: null, newDocumentState: { ...newTask(), _deleted: false } })),
    });
    const attack = aliases(1_000);
    expect(attack.length).toBeGreaterThan(35_000);

    const started = Date.now();
    const attacks = Array.from({ length: 10 }, () => graphqlHttp(gateway.httpUrl, attack));
    await answersPromptly(gateway);
    for (const answer of await Promise.all(attacks)) {
      expect(answer.data).toBeUndefined();
      expect(answer.errors).toEqual([expect.objectContaining({ message: 'Token limit of 2000 exceeded.', extensions: expect.objectContaining({ code: 'TOO_COMPLEX' }) })]);
    }
    expect(Date.now() - started).toBeLessThan(5_000);

    const ws = socket(gateway);
    const overSocket = await ws.run(attack);
    expect(overSocket.errors).toEqual([expect.objectContaining({ message: 'Token limit of 2000 exceeded.', extensions: expect.objectContaining({ code: 'TOO_COMPLEX' }) })]);
    // The refusal is an error for that operation; the socket goes on.
    expect((await ws.run('{ viewer { id } }')).data).toEqual({ viewer: { id: 'user-1' } });
    expect(ws.closed()).toBeUndefined();
    await answersPromptly(gateway);
  });

  it('limits aliases, depth, directives and the document budget, with TOO_COMPLEX, on both transports', async () => {
    const gateway = await startTestGateway();
    const ws = socket(gateway);
    const tooComplex = (message: string) => [expect.objectContaining({ message, extensions: expect.objectContaining({ code: 'TOO_COMPLEX' }) })];
    const budget = (n: number) => `the request asks for up to ${n} documents (the sum of its list fields' limits); at most 10000 are allowed`;
    const pull = (alias: string, limit: string) => `${alias}: pullTasks(limit: ${limit}) { documents checkpoint { seq } }`;
    // __schema(1) types(2), 9 × fields type (20), name (21)
    const deep = `{ __schema { types { ${'fields { type { '.repeat(9)}name${' } }'.repeat(9)} } } }`;

    const cases: Array<[string, string, Record<string, unknown>, ReturnType<typeof tooComplex>]> = [
      ['16 aliases', aliases(16, 'viewer { id }'), {}, tooComplex('Aliases limit of 15 exceeded, found 16.')],
      ['depth 21', deep, {}, tooComplex('Query depth limit of 20 exceeded, found 21.')],
      ['51 directives', `{ viewer { ${Array.from({ length: 51 }, () => 'id @include(if: true)').join(' ')} } }`, {}, tooComplex('Directives limit of 50 exceeded, found 51.')],
      // 11 × 1,000 documents, each list within its own limit
      ['11 lists of 1,000', aliases(11), {}, tooComplex(budget(11_000))],
      // limits given as variables count with the request's values
      ['3 pulls of 4,000', `query ($l: Int!) { ${pull('a', '$l')} ${pull('b', '$l')} ${pull('c', '$l')} }`, { l: 4_000 }, tooComplex(budget(12_000))],
      // defaults count (list: 100), and a fragment counts once per spread
      ['fragments', `query { ...F ...F a: tasks { id } } fragment F on Query { x: tasks(limit: 1000) { id } y: pullTasks(limit: 4000) { hasMore } }`, {}, tooComplex(budget(10_100))],
      ['a variable default', `query ($l: Int = 5000) { ${pull('a', '$l')} ${pull('b', '$l')} c: tasks(limit: 1) { id } }`, {}, tooComplex(budget(10_001))],
    ];
    for (const [what, query, variables, errors] of cases) {
      const http = await graphqlHttp(gateway.httpUrl, query, variables);
      expect(http.data, what).toBeUndefined();
      expect(http.errors, what).toEqual(errors);
      const overSocket = await ws.run(query, variables);
      expect(overSocket.data, what).toBeUndefined();
      expect(overSocket.errors, what).toEqual(errors);
    }

    // Within the limits, all of it runs.
    const allowed: Array<[string, string, Record<string, unknown>]> = [
      ['15 aliases', aliases(15, 'viewer { id }'), {}],
      ['10 lists of 1,000', aliases(10), {}],
      ['2 pulls of 5,000', `query ($l: Int!) { ${pull('a', '$l')} ${pull('b', '$l')} }`, { l: 5_000 }],
      ['the SDK pull', syncOperations(gateway.model.collections.find((c) => c.name === 'tasks')!).pull, { checkpoint: null, limit: 1_000, view: null, stamps: true }],
      ['the standard introspection query', getIntrospectionQuery({ descriptions: true, specifiedByUrl: true, directiveIsRepeatable: true, schemaDescription: true, inputValueDeprecation: true, oneOf: true }), {}],
    ];
    for (const [what, query, variables] of allowed) {
      expect((await graphqlHttp(gateway.httpUrl, query, variables)).errors, what).toBeUndefined();
      expect((await ws.run(query, variables)).errors, what).toBeUndefined();
    }
    expect(ws.closed()).toBeUndefined();

    // GraphiQL's page still loads.
    const page = await fetch(gateway.httpUrl, { headers: { accept: 'text/html' } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('GraphiQL');
  });

  it('takes its limits from the configuration', async () => {
    const gateway = await startTestGateway({ maxAliases: 2, maxDepth: 3, maxTokens: 30, maxDocumentsPerRequest: 150 });
    const errorOf = async (query: string) => (await graphqlHttp(gateway.httpUrl, query)).errors?.[0];
    expect(await errorOf(aliases(3, 'viewer { id }'))).toMatchObject({ message: 'Aliases limit of 2 exceeded, found 3.', extensions: { code: 'TOO_COMPLEX' } });
    expect(await errorOf('{ viewer { id } pullTasks(limit: 1) { checkpoint { seq } } }')).toBeUndefined();
    expect(await errorOf('{ a: tasks { id } b: tasks(limit: 51) { id } }')).toMatchObject({ extensions: { code: 'TOO_COMPLEX' }, message: expect.stringContaining('up to 151 documents') });
    expect(await errorOf(`{ viewer { ${'id '.repeat(30)} } }`)).toMatchObject({ message: 'Token limit of 30 exceeded.', extensions: { code: 'TOO_COMPLEX' } });
  });
});

describe('per-socket bounds', () => {
  it('refuses subscriptions past 100 on one socket without closing it (5,000 were accepted)', async () => {
    const gateway = await startTestGateway();
    const ops = syncOperations(gateway.model.collections.find((c) => c.name === 'tasks')!);
    const ws = socket(gateway);
    const first: Answer[] = [];
    const refused: unknown[] = [];
    const stops = Array.from({ length: 5_000 }, () =>
      ws.client.subscribe({ query: ops.stream }, { next: (e) => first.push(e as Answer), error: (e) => refused.push(e), complete: () => {} }),
    );
    await waitFor('every subscription answered', () => first.length + refused.length === 5_000, 30_000);
    expect(first.length).toBe(100); // the accepted ones got their first (resync) event
    expect(refused.length).toBe(4_900);
    expect(refused[0]).toEqual([{ message: 'this socket already holds 100 subscriptions; complete one first', extensions: { code: 'TOO_MANY_SUBSCRIPTIONS' } }]);
    expect(ws.closed()).toBeUndefined();
    await answersPromptly(gateway);

    // The accepted subscriptions keep working; completing one makes room for another.
    const task = newTask();
    await graphqlHttp(gateway.httpUrl, ops.push, { rows: [{ assumedMasterState: null, newDocumentState: { ...task, _deleted: false } }] });
    await waitFor('the live change reached the 100 subscriptions', () => first.filter((e) => JSON.stringify(e).includes(task.id)).length === 100);
    stops.forEach((stop) => stop());
    await new Promise((r) => setTimeout(r, 300));
    const again = await new Promise<Answer>((resolve, reject) => ws.client.subscribe({ query: ops.stream }, { next: (e) => resolve(e as Answer), error: reject, complete: () => {} }));
    expect(again.data?.streamTasks).toMatchObject({ resync: true });
    expect(ws.closed()).toBeUndefined();
  });

  it('refuses queries past the in-flight bound of one socket without closing it', async () => {
    const gateway = await startTestGateway({ maxInFlightPerSocket: 2 });
    const ws = socket(gateway);
    expect((await ws.run('{ viewer { id } }')).errors).toBeUndefined();
    const answers = await Promise.all(Array.from({ length: 50 }, () => ws.run('{ tasks(limit: 10) { id } }')));
    const refusals = answers.filter((a) => a.errors);
    expect(refusals.length).toBeGreaterThan(0);
    expect(answers.length - refusals.length).toBeGreaterThanOrEqual(2);
    for (const refusal of refusals) {
      expect(refusal.errors).toEqual([{ message: 'this socket already has 2 queries and mutations running; wait for one to finish', extensions: { code: 'TOO_MANY_OPERATIONS' } }]);
    }
    expect((await ws.run('{ viewer { id } }')).data).toEqual({ viewer: { id: 'user-1' } });
    expect(ws.closed()).toBeUndefined();
  });
});

describe('per-socket bounds count the work running, not operation ids', () => {
  // graphql-ws frees an id as soon as the client sends `complete`, while the query goes on
  // running; a bound counting ids let "subscribe x, complete x" 100 times run 101 list queries
  // at once (a bystander waited 26 s).
  it('holds when the client completes and reuses one operation id', async () => {
    const gateway = await startTestGateway({ maxInFlightPerSocket: 4 });
    await seed(gateway, 'tasks', Array.from({ length: 1_000 }, () => newTask()));
    // Count list queries running in the store at once (instrumentation only).
    const documents = gateway.collections.get('tasks')!.store.documents;
    const find = documents.find.bind(documents);
    let running = 0;
    let most = 0;
    (documents as { find: unknown }).find = (...args: Parameters<typeof find>) => {
      // The attack's lists (limit 1000), from their cursor's opening to its closing (the list
      // resolver closes it when done); the bystander's and other reads are not counted.
      const cursor = find(...args);
      const limit = cursor.limit.bind(cursor);
      let counted = false;
      cursor.limit = (n: number) => {
        if (n === 1_000 && !counted) most = Math.max(most, ++running);
        counted ||= n === 1_000;
        return limit(n);
      };
      const close = cursor.close.bind(cursor);
      cursor.close = async () => {
        if (counted) running--;
        counted = false;
        return close();
      };
      return cursor;
    };

    const { raw } = await rawSocket(gateway);
    const query = '{ tasks(limit: 1000) { id title description tags } }';
    for (let i = 0; i < 100; i++) {
      raw.send(JSON.stringify({ id: 'x', type: 'subscribe', payload: { query } }));
      raw.send(JSON.stringify({ id: 'x', type: 'complete' }));
    }
    await new Promise((r) => setTimeout(r, 200));
    const started = Date.now();
    await answersPromptly(gateway, 5_000);
    const bystanderMs = Date.now() - started;
    await waitFor('the store is quiet', () => running === 0, 60_000);
    // (The refusals are not sent: graphql-ws answers an id the client has completed with nothing.)
    expect(most).toBeLessThanOrEqual(4);
    expect(bystanderMs).toBeLessThan(5_000);
    // Every slot was given back: the socket runs its next queries.
    expect(raw.readyState).toBe(WebSocket.OPEN);
    const ws = socket(gateway);
    expect((await ws.run('{ viewer { id } }')).data).toEqual({ viewer: { id: 'user-1' } });
    const again = await new Promise<{ type: string; payload?: unknown }>((resolve) => {
      raw.on('message', (d) => {
        const m = JSON.parse(String(d));
        if (m.id === 'y' && m.type !== 'complete') resolve(m);
      });
      raw.send(JSON.stringify({ id: 'y', type: 'subscribe', payload: { query: '{ viewer { id } }' } }));
    });
    expect(again).toEqual({ id: 'y', type: 'next', payload: { data: { viewer: { id: 'user-1' } } } });
  }, 120_000);

  it('counts subscriptions by their live streams: completing and reusing an id frees the slot, and the bound holds', async () => {
    const gateway = await startTestGateway({ maxSubscriptionsPerSocket: 3 });
    const { raw } = await rawSocket(gateway);
    const messages: Array<{ id?: string; type: string; payload?: unknown }> = [];
    raw.on('message', (d) => messages.push(JSON.parse(String(d))));
    const watch = 'subscription { watchTasks { id } }';
    for (let i = 0; i < 50; i++) {
      raw.send(JSON.stringify({ id: 'x', type: 'subscribe', payload: { query: watch } }));
      raw.send(JSON.stringify({ id: 'x', type: 'complete' }));
    }
    await new Promise((r) => setTimeout(r, 500));
    // Three held at once, on other ids; a fourth is refused.
    for (const id of ['a', 'b', 'c', 'd']) raw.send(JSON.stringify({ id, type: 'subscribe', payload: { query: watch } }));
    await waitFor('the fourth refused', () => messages.find((m) => m.id === 'd'), 5_000);
    expect(messages.find((m) => m.id === 'd')).toMatchObject({ type: 'error', payload: [{ extensions: { code: 'TOO_MANY_SUBSCRIPTIONS' } }] });
    expect(messages.filter((m) => ['a', 'b', 'c'].includes(m.id!) && m.type === 'error')).toEqual([]);
    // Completing one makes room for another.
    raw.send(JSON.stringify({ id: 'a', type: 'complete' }));
    await new Promise((r) => setTimeout(r, 200));
    raw.send(JSON.stringify({ id: 'e', type: 'subscribe', payload: { query: watch } }));
    await new Promise((r) => setTimeout(r, 500));
    expect(messages.filter((m) => m.id === 'e' && m.type === 'error')).toEqual([]);
    expect(raw.readyState).toBe(WebSocket.OPEN);
  });
});

describe('deeply nested JSON', () => {
  it('refuses JSONObject values deeper than 32 levels, over HTTP and WebSocket, and stores nothing', async () => {
    const gateway = await startTestGateway();
    const ops = syncOperations(gateway.model.collections.find((c) => c.name === 'tasks')!);
    const db = await openDb(gateway.database);
    const ws = socket(gateway);
    const raw = await rawSocket(gateway);
    const token = await testToken();
    for (const levels of [33, 5_000, 50_000]) {
      const task = newTask();
      // {"query", "variables": {"rows": [{"assumedMasterState": null, "newDocumentState": {...task, "description": <nested>}}]}}
      const payload = JSON.stringify({ query: ops.push, variables: { rows: [{ assumedMasterState: null, newDocumentState: { ...task, _deleted: false, description: 'DEEP' } }] } }).replace('"DEEP"', deepJson(levels));
      const http = (await (await fetch(gateway.httpUrl, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: payload })).json()) as Answer;
      for (const answer of [http, errorsOf(await raw.send(payload))]) {
        expect(answer.data, `${levels}`).toBeUndefined();
        expect(answer.errors, `${levels}`).toEqual([
          expect.objectContaining({ message: expect.stringMatching(/JSONObject nests deeper than 32 levels$/), extensions: expect.objectContaining({ code: 'BAD_REQUEST' }) }),
        ]);
      }
      expect(await db.collection('tasks').countDocuments({ _id: task.id as never })).toBe(0);
    }
    expect(raw.raw.readyState).toBe(WebSocket.OPEN);
    // A literal too: at 33 levels the scalar refuses it; far deeper, the parser never recurses into it.
    const literal = (levels: number) => `{ tasks(filter: ${'{a: '.repeat(levels)}1${'}'.repeat(levels)}) { id } }`;
    expect((await graphqlHttp(gateway.httpUrl, literal(33))).errors?.[0]).toMatchObject({ message: 'JSONObject nests deeper than 32 levels', extensions: { code: 'BAD_REQUEST' } });
    expect((await graphqlHttp(gateway.httpUrl, literal(32))).errors?.[0]?.message).not.toContain('nests deeper');
    const brackets = `{ tasks(filter: {a: ${'['.repeat(1_500)}1${']'.repeat(1_500)}}) { id } }`;
    for (const answer of [await graphqlHttp(gateway.httpUrl, brackets), await ws.run(brackets)]) {
      expect(answer.errors).toEqual([expect.objectContaining({ message: 'the query nests brackets deeper than 128 levels', extensions: expect.objectContaining({ code: 'TOO_COMPLEX' }) })]);
    }
    expect((await graphqlHttp(gateway.httpUrl, literal(50_000))).errors?.[0]).toMatchObject({ extensions: { code: 'TOO_COMPLEX' } });
    expect(ws.closed()).toBeUndefined();
    await answersPromptly(gateway);
  });

  it('survives HTTP bodies and WebSocket messages nested 50,000 levels deep', async () => {
    const gateway = await startTestGateway();
    const deepArray = `${'['.repeat(50_000)}${']'.repeat(50_000)}`;
    const deepObject = deepJson(50_000);
    const token = await testToken();
    const post = (body: string) => fetch(gateway.httpUrl, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body });

    // HTTP: the whole body, an unused variable, extensions, a variable of the wrong type
    expect((await post(deepArray)).status).toBeGreaterThanOrEqual(400);
    for (const body of [
      `{"query": "{ viewer { id } }", "variables": {"unused": ${deepObject}}}`,
      `{"query": "{ viewer { id } }", "extensions": ${deepObject}}`,
    ]) {
      const answer = (await (await post(body)).json()) as Answer;
      expect(answer.data ?? answer.errors).toBeTruthy();
    }
    const wrongType = (await (await post(`{"query": "query ($id: ID!) { task(id: $id) { id } }", "variables": {"id": ${deepObject}}}`)).json()) as Answer;
    expect(wrongType.errors?.[0]?.message).toMatch(/^Variable "\$id" got invalid value/);
    await answersPromptly(gateway);

    // WebSocket: a message that is only nesting, and a subscribe whose variable nests 50,000 deep
    const raw = new WebSocket(gateway.wsUrl, 'graphql-transport-ws');
    await new Promise((r) => raw.once('open', r));
    const closed = new Promise<[number, string]>((r) => raw.once('close', (code, reason) => r([code, String(reason)])));
    raw.send(deepArray);
    expect(await closed).toEqual([4400, 'Invalid message received']);

    const ws = await rawSocket(gateway);
    const answer = await ws.send(`{"query": "query ($f: JSONObject) { tasks(filter: $f) { id } }", "variables": {"f": ${deepObject}}}`);
    expect(errorsOf(answer).errors).toEqual([
      expect.objectContaining({ message: expect.stringMatching(/JSONObject nests deeper than 32 levels$/), extensions: expect.objectContaining({ code: 'BAD_REQUEST' }) }),
    ]);
    expect(await ws.send(`{"query": "{ viewer { id } }", "extensions": ${deepObject}}`)).toEqual({ id: expect.any(String), type: 'next', payload: { data: { viewer: { id: 'user-1' } } } });
    expect(ws.raw.readyState).toBe(WebSocket.OPEN);
    await answersPromptly(gateway);
  });
});
