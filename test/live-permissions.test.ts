// Issue 5, case 6: changing a rule or a user's custom_data updates open sessions' views live,
// without a client reset and without dropping the connection.
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Gateway } from '../gateway/server.ts';
import { cleanup, newTask, openDb, openTestClient, rulesFixture, startTestGateway, TEST_JWT, testToken, waitFor } from './helpers/harness.ts';

const folders: string[] = [];
afterEach(async () => {
  await cleanup();
  folders.splice(0).forEach((f) => rmSync(f, { recursive: true, force: true }));
});

async function seed(gateway: Gateway, collection: string, docs: Array<Record<string, unknown>>): Promise<void> {
  const result = await gateway.collections.get(collection)!.writer.push(docs.map((d) => ({ assumedMasterState: null, newDocumentState: { ...d, _deleted: false } })));
  expect(result.rejected).toEqual([]);
}

async function watchingClient(gateway: Gateway, user: string, collection: string) {
  const closes: number[] = [];
  const client = await openTestClient(gateway.wsUrl, { connectionParams: { authToken: await testToken(user) }, flexibleSync: true, onClosed: (code) => closes.push(code) });
  await client.subscriptions.update((m) => m.add(collection, 'TRUEPREDICATE'));
  const ids = async () => (await client.collections[collection]!.find().exec()).map((d) => d.id).sort();
  return { client, closes, ids };
}

describe('live permission changes', () => {
  it('follows a user’s custom_data: joining a team brings its projects, leaving removes them', async () => {
    const gateway = await startTestGateway({
      rulesPath: resolve(import.meta.dirname, '../rules'),
      auth: { jwt: TEST_JWT, customData: { collection: 'userData', userIdField: 'userId' } },
      customDataPollMs: 100,
    });
    const project = (id: string, ownerId: string, teamId: string | null) => ({ id, ownerId, teamId, name: id, archived: false, createdAt: '2026-01-01T00:00:00.000Z' });
    await seed(gateway, 'projects', [project('p-mine', 'ann', null), project('p-team', 'carl', 'team-a')]);
    const { closes, ids } = await watchingClient(gateway, 'ann', 'projects');
    expect(await ids()).toEqual(['p-mine']);

    const db = await openDb(gateway.database);
    await db.collection('userData').insertOne({ userId: 'ann', teamId: 'team-a' });
    await waitFor('the team’s project arrives', async () => (await ids()).includes('p-team'));
    await db.collection('userData').updateOne({ userId: 'ann' }, { $set: { teamId: 'team-b' } });
    await waitFor('it is removed again', async () => !(await ids()).includes('p-team'));
    expect(await ids()).toEqual(['p-mine']);
    expect(closes).toEqual([]); // no reconnect, no client reset
    expect(await db.collection('projects').countDocuments()).toBe(2); // nothing deleted on the server
  });

  it('follows the rules folder: an edit takes effect in open sessions; a broken edit is refused', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'tributary-rules-'));
    folders.push(folder);
    copyFileSync(join(rulesFixture('owner-only'), 'tasks.json'), join(folder, 'tasks.json'));
    const gateway = await startTestGateway({ rulesPath: folder, watchRules: true });
    await seed(gateway, 'tasks', [newTask({ id: 'ann-1', ownerId: 'ann' }), newTask({ id: 'bob-1', ownerId: 'bob' })]);
    const { closes, ids } = await watchingClient(gateway, 'ann', 'tasks');
    expect(await ids()).toEqual(['ann-1']);

    copyFileSync(join(rulesFixture('public-read'), 'tasks.json'), join(folder, 'tasks.json'));
    await waitFor('bob’s task becomes visible live', async () => (await ids()).includes('bob-1'));

    writeFileSync(join(folder, 'tasks.json'), '{ "roles": [ { "name": 42 } ] }');
    await new Promise((r) => setTimeout(r, 500));
    expect(await ids()).toEqual(['ann-1', 'bob-1']); // the previous rules stay in force

    copyFileSync(join(rulesFixture('owner-only'), 'tasks.json'), join(folder, 'tasks.json'));
    await gateway.reloadRules(); // what SIGHUP does in production
    await waitFor('bob’s task is removed live', async () => !(await ids()).includes('bob-1'));
    expect(closes).toEqual([]);
  });
});
