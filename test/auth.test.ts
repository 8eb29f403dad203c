// Issue 4: users and authentication on every connection.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createClient } from 'graphql-ws/client';
import { exportJWK, exportSPKI, generateKeyPair, SignJWT, UnsecuredJWT } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { Credentials, TributaryAuth } from '../client-sdk/index.ts';
import { cleanup, graphqlHttp, newTask, openDb, openTestClient, startTestGateway, TEST_JWT, testToken, waitFor } from './helpers/harness.ts';

afterEach(cleanup);

/** Connects with graphql-ws and runs `{ viewer { id provider } }`; or reports how the socket was closed. */
async function viewerOverWebSocket(wsUrl: string, authToken: string | null): Promise<{ viewer?: { id: string; provider: string }; closed?: { code: number; reason: string } }> {
  let closed: { code: number; reason: string } | undefined;
  const client = createClient({
    url: wsUrl,
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    connectionParams: authToken ? { authToken } : {},
    on: { closed: (e) => (closed = { code: (e as CloseEvent).code, reason: (e as CloseEvent).reason }) },
  });
  try {
    const result = await new Promise<Record<string, any>>((resolve, reject) => {
      client.subscribe({ query: '{ viewer { id provider } }' }, { next: resolve, error: reject, complete: () => {} });
    });
    return { viewer: result.data.viewer };
  } catch {
    return { closed };
  } finally {
    await client.dispose();
  }
}

const sign = (claims: Record<string, unknown>, alg: string, key: Uint8Array | CryptoKey, headers: Record<string, unknown> = {}) =>
  new SignJWT(claims).setProtectedHeader({ alg, ...headers }).setSubject(String(claims.sub ?? 'user-42')).setIssuedAt().setExpirationTime('1h').sign(key);

