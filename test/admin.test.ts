// /admin and its JSON API: admins only (an API key created with the admin flag, or a custom JWT
// with TRIBUTARY_ADMIN_CLAIM), everyone else gets 401 or 403 and no data. An admin sees real SDK
// clients, their Flexible Sync subscriptions, document counts, refused writes with their
// reasons, the rules and their last reload, and manages API keys. The page itself is driven in
// real Chromium.
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { configFromEnv } from '../gateway/config.ts';
import { syncOperations } from '../protocol/operations.ts';
import { launchBrowser, withScreenshots } from './helpers/browser.ts';
import { cleanup, graphqlHttp, newTask, openTestClient, rulesFixture, startTestGateway, testToken, waitFor } from './helpers/harness.ts';

afterEach(cleanup);

type Gateway = Awaited<ReturnType<typeof startTestGateway>>;

const ADMIN_CLAIM = { name: 'role', value: 'admin' };

function origin(gateway: Gateway): string {
  return new URL(gateway.httpUrl).origin;
}

async function adminApi(gateway: Gateway, path: string, token: string | null, init: RequestInit = {}): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = { ...(init.headers as Record<string, string>) };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  const response = await fetch(`${origin(gateway)}/admin/api${path}`, { ...init, headers });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

const post = (body: unknown): RequestInit => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

/** Every admin API, with a request that would change something for the two that do. */
const ROUTES: Array<[string, RequestInit]> = [
  ['/me', {}],
  ['/sessions', {}],
  ['/collections', {}],
  ['/writes', {}],
  ['/rules', {}],
  ['/keys', {}],
  ['/keys', post({ name: 'sneaky', admin: true })],
  ['/keys/0123456789abcdef', { method: 'DELETE' }],
  ['/nothing-here', {}],
];

describe('admin configuration', () => {
  it('reads TRIBUTARY_ADMIN_CLAIM as <claim>:<value> and TRIBUTARY_METRICS_TOKEN as it is', () => {
    expect(configFromEnv({ TRIBUTARY_ADMIN_CLAIM: 'role:admin', TRIBUTARY_METRICS_TOKEN: 's3cret' })).toMatchObject({ adminClaim: { name: 'role', value: 'admin' }, metricsToken: 's3cret' });
    // Claim names are often URLs: the last colon separates.
    expect(configFromEnv({ TRIBUTARY_ADMIN_CLAIM: 'https://example.com/roles:admin' }).adminClaim).toEqual({ name: 'https://example.com/roles', value: 'admin' });
    expect(configFromEnv({})).toMatchObject({ adminClaim: null, metricsToken: null });
    for (const bad of ['role', ':admin', 'role:', ' : ']) expect(() => configFromEnv({ TRIBUTARY_ADMIN_CLAIM: bad })).toThrow(/TRIBUTARY_ADMIN_CLAIM must be <claim>:<value>/);
  });
});

