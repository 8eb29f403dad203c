// Authentication edges a black-box attack found: a non-string authToken in connection_init closed
// the socket with 4500 and echoed an internal message, and a revoked API key's open socket kept
// working. Now: 4401 `malformed: ...`, no internal message ever reaches a client, and API-key
// sessions are re-checked and closed with 4401 `revoked-api-key: ...`.
//
// A second attack found: subscriptions over plain HTTP (Yoga's Server-Sent Events) were sessions
// none of the above reached (expiry, revocation, custom-data refresh), so they kept delivering;
// Yoga's answer to a malformed JSON body quoted the parser's message (originalError); custom JWTs
// without `exp` made sessions that never expired. Now subscriptions are refused over HTTP, no
// originalError is sent, and custom JWTs must carry `exp`.
import { resolve } from 'node:path';
import { createClient } from 'graphql-ws/client';
import { SignJWT } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { Gateway } from '../../gateway/server.ts';
import { cleanup, graphqlHttp, newTask, openDb, startTestGateway, TEST_JWT, testToken, waitFor } from '../helpers/harness.ts';
import { seed } from './attack.ts';

afterEach(cleanup);
const aborts: AbortController[] = [];
afterEach(() => {
  while (aborts.length) aborts.pop()!.abort();
});

/**
 * A raw graphql-transport-ws socket: sends connection_init with `payload` (or with the JSON text
 * `payload.json`, for what JSON.stringify cannot write), reports the close or the ack.
 */
async function connect(gateway: Gateway, payload: unknown): Promise<{ acked: boolean; closed?: { code: number; reason: string } }> {
  const socket = new WebSocket(gateway.wsUrl, 'graphql-transport-ws');
  await new Promise((r) => socket.once('open', r));
  const outcome = new Promise<{ acked: boolean; closed?: { code: number; reason: string } }>((resolve) => {
    socket.once('message', (data) => resolve({ acked: JSON.parse(String(data)).type === 'connection_ack' }));
    socket.once('close', (code, reason) => resolve({ acked: false, closed: { code, reason: String(reason) } }));
  });
  const json = (payload as { json?: unknown } | null)?.json;
  socket.send(typeof json === 'string' ? `{"type":"connection_init","payload":${json}}` : JSON.stringify({ type: 'connection_init', payload }));
  const result = await outcome;
  socket.close();
  return result;
}

/** A graphql-ws client session; `closed` is how the server ended it, if it did. */
function session(gateway: Gateway, authToken: string) {
  let closed: { code: number; reason: string } | undefined;
  const client = createClient({
    url: gateway.wsUrl,
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    lazy: false,
    onNonLazyError: () => {}, // the closes are what the test looks at
    connectionParams: { authToken },
    on: { closed: (e) => (closed = { code: (e as CloseEvent).code, reason: (e as CloseEvent).reason }) },
  });
  const viewer = () =>
    new Promise<unknown>((resolve, reject) => {
      let data: unknown;
      client.subscribe({ query: '{ viewer { id provider } }' }, { next: (r) => (data = r.data), error: reject, complete: () => resolve(data) });
    });
  return { client, viewer, closed: () => closed };
}

