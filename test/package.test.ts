// Issue 15, "Installable": Tributary as an app gets it. `npm pack` (whose prepack step is `npm
// run build`: dist/ with type declarations) gives a tarball; a fresh app with its own
// package.json installs it from there, and everything below runs from that app's node_modules,
// not from this checkout.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureFerretDBBuilt, FERRETDB_BINARY, FERRETDB_VERSION, freePort } from '../gateway/store/embedded-ferretdb.ts';
import { bundleForBrowser } from '../demo/bundle.ts';
import { launchBrowser, withScreenshots } from './helpers/browser.ts';
import { cleanup, graphqlHttp, mongoUri, openDb, uniqueName, waitFor } from './helpers/harness.ts';
import { INSTALL_COMMANDS, readmeInstallCommands } from './helpers/install-commands.ts';

const ROOT = resolve(import.meta.dirname, '..');
let work: string; // the tarball, the app, other folders of this file
let app: string; // the app that installed the tarball
const children: ChildProcess[] = [];
const groups = new Set<ChildProcess>(); // children leading a process group of their own

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end. */
function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = appEnv()): Promise<Run> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolveRun({ code, stdout, stderr }));
  });
}

/** This process's environment without Tributary's variables: the app sets its own. */
function appEnv(vars: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(TRIBUTARY_|MONGODB_URI$|PORT$|HOST$|FERRETDB_)/.test(k)) env[k] = v;
  return { ...env, NO_COLOR: '1', ...vars };
}

/** The installed package's `tributary` command (what `npx tributary` runs). */
const tributary = (args: string[], env?: NodeJS.ProcessEnv, cwd = app) => run(join(app, 'node_modules/.bin/tributary'), args, cwd, env);

function canListen(port: number): Promise<boolean> {
  return new Promise((r) => {
    const server = createServer();
    server.once('error', () => r(false));
    server.listen(port, '127.0.0.1', () => server.close(() => r(true)));
  });
}

/** Command lines of running FerretDB processes on `dataDir`. */
function ferretdbsOn(dataDir: string): Promise<string[]> {
  return run('pgrep', ['-af', `ferretdb.*${dataDir}`], ROOT).then((r) => r.stdout.split('\n').filter(Boolean));
}

/** `tributary start` as a child process; `lines` collects its stdout (pino's JSON lines). */
function startGatewayProcess(command: string, args: string[], env: NodeJS.ProcessEnv, detached = false) {
  const child = spawn(command, args, { cwd: app, env, stdio: ['ignore', 'pipe', 'inherit'], detached });
  children.push(child);
  if (detached) groups.add(child);
  const lines: string[] = [];
  let rest = '';
  child.stdout!.on('data', (c: Buffer) => {
    const parts = (rest + c.toString()).split('\n');
    rest = parts.pop()!;
    lines.push(...parts);
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code, signal) => r(code ?? (signal ? -1 : null))));
  return { child, lines, exited };
}

/** The README's step: the app starts from the package's example data model and rules. */
async function copyExamples(): Promise<void> {
  if (existsSync(join(app, 'schema.graphql'))) return; // an earlier test did it
  const copied = await run('bash', ['-c', INSTALL_COMMANDS.copy], app);
  expect(copied.code, copied.stderr).toBe(0);
  expect(existsSync(join(app, 'rules/tasks.json'))).toBe(true);
}

/** `tributary start` as the README runs it (`npx tributary start`), in a process group of its own as in a terminal. */
function npxStart(env: NodeJS.ProcessEnv) {
  return startGatewayProcess('bash', ['-c', INSTALL_COMMANDS.start], env, true);
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'tributary-package-'));
  app = join(work, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'tiny-app', version: '1.0.0', private: true, type: 'module' }, null, 2));
  const pack = await run('npm', ['pack', '--pack-destination', app], ROOT, process.env);
  expect(pack.code, pack.stdout + pack.stderr).toBe(0);
  // The tarball the README's install command names.
  expect(readdirSync(app).filter((f) => f.endsWith('.tgz'))).toEqual([INSTALL_COMMANDS.install.split('./')[1]]);
  // From the registry cache where it can (the tarball's dependencies are the checkout's).
  const install = await run('bash', ['-c', `${INSTALL_COMMANDS.install} --no-audit --no-fund --prefer-offline`], app, process.env);
  expect(install.code, install.stdout + install.stderr).toBe(0);
}, 600_000);