describe('authentication', () => {
  it('accepts HS256, RS256, ES256 and JWKS tokens; the user id reaches resolvers', async () => {
    const hs = await startTestGateway();
    const hsToken = await testToken('user-hs');
    expect((await viewerOverWebSocket(hs.wsUrl, hsToken)).viewer).toEqual({ id: 'user-hs', provider: 'jwt' });
    expect((await graphqlHttp(hs.httpUrl, '{ viewer { id provider } }', {}, hsToken)).data).toEqual({ viewer: { id: 'user-hs', provider: 'jwt' } });

    for (const alg of ['RS256', 'ES256']) {
      const { publicKey, privateKey } = await generateKeyPair(alg);
      const gateway = await startTestGateway({ auth: { jwt: { publicKey: await exportSPKI(publicKey), algorithms: [alg] } } });
      const token = await sign({ sub: `user-${alg}` }, alg, privateKey);
      expect((await viewerOverWebSocket(gateway.wsUrl, token)).viewer).toEqual({ id: `user-${alg}`, provider: 'jwt' });
    }

    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }] };
    const jwksServer = createServer((_, res) => res.end(JSON.stringify(jwks))).listen(0, '127.0.0.1');
    await new Promise((r) => jwksServer.once('listening', r));
    try {
      const url = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/.well-known/jwks.json`;
      const gateway = await startTestGateway({ auth: { jwt: { jwksUrl: url, issuer: 'https://idp.test' } } });
      const token = await sign({ sub: 'user-jwks', iss: 'https://idp.test' }, 'ES256', privateKey, { kid: 'k1' });
      expect((await viewerOverWebSocket(gateway.wsUrl, token)).viewer).toEqual({ id: 'user-jwks', provider: 'jwt' });
    } finally {
      jwksServer.close();
    }
  });

  it('refuses bad credentials with a clear reason on both transports, and runs nothing for them', async () => {
    const gateway = await startTestGateway();
    const secret = new TextEncoder().encode(TEST_JWT.secret);
    const base = { iss: TEST_JWT.issuer, aud: TEST_JWT.audience };
    const keys = await gateway.auth.apiKeys.create('nightly report');
    await gateway.auth.apiKeys.revoke(keys.info.id);
    const now = Math.floor(Date.now() / 1000);

    const cases: Array<[string, string | null, number, string]> = [
      ['no token', null, 4401, 'missing'],
      ['a wrong signature', await sign(base, 'HS256', new TextEncoder().encode('another-secret-another-secret-another')), 4401, 'bad-signature'],
      ['alg none', new UnsecuredJWT({ ...base, sub: 'mallory' }).setExpirationTime('1h').encode(), 4401, 'algorithm-not-allowed'],
      ['an algorithm off the allow-list', await sign(base, 'HS384', secret), 4401, 'algorithm-not-allowed'],
      ['an expired token', await new SignJWT(base).setProtectedHeader({ alg: 'HS256' }).setSubject('u').setExpirationTime(now - 60).sign(secret), 4440, 'expired'],
      ['a token not valid yet', await new SignJWT(base).setProtectedHeader({ alg: 'HS256' }).setSubject('u').setNotBefore(now + 600).setExpirationTime(now + 3600).sign(secret), 4401, 'not-yet-valid'],
      ['a wrong issuer', await sign({ ...base, iss: 'https://evil.test' }, 'HS256', secret), 4401, 'wrong-issuer'],
      ['a wrong audience', await sign({ ...base, aud: 'someone-else' }, 'HS256', secret), 4401, 'wrong-audience'],
      ['a revoked API key', keys.key, 4401, 'revoked-api-key'],
      ['garbage', 'not-a-token', 4401, 'malformed'],
    ];
    const db = await openDb(gateway.database);
    for (const [what, token, code, reason] of cases) {
      const ws = await viewerOverWebSocket(gateway.wsUrl, token);
      expect(ws.viewer, what).toBeUndefined();
      expect(ws.closed, what).toMatchObject({ code, reason: expect.stringMatching(new RegExp(`^${reason}: `)) });

      const task = newTask();
      const http = await graphqlHttp(gateway.httpUrl, `mutation { insertTask(input: {id: "${task.id}", ownerId: "x", title: "t", status: TODO, priority: 1, tags: []}) { id } }`, {}, token);
      expect(http.data, what).toBeUndefined();
      expect(http.errors?.[0]?.extensions, what).toEqual({ code: 'UNAUTHENTICATED', reason });
      expect(await db.collection('tasks').countDocuments({ _id: task.id as never }), what).toBe(0);
    }
  });

  it('ends a session when its token expires; the SDK refreshes it and resumes without losing writes', async () => {
    const gateway = await startTestGateway();
    const auth = new TributaryAuth(gateway.httpUrl);
    const user = await auth.logIn(Credentials.jwt(await testToken('user-exp', {}, '3s')));
    let refreshed = 0;
    const closes: number[] = [];
    const client = await openTestClient(gateway.wsUrl, {
      connectionParams: undefined,
      user,
      refreshToken: async () => {
        refreshed++;
        return testToken('user-exp', {}, '1h');
      },
      onClosed: (code) => closes.push(code),
    });
    await waitFor('connected', () => client.connectionState === 'connected');
    const before = newTask({ title: 'before expiry' });
    await client.collections.tasks!.insert(before);

    await waitFor('the gateway ended the session', () => closes.includes(4440), 10_000);
    const during = Array.from({ length: 5 }, (_, i) => newTask({ title: `while reconnecting ${i}` }));
    await client.collections.tasks!.bulkInsert(during);

    await waitFor('reconnected with a fresh token', () => refreshed === 1 && client.connectionState === 'connected');
    const db = await openDb(gateway.database);
    await waitFor('every write reached MongoDB', async () => (await db.collection('tasks').countDocuments()) === 6);
    expect(await client.collections.tasks!.count().exec()).toBe(6);
  });

  it('logs in anonymously end to end, and a server script with an API key', async () => {
    const gateway = await startTestGateway({
      auth: { jwt: TEST_JWT, anonymous: { enabled: true }, customData: { collection: 'userData', userIdField: 'userId' } },
    });
    const auth = new TributaryAuth(gateway.httpUrl);
    const anonymous = await auth.logIn(Credentials.anonymous());
    expect(anonymous).toMatchObject({ provider: 'anonymous', id: expect.stringMatching(/^anon-/) });
    const closes: number[] = [];
    const client = await openTestClient(gateway.wsUrl, { connectionParams: undefined, user: anonymous, onClosed: (code) => closes.push(code) });
    const task = newTask({ ownerId: anonymous.id });
    await client.collections.tasks!.insert(task);
    const db = await openDb(gateway.database);
    await waitFor('the anonymous user’s write is stored', async () => (await db.collection('tasks').countDocuments({ _id: task.id as never })) === 1);
    // Its token lives 30 days, longer than a timer can wait: the session must stay open.
    await new Promise((r) => setTimeout(r, 300));
    expect(closes).toEqual([]);
    expect(client.connectionState).toBe('connected');

    // a server-side service: an API key as a bearer token, and its custom user data
    const { key, info } = await gateway.auth.apiKeys.create('importer', 'service:importer');
    await db.collection('userData').insertOne({ userId: 'service:importer', team: 'ops' });
    const script = await graphqlHttp(gateway.httpUrl, '{ viewer { id provider customData } }', {}, key);
    expect(script.data).toEqual({ viewer: { id: 'service:importer', provider: 'api-key', customData: { userId: 'service:importer', team: 'ops' } } });
    const inserted = await graphqlHttp(gateway.httpUrl, 'mutation { insertTask(input: {id: "from-script", ownerId: "ops", title: "imported", status: TODO, priority: 2, tags: []}) { id } }', {}, key);
    expect(inserted.data).toEqual({ insertTask: { id: 'from-script' } });
    expect(info.id).toMatch(/^[0-9a-f]{16}$/);

    await expect(auth.logIn(Credentials.jwt('not-a-token'))).rejects.toMatchObject({ reason: 'malformed' });
  });

  it('keeps each user’s data in its own local database on one device', async () => {
    const gateway = await startTestGateway();
    const auth = new TributaryAuth(gateway.httpUrl);
    const ann = await auth.logIn(Credentials.jwt(await testToken('ann')));
    const bob = await auth.logIn(Credentials.jwt(await testToken('bob')));
    const annClient = await openTestClient(gateway.wsUrl, { databaseName: 'shared-device', connectionParams: undefined, user: ann });
    await annClient.pause();
    await annClient.collections.tasks!.insert(newTask({ id: 'ann-local-draft' }));
    const bobClient = await openTestClient(gateway.wsUrl, { databaseName: 'shared-device', connectionParams: undefined, user: bob });
    expect(annClient.databaseName).toBe('shared-device-ann');
    expect(bobClient.databaseName).toBe('shared-device-bob');
    expect(await bobClient.collections.tasks!.findOne('ann-local-draft').exec()).toBeNull();
    expect(await annClient.collections.tasks!.findOne('ann-local-draft').exec()).not.toBeNull();
  });

  it('accepts unsigned dev tokens only when asked, and never with NODE_ENV=production', async () => {
    const devToken = new UnsecuredJWT({}).setSubject('dev-user').setExpirationTime('1h').encode();
    const dev = await startTestGateway({ auth: { devTokens: true } });
    expect((await graphqlHttp(dev.httpUrl, '{ viewer { id provider } }', {}, devToken)).data).toEqual({ viewer: { id: 'dev-user', provider: 'dev' } });

    const previous = process.env.NODE_ENV;
    process.env.NODE_ENV = 'production';
    try {
      await expect(startTestGateway({ auth: { devTokens: true } })).rejects.toThrow('dev tokens (TRIBUTARY_DEV_TOKENS) cannot be enabled when NODE_ENV=production');
    } finally {
      process.env.NODE_ENV = previous;
    }
  });
});

describe('API key CLI', () => {
  it('creates, lists and revokes keys for a gateway’s database', async () => {
    const { spawnSync } = await import('node:child_process');
    const { resolve } = await import('node:path');
    const { mongoUri } = await import('./helpers/harness.ts');
    const gateway = await startTestGateway();
    const cli = (...args: string[]) =>
      spawnSync(process.execPath, ['--import', 'tsx', 'scripts/api-key.ts', ...args], {
        cwd: resolve(import.meta.dirname, '..'),
        env: { ...process.env, MONGODB_URI: mongoUri(), TRIBUTARY_DATABASE: gateway.database },
        encoding: 'utf8',
      });

    const created = cli('create', '--name', 'backup job', '--user', 'service:backup');
    expect(created.status).toBe(0);
    const key = /trb_[0-9a-f]{16}_[A-Za-z0-9_-]{43}/.exec(created.stdout)![0];
    const id = key.slice(4, 20);
    expect((await graphqlHttp(gateway.httpUrl, '{ viewer { id } }', {}, key)).data).toEqual({ viewer: { id: 'service:backup' } });
    expect(cli('list').stdout).toContain(`${id}  backup job  user=service:backup`);

    expect(cli('revoke', id).stdout.trim()).toBe(`revoked ${id}`);
    expect((await graphqlHttp(gateway.httpUrl, '{ viewer { id } }', {}, key)).errors?.[0]?.extensions).toEqual({ code: 'UNAUTHENTICATED', reason: 'revoked-api-key' });
    expect(cli('list').stdout).toContain('REVOKED');
  });
});