describe('malformed credentials', () => {
  it('closes with 4401 malformed for an authToken that is not a string, and echoes nothing internal', async () => {
    const gateway = await startTestGateway();
    // JSON.stringify itself overflows the stack on this: written by hand.
    const deep = `{"authToken": ${'['.repeat(50_000)}"x"${']'.repeat(50_000)}}`;
    const cases: Array<[string, unknown, string]> = [
      ['a number', { authToken: 12345 }, 'malformed: the token must be a string, got a number'],
      ['an object', { authToken: { token: 'x' } }, 'malformed: the token must be a string, got an object'],
      ['an array', { authToken: ['x'] }, 'malformed: the token must be a string, got an array'],
      ['a boolean', { authToken: true }, 'malformed: the token must be a string, got a boolean'],
      ['an array nested 50,000 deep', { json: deep }, 'malformed: the token must be a string, got an array'],
      ['an empty string', { authToken: '' }, 'missing: no token: send one in connection_init { authToken } or Authorization: Bearer'],
      ['no payload', null, 'missing: no token: send one in connection_init { authToken } or Authorization: Bearer'],
    ];
    for (const [what, payload, reason] of cases) {
      const result = await connect(gateway, payload);
      expect(result, what).toEqual({ acked: false, closed: { code: 4401, reason } });
    }
    // A payload that is not an object is graphql-ws's to refuse, with its own words.
    expect(await connect(gateway, ['x'])).toEqual({ acked: false, closed: { code: 4400, reason: 'Invalid message received' } });
    // The gateway is fine, and a good token still connects.
    expect(await connect(gateway, { authToken: await testToken() })).toEqual({ acked: true });
  });

  it('refuses a malformed Authorization header with 401 malformed', async () => {
    const gateway = await startTestGateway();
    for (const header of ['Basic dXNlcjpwYXNz', 'Bearer', 'token-without-scheme']) {
      const response = await fetch(gateway.httpUrl, { method: 'POST', headers: { 'content-type': 'application/json', authorization: header }, body: JSON.stringify({ query: '{ viewer { id } }' }) });
      expect(response.status, header).toBe(401);
      expect(await response.json(), header).toEqual({
        errors: [{ message: 'unauthorized: the Authorization header must be "Bearer <token>"', extensions: { code: 'UNAUTHENTICATED', reason: 'malformed' } }],
      });
    }
  });

  it('never sends an internal error message to a client', async () => {
    const gateway = await startTestGateway();
    const { key } = await gateway.auth.apiKeys.create('importer');
    // The key store failing unexpectedly (say MongoDB went away) while a key is checked:
    const verify = gateway.auth.apiKeys.verify.bind(gateway.auth.apiKeys);
    gateway.auth.apiKeys.verify = async () => {
      throw new Error('connection 7 to mongodb-internal.corp:27017 closed');
    };
    const ws = await connect(gateway, { authToken: key });
    expect(ws).toEqual({ acked: false, closed: { code: 1011, reason: 'internal error' } }); // 1011: clients retry
    const response = await fetch(gateway.httpUrl, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: '{"query":"{ viewer { id } }"}' });
    expect(response.status).toBe(500);
    expect(await response.text()).toBe('{"errors":[{"message":"authentication failed"}]}');
    gateway.auth.apiKeys.verify = verify;
    expect((await graphqlHttp(gateway.httpUrl, '{ viewer { id } }', {}, key)).data).toEqual({ viewer: { id: expect.stringMatching(/^api-key:/) } });
  });
});

describe('API key sessions', () => {
  it('closes an open socket with 4401 revoked-api-key once its key is revoked; other sessions stay', async () => {
    const gateway = await startTestGateway({ apiKeyCheckMs: 200 });
    const revoked = await gateway.auth.apiKeys.create('nightly import', 'service:import');
    const kept = await gateway.auth.apiKeys.create('reporting', 'service:reporting');
    const doomed = session(gateway, revoked.key);
    const other = session(gateway, kept.key);
    const person = session(gateway, await testToken('ann'));
    expect(await doomed.viewer()).toEqual({ viewer: { id: 'service:import', provider: 'api-key' } });
    expect(await other.viewer()).toEqual({ viewer: { id: 'service:reporting', provider: 'api-key' } });
    expect(await person.viewer()).toEqual({ viewer: { id: 'ann', provider: 'jwt' } });
    // An open subscription does not keep it alive.
    const events: unknown[] = [];
    doomed.client.subscribe({ query: 'subscription { watchTasks { id } }' }, { next: (e) => events.push(e), error: () => {}, complete: () => {} });

    expect(await gateway.auth.apiKeys.revoke(revoked.info.id)).toBe(true);
    const started = Date.now();
    await waitFor('the revoked key’s socket closed', () => doomed.closed(), 5_000);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(doomed.closed()).toEqual({ code: 4401, reason: 'revoked-api-key: the API key has been revoked' });

    await new Promise((r) => setTimeout(r, 500)); // a few more checks
    expect(other.closed()).toBeUndefined();
    expect(person.closed()).toBeUndefined();
    expect(await other.viewer()).toEqual({ viewer: { id: 'service:reporting', provider: 'api-key' } });
    // And it cannot come back.
    expect(await connect(gateway, { authToken: revoked.key })).toEqual({ acked: false, closed: { code: 4401, reason: 'revoked-api-key: the API key has been revoked' } });
    await Promise.all([doomed, other, person].map((s) => s.client.dispose()));
  });
});