afterEach(async () => {
  // SIGTERM first, so that a gateway left running by a failed test stops its FerretDB too.
  for (const child of children.splice(0)) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    const exited = new Promise((r) => child.once('exit', r));
    const kill = (signal: NodeJS.Signals) => (groups.has(child) ? process.kill(-child.pid!, signal) : child.kill(signal));
    kill('SIGTERM');
    const timer = setTimeout(() => kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  }
  await cleanup();
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the installed package', () => {
  it('README.md "Install as a package" shows exactly the commands this file runs', () => {
    expect(readmeInstallCommands(readFileSync(join(ROOT, 'README.md'), 'utf8'))).toEqual(Object.values(INSTALL_COMMANDS));
  });

  it('holds the built JavaScript, its declarations and the runtime files; the app imports the SDK, the gateway and the testing helpers, with types', async () => {
    const pkg = join(app, 'node_modules/tributary');
    const files = readdirSync(pkg, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => relative(pkg, join(e.parentPath, e.name)));
    expect(files).toEqual(expect.arrayContaining(['dist/gateway/cli.js', 'dist/client-sdk/index.js', 'dist/client-sdk/index.d.ts', 'dist/gateway/index.d.ts', 'schema.graphql', 'rules/tasks.json', 'scripts/build-ferretdb.sh']));
    // JavaScript only: no TypeScript sources (Node refuses .ts under node_modules), no tests.
    expect(files.filter((f) => (f.endsWith('.ts') && !f.endsWith('.d.ts')) || f.includes('.test.'))).toEqual([]);
    // Runtime dependencies only: the checkout's TypeScript runner and tools stay out of the app.
    expect(['tsx', 'typescript', 'vitest', 'esbuild'].filter((name) => existsSync(join(app, 'node_modules', name)))).toEqual([]);

    const imported = await run(
      process.execPath,
      ['--input-type=module', '-e', "const [a, b, c] = await Promise.all([import('tributary'), import('tributary/gateway'), import('tributary/testing')]); console.log(JSON.stringify([typeof a.openTributary, typeof b.startGateway, typeof c.loadRulesForTesting]))"],
      app,
    );
    expect(imported.stderr).toBe('');
    expect(JSON.parse(imported.stdout)).toEqual(['function', 'function', 'function']);

    // The declarations resolve through `exports`: a wrong use is a type error, a right one is not.
    writeFileSync(
      join(app, 'check.ts'),
      [
        "import { Credentials, openTributary } from 'tributary';",
        "import { startGateway } from 'tributary/gateway';",
        "import { loadRulesForTesting } from 'tributary/testing';",
        'export const open: typeof openTributary = openTributary;',
        'export const anonymous = Credentials.anonymous();',
        "export const started = startGateway({ mongoUri: 'mongodb://127.0.0.1/', port: 0 });",
        'export const rules = loadRulesForTesting;',
        '// @ts-expect-error: the port is a number',
        "startGateway({ mongoUri: 'mongodb://127.0.0.1/', port: 'four thousand' });",
      ].join('\n'),
    );
    const tsc = await run(
      process.execPath,
      [join(ROOT, 'node_modules/typescript/bin/tsc'), '--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--skipLibCheck', '--typeRoots', join(ROOT, 'node_modules/@types'), '--types', 'node', 'check.ts'],
      app,
    );
    expect(tsc.stdout + tsc.stderr).toBe('');
    expect(tsc.code).toBe(0);
  });

  it('(a) `npx tributary start` on MONGODB_URI serves GraphQL from the app\'s schema and rules; api-key and reset-clients work on it; SIGTERM stops it', async () => {
    await copyExamples();

    const port = await freePort();
    const database = uniqueName('package');
    const env = appEnv({ MONGODB_URI: mongoUri(), TRIBUTARY_DATABASE: database, PORT: String(port), LOG_LEVEL: 'warn' });
    const gateway = npxStart(env);
    const url = `http://127.0.0.1:${port}/graphql`;
    await waitFor('the installed gateway is ready', async () => (await fetch(`http://127.0.0.1:${port}/ready`)).ok, 60_000);

    // An anonymous user inserts a task the demo rules let it own.
    const anonymous = (await (await fetch(`http://127.0.0.1:${port}/auth/anonymous`, { method: 'POST' })).json()) as { token: string; userId: string };
    const inserted = await graphqlHttp(
      url,
      'mutation ($me: String!) { insertTask(input: {id: "from-the-package", ownerId: $me, title: "installed", status: TODO, priority: 1, tags: []}) { id title } }',
      { me: anonymous.userId },
      anonymous.token,
    );
    expect(inserted).toEqual({ data: { insertTask: { id: 'from-the-package', title: 'installed' } } });
    const db = await openDb(database);
    expect(await db.collection('tasks').findOne({ _id: 'from-the-package' as never })).toMatchObject({ title: 'installed', ownerId: anonymous.userId });

    // API keys, made by the package's command for this gateway's database; first as the README
    // says it.
    const readmeKey = await run('bash', ['-c', 'npx tributary api-key create --name importer'], app, env);
    expect(readmeKey.code, readmeKey.stderr).toBe(0);
    const [, readmeKeyId, readmeKeySecret] = /created API key ([0-9a-f]{16}) for user \S+:\n(trb_\S+)/.exec(readmeKey.stdout) ?? [];
    expect((await graphqlHttp(url, '{ viewer { id } }', {}, readmeKeySecret)).data).toEqual({ viewer: { id: `api-key:${readmeKeyId}` } });
    const created = await tributary(['api-key', 'create', '--name', 'reporting', '--user', 'service:reporting'], env);
    expect(created.code, created.stderr).toBe(0);
    const key = /trb_[0-9a-f]{16}_[A-Za-z0-9_-]{43}/.exec(created.stdout)![0];
    expect((await graphqlHttp(url, '{ viewer { id provider } }', {}, key)).data).toEqual({ viewer: { id: 'service:reporting', provider: 'api-key' } });
    const listed = await tributary(['api-key', 'list'], env);
    expect(listed.stdout).toContain(`${key.slice(4, 20)}  reporting  user=service:reporting`);
    const revoked = await tributary(['api-key', 'revoke', key.slice(4, 20)], env);
    expect(revoked.stdout.trim()).toBe(`revoked ${key.slice(4, 20)}`);
    const admin = await tributary(['api-key', 'create', '--name', 'operator', '--admin'], env);
    const adminId = /created admin API key ([0-9a-f]{16}) /.exec(admin.stdout)?.[1];
    expect(adminId, admin.stdout + admin.stderr).toBeDefined();
    expect((await tributary(['api-key', 'list'], env)).stdout).toContain(`${adminId}  operator  user=api-key:${adminId}  admin  created=`);

    const reset = await tributary(['reset-clients', '--collection', 'tasks'], env);
    expect(reset.code, reset.stderr).toBe(0);
    expect(reset.stdout).toContain('forced a client reset of tasks');
    expect(await db.collection('_tributary_resets').findOne({ _id: 'tasks' as never })).toMatchObject({ generation: 1 });

    // SIGTERM to the job, as a terminal or container stops it: every process of it ends.
    process.kill(-gateway.child.pid!, 'SIGTERM');
    await gateway.exited;
    await waitFor('every process of `npx tributary start` has exited', async () => (await run('pgrep', ['-g', String(gateway.child.pid)], ROOT)).stdout.trim() === '', 15_000);
    expect(await canListen(port)).toBe(true);
  });

  it('`tributary --help`, `import-realm`, and clear errors: an unknown command or flag exits 2, a missing schema or FerretDB binary 1', async () => {
    const help = await run('bash', ['-c', INSTALL_COMMANDS.help], app);
    expect(help.code, help.stderr).toBe(0);
    for (const command of ['start', 'api-key', 'import-realm', 'reset-clients']) expect(help.stdout).toContain(command);

    const unknown = await tributary(['serve'], appEnv());
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown command "serve"');
    const badFlag = await tributary(['api-key', 'create', '--nam', 'x'], appEnv());
    expect(badFlag.code).toBe(2);
    expect(badFlag.stderr).toContain("Unknown option '--nam'");
    const startFlag = await tributary(['start', '--port', '4000'], appEnv());
    expect(startFlag.code).toBe(2);
    expect(startFlag.stderr).toContain('configured by environment variables');
    const noCommand = await tributary([], appEnv());
    expect(noCommand.code).toBe(2);

    const imported = await tributary(['import-realm', join(ROOT, 'test/fixtures/realm-apps/task-app'), '--out', 'realm-import'], appEnv());
    expect(imported.code, imported.stderr).toBe(0);
    expect(existsSync(join(app, 'realm-import/schema.graphql'))).toBe(true);
    expect(readdirSync(join(app, 'realm-import/rules'))).toContain('Task.json');
    expect(imported.stdout).toContain('npx tributary start');

    const elsewhere = mkdtempSync(join(work, 'empty-'));
    const noSchema = await tributary(['start'], appEnv({ MONGODB_URI: mongoUri() }), elsewhere);
    expect(noSchema.code).toBe(1);
    expect(noSchema.stderr).toContain(`no data model at ${join(elsewhere, 'schema.graphql')}`);
    const noBinary = await tributary(['start'], appEnv({ TRIBUTARY_FERRETDB_BIN: join(work, 'no-such-ferretdb'), TRIBUTARY_SCHEMA: join(app, 'schema.graphql'), TRIBUTARY_RULES: join(app, 'rules'), TRIBUTARY_DATA_DIR: join(work, 'unused') }));
    expect(noBinary.code).toBe(1);
    expect(noBinary.stderr).toContain('no-such-ferretdb: no such file');
  });

  it('`tributary start` on the embedded FerretDB: SIGTERM (also mid-start), and Ctrl-C under npx, stop FerretDB too', async () => {
    ensureFerretDBBuilt();
    await copyExamples();

    const embeddedPort = (lines: string[]) => {
      const started = lines.map((l) => JSON.parse(l) as { msg: string; uri?: string }).find((l) => l.msg.startsWith('embedded FerretDB started'));
      return started ? Number(new URL(started.uri!).port) : undefined;
    };

    // 1. The app's own ./.tributary/bin/ferretdb, data in ./.tributary/data; SIGTERM to the
    // process alone, as a process manager sends it (README: node_modules/.bin/tributary start).
    mkdirSync(join(app, '.tributary/bin'), { recursive: true });
    symlinkSync(FERRETDB_BINARY, join(app, '.tributary/bin/ferretdb'));
    let port = await freePort();
    const first = startGatewayProcess(join(app, 'node_modules/.bin/tributary'), ['start'], appEnv({ PORT: String(port), LOG_LEVEL: 'info' }));
    await waitFor('the installed gateway on the embedded store is ready', async () => (await fetch(`http://127.0.0.1:${port}/ready`)).ok, 60_000);
    const dataDir = join(app, '.tributary/data');
    expect((await ferretdbsOn(dataDir)).join('\n')).toContain(join(app, '.tributary/bin/ferretdb'));
    let storePort = embeddedPort(first.lines);
    expect(storePort).toBeGreaterThan(0);
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    expect(await ferretdbsOn(dataDir)).toEqual([]);
    expect(await canListen(port)).toBe(true);
    expect(await canListen(storePort!)).toBe(true);

    // 2. No binary in the app: the per-user cache's; `npx tributary start` in its own process
    // group, stopped as a terminal's Ctrl-C stops it (SIGINT to the group). npx does not pass on
    // a SIGTERM sent to it alone (README).
    rmSync(join(app, '.tributary/bin'), { recursive: true });
    const cache = join(work, 'cache');
    mkdirSync(join(cache, 'tributary', `ferretdb-${FERRETDB_VERSION}`), { recursive: true });
    symlinkSync(FERRETDB_BINARY, join(cache, 'tributary', `ferretdb-${FERRETDB_VERSION}`, 'ferretdb'));
    port = await freePort();
    const dataDir2 = join(work, 'data-2');
    const second = npxStart(appEnv({ PORT: String(port), LOG_LEVEL: 'info', XDG_CACHE_HOME: cache, TRIBUTARY_DATA_DIR: dataDir2 }));
    await waitFor('the gateway started by npx is ready', async () => (await fetch(`http://127.0.0.1:${port}/ready`)).ok, 60_000);
    expect((await ferretdbsOn(dataDir2)).join('\n')).toContain(join(cache, 'tributary', `ferretdb-${FERRETDB_VERSION}`, 'ferretdb'));
    storePort = embeddedPort(second.lines);
    expect(storePort).toBeGreaterThan(0);
    process.kill(-second.child.pid!, 'SIGINT');
    await second.exited;
    await waitFor('FerretDB of the npx run stopped', async () => (await ferretdbsOn(dataDir2)).length === 0, 15_000);
    await waitFor('the gateway port is free', () => canListen(port), 15_000);
    expect(await canListen(storePort!)).toBe(true);

    // 3. SIGTERM while it is still starting (FerretDB up, the gateway not yet): FerretDB stops
    // too. The binary named by TRIBUTARY_FERRETDB_BIN.
    const dataDir3 = join(work, 'data-3');
    const third = startGatewayProcess(join(app, 'node_modules/.bin/tributary'), ['start'], appEnv({ PORT: String(await freePort()), LOG_LEVEL: 'warn', TRIBUTARY_FERRETDB_BIN: FERRETDB_BINARY, TRIBUTARY_DATA_DIR: dataDir3 }));
    await waitFor('FerretDB of the third run started', async () => (await ferretdbsOn(dataDir3)).length > 0, 30_000);
    third.child.kill('SIGTERM');
    expect(await third.exited).toBe(0);
    expect(await ferretdbsOn(dataDir3)).toEqual([]);
  });

  it('(b) syncs a browser bundle of a tiny app that imports `tributary` from the tarball, in Chromium', { timeout: 180_000 }, async () => {
    await copyExamples();
    const port = await freePort();
    const database = uniqueName('package_browser');
    const gateway = startGatewayProcess(join(app, 'node_modules/.bin/tributary'), ['start'], appEnv({ MONGODB_URI: mongoUri(), TRIBUTARY_DATABASE: database, PORT: String(port), LOG_LEVEL: 'warn' }));
    await waitFor('the installed gateway is ready', async () => (await fetch(`http://127.0.0.1:${port}/ready`)).ok, 60_000);

    // The tiny app: the SDK from `tributary` (node_modules), RxDB's memory storage, one insert.
    mkdirSync(join(app, 'web'), { recursive: true });
    writeFileSync(
      join(app, 'web/app.js'),
      `import { Credentials, TributaryAuth, openTributary } from 'tributary';
import { getRxStorageMemory } from 'rxdb/plugins/storage-memory';

const { schema, httpUrl, wsUrl } = window.TINY_APP;
try {
  const user = await new TributaryAuth(httpUrl).logIn(Credentials.anonymous());
  const client = await openTributary({ url: wsUrl, schema, storage: getRxStorageMemory(), user, logLevel: 'info' });
  await client.collections.tasks.insert({ id: 'from-the-browser', ownerId: user.id, title: 'bundled from the tarball', status: 'TODO', priority: 2, tags: ['browser'] });
  await client.waitForSync();
  document.body.dataset.synced = user.id;
} catch (error) {
  document.body.dataset.error = String(error?.stack ?? error);
}
`,
    );
    const bundle = await bundleForBrowser({ entry: join(app, 'web/app.js') });
    // The SDK in the bundle is the installed package's build, not this checkout's sources.
    expect(bundle.inputs.some((i) => i.includes('node_modules/tributary/dist/client-sdk/'))).toBe(true);
    expect(bundle.inputs.filter((i) => i.startsWith('client-sdk/') || i.startsWith('protocol/'))).toEqual([]);

    // The page's server, on its own origin: the page logs in over HTTP and syncs over the socket
    // with the gateway directly (CORS).
    const page = `<!doctype html><meta charset="utf-8"><title>tiny app</title><script>window.TINY_APP = ${JSON.stringify({ schema: readFileSync(join(app, 'schema.graphql'), 'utf8'), httpUrl: `http://127.0.0.1:${port}/graphql`, wsUrl: `ws://127.0.0.1:${port}/graphql` }).replace(/</g, '\\u003c')};</script><script type="module" src="/app.js"></script>`;
    const server = createHttpServer((req, res) => {
      const file = req.url === '/' ? { type: 'text/html', body: page } : req.url === '/app.js' ? { type: 'text/javascript', body: bundle.code } : undefined;
      res.writeHead(file ? 200 : 404, { 'content-type': file?.type ?? 'text/plain' });
      res.end(file?.body ?? 'not found');
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    const browser = await launchBrowser();
    try {
      const tab = await browser.newPage();
      const errors: string[] = [];
      const console: string[] = [];
      tab.on('pageerror', (error) => errors.push(error.message));
      tab.on('console', (message) => console.push(`${message.type()}: ${message.text()}`));
      await withScreenshots('package-browser-bundle', [tab], async () => {
        await tab.goto(`http://127.0.0.1:${(server.address() as { port: number }).port}/`);
        await tab.waitForSelector('body[data-synced], body[data-error]', { state: 'attached', timeout: 90_000 }).catch((error: Error) => {
          throw new Error(`${error.message}\npage errors: ${errors.join('\n')}\nconsole:\n${console.join('\n')}`);
        });
        expect(await tab.evaluate(() => document.body.dataset.error)).toBeUndefined();
        expect(errors).toEqual([]);
      });
      const userId = await tab.evaluate(() => document.body.dataset.synced);
      expect(userId).toMatch(/^anon-/);
      const db = await openDb(database);
      const stored = await waitFor('the browser\'s task is in MongoDB', () => db.collection('tasks').findOne({ _id: 'from-the-browser' as never }));
      expect(stored).toMatchObject({ title: 'bundled from the tarball', ownerId: userId, tags: ['browser'] });
    } finally {
      await browser.close();
      await new Promise((r) => server.close(r));
      gateway.child.kill('SIGTERM');
      await gateway.exited;
    }
  });
});
