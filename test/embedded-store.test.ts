// `npm start` without MONGODB_URI: the gateway brings up the embedded FerretDB, stops it on
// exit, and the data survives a restart.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../gateway/store/embedded-ferretdb.ts';
import { graphqlHttp, rulesFixture, TEST_JWT, waitFor } from './helpers/harness.ts';

const ROOT = resolve(import.meta.dirname, '..');
const dataDirs: string[] = [];
afterEach(() => dataDirs.splice(0).forEach((dir) => rmSync(dir, { recursive: true, force: true })));

async function startWithEmbeddedStore(port: number, dataDir: string): Promise<ChildProcess> {
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port), TRIBUTARY_DATA_DIR: dataDir, LOG_LEVEL: 'warn', TRIBUTARY_JWT_SECRET: TEST_JWT.secret, TRIBUTARY_JWT_ISSUER: TEST_JWT.issuer, TRIBUTARY_JWT_AUDIENCE: TEST_JWT.audience, TRIBUTARY_RULES: rulesFixture('open') };
  delete env.MONGODB_URI;
  const child = spawn(process.execPath, ['--import', 'tsx', 'gateway/main.ts'], { cwd: ROOT, env, stdio: 'inherit' });
  await waitFor('gateway with embedded store ready', async () => (await fetch(`http://127.0.0.1:${port}/ready`)).ok, 60_000);
  return child;
}

function ferretDbRunningOn(dataDir: string): Promise<boolean> {
  return new Promise((r) => {
    const pgrep = spawn('pgrep', ['-f', `ferretdb.*${dataDir}`]);
    pgrep.on('exit', (code) => r(code === 0));
  });
}

describe('embedded store', () => {
  it('starts FerretDB when MONGODB_URI is unset, stops it on exit, and keeps the data', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tributary-embedded-'));
    dataDirs.push(dataDir);
    const port = await freePort();
    const url = `http://127.0.0.1:${port}/graphql`;

    let gateway = await startWithEmbeddedStore(port, dataDir);
    expect(await ferretDbRunningOn(dataDir)).toBe(true);
    const inserted = await graphqlHttp(url, 'mutation { insertTask(input: {id: "kept", ownerId: "u", title: "survives restarts", status: TODO, priority: 1, tags: []}) { id } }');
    expect(inserted.errors).toBeUndefined();

    const exited = new Promise((r) => gateway.once('exit', r));
    gateway.kill('SIGTERM');
    await exited;
    expect(await ferretDbRunningOn(dataDir)).toBe(false);

    gateway = await startWithEmbeddedStore(port, dataDir);
    try {
      const read = await graphqlHttp(url, '{ task(id: "kept") { title } }');
      expect(read.data).toEqual({ task: { title: 'survives restarts' } });
    } finally {
      const stopped = new Promise((r) => gateway.once('exit', r));
      gateway.kill('SIGTERM');
      await stopped;
    }
  });
});