/**
 * A subscription over plain HTTP (SSE by default; GET or multipart on request); `text()` is
 * everything received so far, `ended()` whether the answer is complete.
 */
async function overHttp(httpUrl: string, token: string, query: string, how: { method?: 'GET' | 'POST'; accept?: string } = {}) {
  const abort = new AbortController();
  aborts.push(abort);
  const method = how.method ?? 'POST';
  const headers = { authorization: `Bearer ${token}`, accept: how.accept ?? 'text/event-stream' };
  const res =
    method === 'GET'
      ? await fetch(`${httpUrl}?query=${encodeURIComponent(query)}`, { headers, signal: abort.signal })
      : await fetch(httpUrl, { method, headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify({ query }), signal: abort.signal });
  let received = '';
  let ended = false;
  void (async () => {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) received += decoder.decode(chunk);
    } catch {
      /* aborted */
    }
    ended = true;
  })();
  return { status: res.status, contentType: res.headers.get('content-type'), text: () => received, ended: () => ended };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const REFUSAL = { errors: [{ message: 'subscriptions are served over WebSocket (graphql-ws) only', extensions: { code: 'BAD_REQUEST' } }] };

/** Refused at once with 400 and a JSON error: no event stream is opened. */
async function expectRefused(sub: Awaited<ReturnType<typeof overHttp>>) {
  expect(sub.status).toBe(400);
  expect(sub.contentType).toMatch(/^application\/json/);
  await waitFor('the refusal answered in full', () => sub.ended(), 5_000);
  expect(JSON.parse(sub.text())).toEqual(REFUSAL);
}

describe('subscriptions over plain HTTP (SSE) are refused: sessions live on WebSocket only', () => {
  it('refuses an SSE subscription (POST, GET, multipart) and delivers nothing, even past its token’s expiry', async () => {
    const gateway = await startTestGateway();
    const shortLived = await testToken('user-1', {}, Math.floor(Date.now() / 1000) + 2);
    const query = 'subscription { watchTasks { id document { title } } }';
    const subs = [
      await overHttp(gateway.httpUrl, shortLived, query),
      await overHttp(gateway.httpUrl, shortLived, query, { method: 'GET' }),
      await overHttp(gateway.httpUrl, shortLived, query, { accept: 'multipart/mixed' }),
      await overHttp(gateway.httpUrl, shortLived, query, { accept: 'application/json' }),
    ];
    for (const sub of subs) await expectRefused(sub);
    await sleep(2_500); // the token has expired
    await seed(gateway, 'tasks', [newTask({ title: 'after-expiry-secret' })]);
    await sleep(500);
    for (const sub of subs) expect(sub.text()).not.toContain('after-expiry-secret');
    // Queries and mutations over HTTP are unaffected.
    expect((await graphqlHttp(gateway.httpUrl, '{ viewer { id } }')).data).toEqual({ viewer: { id: 'user-1' } });
  });

  it('refuses an SSE subscription opened with an API key; nothing arrives after the key is revoked', async () => {
    const gateway = await startTestGateway({ apiKeyCheckMs: 200 });
    const { key, info } = await gateway.auth.apiKeys.create('attacker-service');
    const sub = await overHttp(gateway.httpUrl, key, 'subscription { watchTasks { id document { title } } }');
    await expectRefused(sub);
    expect(await gateway.auth.apiKeys.revoke(info.id)).toBe(true);
    await sleep(500);
    await seed(gateway, 'tasks', [newTask({ title: 'after-revocation-secret' })]);
    await sleep(500);
    expect(sub.text()).not.toContain('after-revocation-secret');
  });

  it('refuses an SSE watch that custom data would have to follow; the same watch over WebSocket follows it', async () => {
    const gateway = await startTestGateway({
      rulesPath: resolve(import.meta.dirname, '../../rules'),
      auth: { jwt: TEST_JWT, customData: { collection: 'userData', userIdField: 'userId' } },
      customDataPollMs: 100,
    });
    const db = await openDb(gateway.database);
    await db.collection('userData').insertOne({ userId: 'ann', teamId: 'team-a' });
    const project = (id: string, name: string) => ({ id, ownerId: 'carl', teamId: 'team-a', name, archived: false, createdAt: '2026-01-01T00:00:00.000Z' });
    const query = 'subscription { watchProjects { id document { name } } }';
    const sub = await overHttp(gateway.httpUrl, await testToken('ann'), query);
    await expectRefused(sub);
    const ws = session(gateway, await testToken('ann'));
    const events: string[] = [];
    ws.client.subscribe({ query }, { next: (e) => events.push(JSON.stringify(e)), error: () => {}, complete: () => {} });
    await sleep(300);
    await seed(gateway, 'projects', [project('p1', 'while-member')]);
    await waitFor('the member’s watch got the project', () => events.some((e) => e.includes('while-member')), 5_000);
    await db.collection('userData').updateOne({ userId: 'ann' }, { $set: { teamId: 'team-b' } });
    await sleep(1_000); // 10 custom-data polls
    await seed(gateway, 'projects', [project('p2', 'after-leaving-secret')]);
    await sleep(1_000);
    expect(events.join()).not.toContain('after-leaving-secret');
    expect(sub.text()).not.toContain('while-member');
    await ws.client.dispose();
  });
});

