// Authentication edges a black-box attack found: a non-string authToken in connection_init closed
// the socket with 4500 and echoed an internal message, and a revoked API key's open socket kept
// working. Now: 4401 `malformed: ...`, no internal message ever reaches a client, and API-key
// sessions are re-checked and closed with 4401 `revoked-api-key: ...`.
import { createClient } from 'graphql-ws/client';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { Gateway } from '../../gateway/server.ts';
import { cleanup, graphqlHttp, startTestGateway, testToken, waitFor } from '../helpers/harness.ts';

afterEach(cleanup);

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