describe('admin API', () => {
  it('answers 401 without valid credentials and 403 to every non-admin, and changes nothing for them', async () => {
    const gateway = await startTestGateway({ adminClaim: ADMIN_CLAIM });
    const plainKey = (await gateway.auth.apiKeys.create('plain', 'service:plain')).key;
    const anonymous = ((await (await fetch(`${origin(gateway)}/auth/anonymous`, { method: 'POST' })).json()) as { token: string }).token;
    const outsiders: Array<[string, string | null, number]> = [
      ['no token', null, 401],
      ['a malformed token', 'garbage', 401],
      ['an expired admin JWT', await testToken('eve', { role: 'admin' }, -60), 401],
      ['a user JWT', await testToken('user-1'), 403],
      ['a JWT with another role', await testToken('user-1', { role: 'editor' }), 403],
      ['a JWT claiming admin under another claim', await testToken('user-1', { admin: true, roles: ['admin'] }), 403],
      ['an API key without the admin flag', plainKey, 403],
      ['an anonymous user', anonymous, 403],
    ];
    for (const [who, token, status] of outsiders) {
      for (const [path, init] of ROUTES) {
        const { status: got, body } = await adminApi(gateway, path, token, init);
        expect({ who, path, method: init.method ?? 'GET', status: got }).toEqual({ who, path, method: init.method ?? 'GET', status });
        expect(Object.keys(body)).toEqual(status === 401 ? ['error', 'reason'] : ['error']);
      }
    }
    // A header that is not "Bearer <token>" is malformed, as on /graphql (one parser for both).
    const basic = await fetch(`${origin(gateway)}/admin/api/me`, { headers: { authorization: `Basic ${plainKey}` } });
    expect({ status: basic.status, reason: ((await basic.json()) as { reason: string }).reason }).toEqual({ status: 401, reason: 'malformed' });
    // Nothing was created or revoked.
    expect((await gateway.auth.apiKeys.list()).map((k) => k.name)).toEqual(['plain']);

    // Without TRIBUTARY_ADMIN_CLAIM, no JWT is an admin, whatever it claims.
    const noClaim = await startTestGateway();
    expect((await adminApi(noClaim, '/me', await testToken('user-1', { role: 'admin' }))).status).toBe(403);
  });

  it('shows an admin the connected SDK clients, their subscriptions, document counts and refused writes with reasons', async () => {
    const gateway = await startTestGateway({ adminClaim: ADMIN_CLAIM, rulesPath: rulesFixture('owner-only') });
    const adminKey = (await gateway.auth.apiKeys.create('ops', undefined, { admin: true })).key;
    const ops = syncOperations(gateway.model.collections.find((c) => c.name === 'tasks')!);
    const aliceToken = await testToken('alice');
    const seeded = [newTask({ ownerId: 'alice', status: 'TODO' }), newTask({ ownerId: 'alice', status: 'TODO' }), newTask({ ownerId: 'alice', status: 'DONE' })];
    await graphqlHttp(gateway.httpUrl, ops.push, { rows: seeded.map((t) => ({ assumedMasterState: null, newDocumentState: { ...t, _deleted: false } })) }, aliceToken);

    // Alice's app: Flexible Sync, subscribed to her open tasks.
    const alice = await openTestClient(gateway.wsUrl, { flexibleSync: true, connectionParams: { authToken: aliceToken } });
    await alice.subscriptions.update((subs) => subs.add('tasks', "status == 'TODO'", { name: 'open tasks' }));
    await alice.subscriptions.waitForSynchronization();
    await waitFor('alice holds her open tasks', async () => (await alice.collections.tasks!.find().exec()).length === 2);
    // A write outside her subscription: a compensating write.
    const outside = newTask({ ownerId: 'alice', status: 'DONE', title: '<img src=x onerror=alert(1)>' });
    await alice.collections.tasks!.insert(outside);
    await waitFor('the write was reverted on the device', async () => (await alice.collections.tasks!.findOne(outside.id).exec()) === null);

    // An admin JWT (the claim may also be a list holding the value) and the admin key see the same.
    for (const token of [adminKey, await testToken('root', { role: ['ops', 'admin'] })]) {
      expect((await adminApi(gateway, '/me', token)).status).toBe(200);
      const { body: sessions } = await adminApi(gateway, '/sessions', token);
      expect(sessions.total).toBe(1);
      const session = sessions.sessions.find((s: { userId: string }) => s.userId === 'alice');
      expect(session).toMatchObject({ userId: 'alice', provider: 'jwt' });
      const tasksStream = session.subscriptions.find((s: { collection: string }) => s.collection === 'tasks');
      expect(tasksStream).toMatchObject({ collection: 'tasks', kind: 'sync', state: 'live' });
      expect(tasksStream.queries).toContain('TODO');
      expect(session.bootstraps).toContainEqual(expect.objectContaining({ collection: 'tasks', state: 'complete', documents: 2 }));

      const { body: collections } = await adminApi(gateway, '/collections', token);
      const tasks = collections.collections.find((c: { name: string }) => c.name === 'tasks');
      expect(tasks).toMatchObject({ name: 'tasks', documents: 3, liveStreams: 1, changeFeed: { sequences: 0, seconds: 0 } });

      const { body: writes } = await adminApi(gateway, '/writes', token);
      expect(writes.refused[0]).toMatchObject({
        collection: 'tasks',
        documentId: outside.id,
        code: 'PERMISSION_DENIED',
        reason: 'outside-subscriptions',
        userId: 'alice',
        via: 'push',
      });
      expect(writes.refused[0].message).toContain('outside of the current query view');
    }
  });

  it('shows the rules in force and the last reload, refused or applied', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'tributary-admin-rules-'));
    try {
      cpSync(rulesFixture('owner-only'), folder, { recursive: true });
      const gateway = await startTestGateway({ rulesPath: folder });
      const adminKey = (await gateway.auth.apiKeys.create('ops', undefined, { admin: true })).key;
      let { body: rules } = await adminApi(gateway, '/rules', adminKey);
      expect(rules).toMatchObject({ path: folder, lastReload: null });
      expect(rules.roles.tasks[0]).toMatchObject({ name: 'owner' });

      writeFileSync(join(folder, 'tasks.json'), '{ "roles": [ { "name": "broken", "read": "yes please" } ] }');
      await gateway.reloadRules();
      ({ body: rules } = await adminApi(gateway, '/rules', adminKey));
      expect(rules.lastReload).toMatchObject({ ok: false });
      expect(rules.lastReload.error.length).toBeGreaterThan(0);
      expect(rules.roles.tasks[0]).toMatchObject({ name: 'owner' }); // still in force

      writeFileSync(join(folder, 'tasks.json'), JSON.stringify({ roles: [{ name: 'everyone', apply_when: {}, document_filters: { read: true, write: true }, read: true, write: true, insert: true, delete: true }] }));
      await gateway.reloadRules();
      ({ body: rules } = await adminApi(gateway, '/rules', adminKey));
      expect(rules.lastReload).toMatchObject({ ok: true, error: null });
      expect(rules.roles.tasks[0]).toMatchObject({ name: 'everyone' });
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  });

  it('creates, lists and revokes API keys; a revoked key is refused; hostile input is refused', async () => {
    const gateway = await startTestGateway();
    const adminKey = (await gateway.auth.apiKeys.create('ops', undefined, { admin: true })).key;

    const created = await adminApi(gateway, '/keys', adminKey, post({ name: 'importer', userId: 'service:importer' }));
    expect(created.status).toBe(201);
    expect(created.body.key).toMatch(/^trb_[0-9a-f]{16}_/);
    expect(created.body.info).toMatchObject({ name: 'importer', userId: 'service:importer', admin: false, revokedAt: null });
    const viewer = await graphqlHttp(gateway.httpUrl, '{ viewer { id provider } }', {}, created.body.key);
    expect(viewer.data?.viewer).toEqual({ id: 'service:importer', provider: 'api-key' });
    // Not an admin key: it gets nothing here.
    expect((await adminApi(gateway, '/keys', created.body.key)).status).toBe(403);

    const { body: listed } = await adminApi(gateway, '/keys', adminKey);
    expect(listed.keys.map((k: { name: string }) => k.name)).toEqual(['ops', 'importer']);
    expect(JSON.stringify(listed)).not.toContain(created.body.key.split('_')[2]); // secrets are never listed

    const revoked = await adminApi(gateway, `/keys/${created.body.info.id}`, adminKey, { method: 'DELETE' });
    expect(revoked).toEqual({ status: 200, body: { revoked: created.body.info.id } });
    const refused = await graphqlHttp(gateway.httpUrl, '{ viewer { id } }', {}, created.body.key);
    expect(refused.errors?.[0]?.extensions?.reason).toBe('revoked-api-key');
    expect((await adminApi(gateway, `/keys/${created.body.info.id}`, adminKey, { method: 'DELETE' })).status).toBe(404);
    expect((await adminApi(gateway, '/keys', adminKey)).body.keys[1].revokedAt).not.toBeNull();

    // Hostile or malformed input.
    const bad: Array<[RequestInit, number]> = [
      [post({ name: '' }), 400],
      [post({ name: 'x'.repeat(101) }), 400],
      [post({ name: 'a\u0000b' }), 400],
      [post({ name: 'ok', admin: 'yes' }), 400],
      [post({ name: 'ok', userId: 42 }), 400],
      [post({ name: 'ok', extra: 1 }), 400],
      [post(['name']), 400],
      [{ method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"name":' }, 400],
      [{ method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{"name":"x"}' }, 415],
      [post({ name: 'big', userId: 'u'.repeat(5_000) }), 413],
      [{ method: 'DELETE' }, 404],
    ];
    for (const [init, status] of bad) expect((await adminApi(gateway, '/keys', adminKey, init)).status).toBe(status);
    expect((await adminApi(gateway, '/keys/..%2F..%2Fx', adminKey, { method: 'DELETE' })).status).toBe(400);
    expect((await gateway.auth.apiKeys.list()).map((k) => k.name)).toEqual(['ops', 'importer']);
  });
});

describe('admin page in Chromium', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('logs in with an admin key, shows a connected client and a collection count, creates and revokes a key; a non-admin key sees an error and no data', async () => {
    const gateway = await startTestGateway();
    const adminKey = (await gateway.auth.apiKeys.create('ops', undefined, { admin: true })).key;
    const plainKey = (await gateway.auth.apiKeys.create('plain', 'service:plain')).key;
    const ops = syncOperations(gateway.model.collections.find((c) => c.name === 'tasks')!);
    // A title that would run as HTML if the page used innerHTML.
    const hostile = newTask({ id: 'x<script>window.pwned=1</script>', title: '<img src=x onerror="window.pwned=1">' });
    const row = (task: Record<string, unknown>) => ({ assumedMasterState: null, newDocumentState: { ...task, _deleted: false } });
    await graphqlHttp(gateway.httpUrl, ops.push, { rows: [row(newTask())] });
    // Refused (outside the pusher's subscriptions), so the page lists it among refused writes.
    await graphqlHttp(gateway.httpUrl, ops.push, { rows: [row(hostile)], view: [{ status: 'DONE' }] });
    const client = await openTestClient(gateway.wsUrl, { connectionParams: { authToken: await testToken('carol') } });
    await client.waitForSync();

    const context = await browser.newContext();
    const page = await context.newPage();
    await withScreenshots('admin-page', [page], async () => {
      // A non-admin key: an error, and nothing shown.
      await page.goto(`${origin(gateway)}/admin`);
      await page.fill('#token', plainKey);
      await page.click('#login-form button[type=submit]');
      await page.waitForSelector('#error:has-text("forbidden")');
      expect(await page.isVisible('#dashboard')).toBe(false);
      expect(await page.textContent('#sessions')).toBe('');
      expect(await page.evaluate(() => sessionStorage.length)).toBe(0);

      // The admin key: the connected client, the collection count, the refused write (as text).
      await page.fill('#token', adminKey);
      await page.click('#login-form button[type=submit]');
      await page.waitForSelector('#dashboard:visible');
      await page.waitForSelector('#sessions td:has-text("carol")');
      const tasksRow = page.locator('#collections tr', { hasText: 'tasks' });
      expect(await tasksRow.locator('td').nth(1).textContent()).toBe('1');
      await page.waitForSelector(`#writes td:has-text("${hostile.id}")`);
      expect(await page.evaluate(() => (window as unknown as { pwned?: number }).pwned)).toBeUndefined();

      // Create a key through the form; it works; revoke it through its button; it is refused.
      await page.fill('#key-name', 'from the page');
      await page.fill('#key-user', 'service:page');
      await page.click('#key-form button[type=submit]');
      const shown = (await page.waitForSelector('#new-key:has-text("trb_")')).textContent();
      const key = /trb_[0-9a-f]{16}_[A-Za-z0-9_-]{43}/.exec((await shown) ?? '')![0];
      expect((await graphqlHttp(gateway.httpUrl, '{ viewer { id } }', {}, key)).data?.viewer).toEqual({ id: 'service:page' });
      const id = key.split('_')[1]!;
      await page.click(`#keys button[data-key-id="${id}"]`);
      await page.waitForSelector(`#keys tr:has-text("${id}") >> td:nth-child(6):not(:empty)`);
      expect((await graphqlHttp(gateway.httpUrl, '{ viewer { id } }', {}, key)).errors?.[0]?.extensions?.reason).toBe('revoked-api-key');

      // Logging out forgets the key.
      await page.click('#logout');
      expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
      expect(await page.isVisible('#dashboard')).toBe(false);
    });
    await context.close();
  });
});