describe('HTTP error answers', () => {
  it('answers a malformed JSON body with 400 and no internal error detail (originalError)', async () => {
    const gateway = await startTestGateway();
    for (const accept of [undefined, 'application/json', 'application/graphql-response+json']) {
      const res = await fetch(gateway.httpUrl, {
        method: 'POST',
        headers: { authorization: `Bearer ${await testToken()}`, 'content-type': 'application/json', ...(accept ? { accept } : {}) },
        body: '{"query": "secret-looking body',
      });
      expect(res.status, accept).toBe(400);
      const text = await res.text();
      expect(text, accept).not.toContain('originalError');
      expect(text, accept).not.toContain('secret-looking');
      expect(JSON.parse(text), accept).toEqual({ errors: [{ message: 'POST body sent invalid JSON.', extensions: { code: 'BAD_REQUEST' } }] });
    }
  });
});

describe('custom JWT expiry', () => {
  const sign = (claims: Record<string, unknown>, exp?: number | string) => {
    const jwt = new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setSubject('no-exp').setIssuer(TEST_JWT.issuer).setAudience(TEST_JWT.audience).setIssuedAt();
    if (exp !== undefined) jwt.setExpirationTime(exp);
    return jwt.sign(new TextEncoder().encode(TEST_JWT.secret));
  };

  it('refuses a custom JWT without exp (401 and 4401 malformed); tokens with exp, API keys and anonymous tokens work', async () => {
    const gateway = await startTestGateway();
    const noExp = await sign({});
    const reason = 'malformed: the token has no valid expiry (exp): custom JWTs must expire';
    const response = await fetch(gateway.httpUrl, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${noExp}` }, body: JSON.stringify({ query: '{ viewer { id } }' }) });
    expect(response.status).toBe(401);
    expect(await response.json()).toEqual({ errors: [{ message: 'unauthorized: the token has no valid expiry (exp): custom JWTs must expire', extensions: { code: 'UNAUTHENTICATED', reason: 'malformed' } }] });
    expect(await connect(gateway, { authToken: noExp })).toEqual({ acked: false, closed: { code: 4401, reason } });
    // An exp that is not a number is no expiry either.
    const badExp = await new SignJWT({ exp: 'never' as never }).setProtectedHeader({ alg: 'HS256' }).setSubject('x').setIssuer(TEST_JWT.issuer).setAudience(TEST_JWT.audience).sign(new TextEncoder().encode(TEST_JWT.secret));
    expect((await connect(gateway, { authToken: badExp })).closed?.code).toBe(4401);

    expect(await connect(gateway, { authToken: await sign({}, '1h') })).toEqual({ acked: true });
    expect((await graphqlHttp(gateway.httpUrl, '{ viewer { id } }', {}, await sign({}, '1h'))).data).toEqual({ viewer: { id: 'no-exp' } });
    const { key } = await gateway.auth.apiKeys.create('service');
    expect(await connect(gateway, { authToken: key })).toEqual({ acked: true });
    const anonymous = (await (await fetch(gateway.httpUrl.replace('/graphql', '/auth/anonymous'), { method: 'POST' })).json()) as { token: string; userId: string };
    expect(await connect(gateway, { authToken: anonymous.token })).toEqual({ acked: true });
    expect((await graphqlHttp(gateway.httpUrl, '{ viewer { id } }', {}, anonymous.token)).data).toEqual({ viewer: { id: anonymous.userId } });
  });
});
