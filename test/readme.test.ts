// Issue 15: every command and code sample in README.md runs here, as written; the test supplies
// only the port, the store's address and what a reader would paste from an earlier step (a key,
// its id). Each fenced block is claimed by exactly one runner below, and a block that no runner
// claims fails: a new sample cannot go into the README untested.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, unlinkSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../gateway/store/embedded-ferretdb.ts';
import { cleanup, mongoUri, openDb, startTestGateway, uniqueName, waitFor } from './helpers/harness.ts';
import { INSTALL_COMMANDS } from './helpers/install-commands.ts';

const ROOT = resolve(import.meta.dirname, '..');
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');

interface Block {
  lang: string;
  text: string;
  line: number;
}

/** The fenced blocks, indented ones (inside list items) included, dedented. */
function fencedBlocks(markdown: string): Block[] {
  const blocks: Block[] = [];
  const fence = /^( *)```(\w*)\n([\s\S]*?)^\1```$/gm;
  for (let m = fence.exec(markdown); m; m = fence.exec(markdown)) {
    const indent = m[1]!.length;
    const text = m[3]!
      .split('\n')
      .map((l) => l.slice(Math.min(indent, l.length - l.trimStart().length)))
      .join('\n');
    blocks.push({ lang: m[2]!, text, line: markdown.slice(0, m.index).split('\n').length });
  }
  return blocks;
}

/** Shell lines as commands: `\`-continued lines joined, comments and blanks dropped. */
function commands(text: string): string[] {
  return text
    .replace(/\\\n\s*/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
}

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 90_000): Promise<Ran> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(command, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolveRun({ code, stdout, stderr });
    });
  });
}

const bash = (script: string, env: NodeJS.ProcessEnv = {}) => run('bash', ['-c', `set -euo pipefail\n${script}`], env);

/**
 * A command that serves until stopped (`npm start`), in its own process group. Stopping sends
 * SIGTERM to the group, as a terminal's Ctrl-C signals every process of the foreground job, and
 * waits until every process of it has exited.
 */
