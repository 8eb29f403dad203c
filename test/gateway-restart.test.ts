// Issue 2, case 3: the gateway process is killed (SIGKILL) and restarted mid-session. Clients
// reconnect by themselves and resume from their checkpoint, downloading only what changed.
import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../gateway/store/embedded-ferretdb.ts';
import { syncOperations } from '../protocol/operations.ts';
import { loadModel } from '../protocol/model.ts';
import { cleanup, graphqlHttp, mongoUri, newTask, openDb, openTestClient, SCHEMA, uniqueName, rulesFixture, TEST_JWT, waitFor } from './helpers/harness.ts';

const ROOT = resolve(import.meta.dirname, '..');
const children: ChildProcess[] = [];
afterEach(async () => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
  await cleanup();
});

async function startGatewayProcess(port: number, database: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'gateway/main.ts'], {
    cwd: ROOT,
    env: { ...process.env, MONGODB_URI: mongoUri(), TRIBUTARY_DATABASE: database, PORT: String(port), LOG_LEVEL: 'warn', TRIBUTARY_JWT_SECRET: TEST_JWT.secret, TRIBUTARY_JWT_ISSUER: TEST_JWT.issuer, TRIBUTARY_JWT_AUDIENCE: TEST_JWT.audience, TRIBUTARY_RULES: rulesFixture('open') },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  children.push(child);
  await waitFor('gateway process ready', async () => (await fetch(`http://127.0.0.1:${port}/ready`)).ok, 30_000);
  return child;
}

describe('gateway restart', () => {
  it('clients reconnect after kill -9 and resume from their checkpoint', async () => {
    const port = await freePort();
    const database = uniqueName('restart');
    const httpUrl = `http://127.0.0.1:${port}/graphql`;
    const push = syncOperations(loadModel(SCHEMA).collections.find((c) => c.name === 'tasks')!).push;
    const serverWrite = (docs: Array<Record<string, unknown>>) =>
      graphqlHttp(httpUrl, push, { rows: docs.map((d) => ({ assumedMasterState: null, newDocumentState: { ...d, _deleted: false } })) });

    let gateway = await startGatewayProcess(port, database);
    const client = await openTestClient(`ws://127.0.0.1:${port}/graphql`);
    const states: string[] = [];
    client.connection$.subscribe((s) => states.push(s));

    await serverWrite(Array.from({ length: 200 }, (_, i) => newTask({ title: `seed ${i}` })));
    await waitFor('client holds the 200 seeded tasks', async () => (await client.collections.tasks!.count().exec()) === 200);
    const downloadedBefore = client.counters.downloaded.tasks!;
    expect(downloadedBefore).toBeGreaterThanOrEqual(200);

    gateway.kill('SIGKILL');
    await waitFor('client notices the gateway is gone', () => client.connectionState !== 'connected');
    const offline = Array.from({ length: 3 }, (_, i) => newTask({ title: `written while the gateway was down ${i}` }));
    await client.collections.tasks!.bulkInsert(offline);

    gateway = await startGatewayProcess(port, database);
    const changedOnServer = Array.from({ length: 4 }, (_, i) => newTask({ title: `written after restart ${i}` }));
    await serverWrite(changedOnServer);

    await waitFor('client reconnected by itself', () => client.connectionState === 'connected');
    await waitFor('client has the 4 server-side changes', async () => (await client.collections.tasks!.count().exec()) === 207);
    const db = await openDb(database);
    await waitFor('the 3 offline writes reached MongoDB', async () => (await db.collection('tasks').countDocuments()) === 207);
    await client.waitForSync();

    // What changed since the checkpoint: 4 server writes, plus the client's own 3 coming back
    // with the server's state. A resync pull and the live stream can both carry a change that
    // commits while the client resubscribes, so each may arrive at most twice; the 200 the
    // client already held must not come again.
    const downloadedAfterRestart = client.counters.downloaded.tasks! - downloadedBefore;
    expect(downloadedAfterRestart).toBeGreaterThanOrEqual(4);
    expect(downloadedAfterRestart).toBeLessThanOrEqual(2 * 7);
    expect(states).toContain('connecting');
    expect(states.at(-1)).toBe('connected');
  });
});