async function serving(command: string, env: NodeJS.ProcessEnv, port: number): Promise<{ stop: () => Promise<void>; output: () => string }> {
  const child = spawn('bash', ['-c', command], { cwd: ROOT, env: { ...process.env, LOG_LEVEL: 'warn', ...env, PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const stop = async () => {
    try {
      process.kill(-child.pid!, 'SIGTERM');
    } catch {
      return; // the group is gone
    }
    await waitFor(`"${command}" stops`, async () => (await bash(`pgrep -g ${child.pid} || true`)).stdout.trim() === '', 30_000);
  };
  try {
    await waitFor(`"${command}" answers /ready`, async () => child.exitCode === null && (await fetch(`http://127.0.0.1:${port}/ready`).then((r) => r.ok, () => false)), 90_000);
  } catch (error) {
    await stop();
    throw new Error(`${(error as Error).message}\n${output}`);
  }
  return { stop, output: () => output };
}

/** Runs a TypeScript sample as a program from the repository root (its imports are relative to it). */
async function runSample(source: string): Promise<Ran> {
  const file = join(ROOT, `readme-sample-${process.pid}-${Math.random().toString(36).slice(2)}.mts`);
  writeFileSync(file, source);
  try {
    return await run(process.execPath, ['--import', 'tsx', file]);
  } finally {
    unlinkSync(file);
  }
}

let gateway: Awaited<ReturnType<typeof startTestGateway>>;
/** The README's gateway address, pointed at this test's gateway. */
const onGateway = (text: string) => text.replaceAll('localhost:4000', `localhost:${gateway.port}`).replaceAll('127.0.0.1:4000', `127.0.0.1:${gateway.port}`);

/** What the samples that continue an earlier one take as given ("as above"). */
const preamble = () => `
import { readFileSync } from 'node:fs';
import { WebSocket } from 'ws';
import { getRxStorageMemory } from 'rxdb/plugins/storage-memory';
import { Credentials, TributaryAuth, openTributary } from './client-sdk/index.ts';
const url = 'ws://127.0.0.1:${gateway.port}/graphql';
const schema = readFileSync('schema.graphql', 'utf8');
const storage = getRxStorageMemory();
const user = await new TributaryAuth('http://127.0.0.1:${gateway.port}/graphql').logIn(Credentials.anonymous());
`;

const expectSuccess = (ran: Ran, what: string) => expect(ran.code, `${what}\nstdout: ${ran.stdout}\nstderr: ${ran.stderr}`).toBe(0);

interface Runner {
  name: string;
  claims: (block: Block) => boolean;
  run: (block: Block) => Promise<void>;
}

const runners: Runner[] = [
  {
    name: 'quick start: npm start on the embedded store (npm ci and npm test are what CI ran to get here)',
    claims: (b) => b.lang === 'sh' && b.text.includes('npm ci && npm start'),
    run: async (b) => {
      expect(commands(b.text).map((c) => c.replace(/\s+#.*$/, ''))).toEqual(['npm ci && npm start', 'npm test']);
      const dataDir = mkdtempSync(join(tmpdir(), 'readme-start-'));
      try {
        const env: NodeJS.ProcessEnv = { TRIBUTARY_DATA_DIR: dataDir, MONGODB_URI: '' };
        const started = await serving('npm start', env, await freePort());
        expect(await bash(`pgrep -f "[f]erretdb.*${dataDir}"`).then((r) => r.stdout.trim()), 'the embedded FerretDB runs').not.toBe('');
        await started.stop();
        const left = await bash(`pgrep -f "[f]erretdb.*${dataDir}" || true`);
        expect(left.stdout.trim(), 'the embedded FerretDB stops with the gateway').toBe('');
      } finally {
        rmSync(dataDir, { recursive: true, force: true });
      }
    },
  },
  {
    name: 'a gateway trusting your identity provider’s JWTs',
    claims: (b) => b.lang === 'sh' && b.text.includes('TRIBUTARY_JWT_SECRET='),
    run: async (b) => {
      const [command] = commands(b.text);
      const setting = (name: string) => new RegExp(`${name}=(\\S+)`).exec(command!)![1]!;
      const port = await freePort();
      const started = await serving(command!, { MONGODB_URI: mongoUri(), TRIBUTARY_DATABASE: uniqueName('readme_jwt') }, port);
      try {
        const token = await new SignJWT({})
          .setProtectedHeader({ alg: 'HS256' })
          .setSubject('reader')
          .setIssuer(setting('TRIBUTARY_JWT_ISSUER'))
          .setAudience(setting('TRIBUTARY_JWT_AUDIENCE'))
          .setExpirationTime('1h')
          .sign(new TextEncoder().encode(setting('TRIBUTARY_JWT_SECRET')));
        const response = await fetch(`http://127.0.0.1:${port}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ query: '{ viewer { id provider } }' }) });
        expect(await response.json()).toEqual({ data: { viewer: { id: 'reader', provider: 'jwt' } } });
      } finally {
        await started.stop();
      }
    },
  },
  {
    name: 'API keys: create, list, use, revoke',
    claims: (b) => b.lang === 'sh' && b.text.includes('api-key -- create'),
    run: async (b) => {
      const env = { TRIBUTARY_DATABASE: gateway.database };
      const withStore = (c: string) => c.replace(/MONGODB_URI=\S+/, `MONGODB_URI=${mongoUri()}`);
      let key = '';
      let id = '';
      let used = '';
      for (const command of commands(b.text)) {
        const line = onGateway(withStore(command)).replaceAll('trb_...', key).replaceAll('<id>', id);
        const ran = await bash(line, env);
        expectSuccess(ran, line);
        if (command.includes('api-key -- create')) {
          const created = /created API key (\S+) for user service:importer:\n(trb_\S+)/.exec(ran.stdout);
          id = created?.[1] ?? '';
          key = created?.[2] ?? '';
          expect(key, ran.stdout).toMatch(/^trb_/);
        } else if (command.includes('api-key -- list')) {
          expect(ran.stdout).toContain(`${id}  importer  user=service:importer`);
        } else if (command.startsWith('curl')) {
          expect(JSON.parse(ran.stdout)).toEqual({ data: { viewer: { id: 'service:importer', provider: 'api-key' } } });
          used = line;
        } else if (command.includes('api-key -- revoke')) {
          expect(ran.stdout).toContain(`revoked ${id}`);
        }
      }
      // Revoked: the same request is refused.
      expect(used, 'the block uses the key').not.toBe('');
      expect(JSON.parse((await bash(used, env)).stdout).errors[0].extensions.code).toBe('UNAUTHENTICATED');
    },
  },
  {
    name: 'the authentication client',
    claims: (b) => b.lang === 'ts' && b.text.includes('new TributaryAuth(') && !b.text.includes('openTributary({'),
    run: async (b) => expectSuccess(await runSample(`${onGateway(b.text)}\nconsole.log(typeof auth.logIn);\n`), b.text),
  },
  {
    name: 'the Client SDK program',
    claims: (b) => b.lang === 'ts' && b.text.includes("storage: getRxStorageMemory()"),
    run: async (b) => {
      const ran = await runSample(onGateway(b.text));
      expectSuccess(ran, b.text);
      expect(ran.stdout).toContain('sync: connected');
      expect(ran.stderr).not.toContain('sync error');
      const db = await openDb(gateway.database);
      const stored = await db.collection('tasks').findOne({ _id: 'task-1' as never });
      expect(stored).toMatchObject({ title: 'Try Tributary', status: 'TODO', tags: ['demo'] });
      expect(String(stored!.ownerId)).toMatch(/^anon-/);
    },
  },
  {
    name: 'client reset options',
    claims: (b) => b.lang === 'ts' && b.text.includes('clientReset: {'),
    run: async (b) => {
      const sample = b.text.replace('openTributary({', 'const client = await openTributary({').replace('/* … */', 'url, schema, storage, user, webSocketImpl: WebSocket,');
      expectSuccess(await runSample(`${preamble()}\n${sample}\nawait client.waitForSync();\nawait client.close();\n`), b.text);
    },
  },
  {
    name: 'Flexible Sync subscriptions',
    claims: (b) => b.lang === 'ts' && b.text.includes('flexibleSync: {'),
    run: async (b) => {
      const ran = await runSample(`${preamble()}\n${b.text}\nconsole.log('final', client.subscriptions.state);\nawait client.close();\n`);
      expectSuccess(ran, b.text);
      expect(ran.stdout).toContain('final complete');
    },
  },
  {
    name: 'install as a package: run by test/package.test.ts, in an app that installed the packed tarball',
    claims: (b) => b.lang === 'sh' && b.text.includes('npx tributary start'),
    // Packing and installing take a minute: that file runs these lines; here, that they are its lines.
    run: async (b) => expect(commands(b.text).map((c) => c.replace(/\s+#.*$/, ''))).toEqual(Object.values(INSTALL_COMMANDS)),
  },
  {
    name: 'the Prometheus scrape config',
    claims: (b) => b.lang === 'yaml' && b.text.includes('scrape_configs:'),
    run: async (b) => {
      const setting = (name: string) => new RegExp(`${name}: *(\\S+)`).exec(b.text)?.[1];
      const token = setting('credentials')!;
      const target = /targets: *\['([^']+)'\]/.exec(b.text)![1]!;
      const metricsGateway = await startTestGateway({ metricsToken: token });
      const url = `http://${target.replace(':4000', `:${metricsGateway.port}`)}${setting('metrics_path')}`;
      const scraped = await fetch(url, { headers: { authorization: `${setting('type')} ${token}` } });
      expect(scraped.status).toBe(200);
      expect(await scraped.text()).toContain('tributary_connections');
      expect((await fetch(url)).status, 'without the token').toBe(401);
    },
  },
  {
    name: 'plain GraphQL with curl',
    claims: (b) => b.lang === 'sh' && b.text.includes('/auth/anonymous'),
    run: async (b) => {
      const ran = await bash(onGateway(b.text));
      expectSuccess(ran, b.text);
      expect(JSON.parse(ran.stdout)).toEqual({ data: { insertTask: { id: 't2', title: 'From curl' } } });
    },
  },
];

/**
 * Commands the README names inline (in backticks): each one is run here, or by the test file
 * named, or is a tool that is not an app's command (a benchmark, the tests themselves). A new
 * inline command fails until it is added here.
 */
const INLINE: Record<string, { runBy: string } | { run: () => Promise<void> } | { tool: string }> = {
  'npm start': { runBy: 'the quick start block, above' },
  'npm test': { tool: 'the test suite: this run' },
  'npm run test:convergence': { tool: 'the convergence test with 2,000 cases (npm test runs 300)' },
  'npm run bench': { tool: 'the benchmarks (bench/README.md)' },
  'npx tsx demo/screenshot.ts': { tool: 'remakes docs/demo.png' },
  'npx tsx your-file.ts': { runBy: 'the Client SDK program, above (run with tsx)' },
  'npm pack': { runBy: 'test/package.test.ts' },
  'npx tributary api-key create --name importer': { runBy: 'test/package.test.ts' },
  'node_modules/.bin/tributary start': { runBy: 'test/package.test.ts' },
  'tributary start': { runBy: 'test/package.test.ts' },
  'tributary api-key': { runBy: 'test/package.test.ts' },
  'npm run api-key -- create --name importer': { runBy: 'the API keys block, above' },
  'npm run import-realm': { runBy: 'test/import-realm.test.ts' },
  'npm run reset-clients': { runBy: 'test/package.test.ts (tributary reset-clients: the same function)' },
  'npm run api-key -- create --name ops --admin': {
    run: async () => {
      const ran = await bash('npm run --silent api-key -- create --name ops --admin', { MONGODB_URI: mongoUri(), TRIBUTARY_DATABASE: gateway.database });
      expectSuccess(ran, 'api-key --admin');
      const key = /\n(trb_\S+)/.exec(ran.stdout)![1]!;
      const me = await fetch(`${gateway.httpUrl.replace(/\/graphql$/, '')}/admin/api/me`, { headers: { authorization: `Bearer ${key}` } });
      expect(me.status, 'an admin key opens the admin API').toBe(200);
    },
  },
  'npm run demo': {
    run: async () => {
      const dataDir = mkdtempSync(join(tmpdir(), 'readme-demo-'));
      try {
        const demoPort = await freePort();
        const demo = await serving('npm run demo', { TRIBUTARY_DATA_DIR: dataDir, MONGODB_URI: '', DEMO_PORT: String(demoPort) }, await freePort());
        try {
          await waitFor('the demo page', async () => (await fetch(`http://127.0.0.1:${demoPort}/`).then((r) => (r.ok ? r.text() : ''), () => '')) || null);
          expect(demo.output()).toContain(`open http://`);
        } finally {
          await demo.stop();
        }
        expect((await bash(`pgrep -f "[f]erretdb.*${dataDir}" || true`)).stdout.trim(), 'the embedded FerretDB stops with the demo').toBe('');
      } finally {
        rmSync(dataDir, { recursive: true, force: true });
      }
    },
  },
};

/** Inline code that is a command: starts with npm, npx, or the tributary command. */
const inlineCommands = (markdown: string) => [...new Set([...markdown.replace(/^( *)```[\s\S]*?^\1```$/gm, '').matchAll(/`((?:npm|npx|node_modules\/\.bin\/tributary|tributary) [^`]+)`/g)].map((m) => m[1]!.replace(/\s+/g, ' ')))];

beforeAll(async () => {
  // The repository's own rules, as `npm start` has them.
  gateway = await startTestGateway({ rulesPath: join(ROOT, 'rules') });
});
afterAll(cleanup);

describe('README.md', () => {
  const blocks = fencedBlocks(README);
  it('has samples, each claimed by exactly one runner', () => {
    expect(blocks.length).toBeGreaterThan(5);
    for (const block of blocks) {
      expect(runners.filter((r) => r.claims(block)).map((r) => r.name), `README.md line ${block.line}: no test runs this block (add a runner in test/readme.test.ts)\n${block.text}`).toHaveLength(1);
    }
  });
  const inline = inlineCommands(README);
  it('names only commands this file knows how they are run', () => {
    expect(inline).toContain('npm run demo');
    for (const command of inline) expect(INLINE[command], `README.md names \`${command}\`: add it to INLINE in test/readme.test.ts`).toBeDefined();
    for (const how of Object.values(INLINE)) if ('runBy' in how && how.runBy.startsWith('test/')) expect(existsSync(join(ROOT, how.runBy.split(' ')[0]!)), how.runBy).toBe(true);
  });
  for (const command of inline) {
    const how = INLINE[command];
    if (how && 'run' in how) it(`\`${command}\``, { timeout: 180_000 }, how.run);
  }
  for (const block of blocks) {
    const runner = runners.find((r) => r.claims(block));
    it.runIf(runner)(`line ${block.line}: ${runner?.name}`, { timeout: 180_000 }, () => runner!.run(block));
  }
});
