// The embedded store: FerretDB (a MongoDB wire-compatible server) on its SQLite backend, built by
// scripts/build-ferretdb.sh and run as a child process. For development, tests and the default
// `npm start`; production points MONGODB_URI at MongoDB 6+.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { MongoClient, MongoServerError } from 'mongodb';
import { INSTALLED, PACKAGE_ROOT } from '../package-root.ts';

/** The FerretDB release we build (scripts/build-ferretdb.sh is given it; its own default is for running it by hand). */
export const FERRETDB_VERSION = process.env.FERRETDB_VERSION || 'v1.24.2';

/**
 * Where the FerretDB binary is, or is built: TRIBUTARY_FERRETDB_BIN (a binary you built), else
 * TRIBUTARY_BIN_DIR/ferretdb; in a checkout, its .tributary/bin/ferretdb. Installed in an app,
 * the package folder is not the place for a 45 MB build (npm replaces it on every install):
 * the app's ./.tributary/bin/ferretdb if it exists, else a per-user cache,
 * $XDG_CACHE_HOME (or ~/.cache)/tributary/ferretdb-<version>/ferretdb.
 */
export function ferretdbBinary(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): string {
  if (env.TRIBUTARY_FERRETDB_BIN) return resolve(cwd, env.TRIBUTARY_FERRETDB_BIN);
  if (env.TRIBUTARY_BIN_DIR) return resolve(cwd, env.TRIBUTARY_BIN_DIR, 'ferretdb');
  if (!INSTALLED) return resolve(PACKAGE_ROOT, '.tributary/bin/ferretdb');
  const inProject = resolve(cwd, '.tributary/bin/ferretdb');
  if (existsSync(inProject)) return inProject;
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'tributary', `ferretdb-${FERRETDB_VERSION}`, 'ferretdb');
}

export const FERRETDB_BINARY = ferretdbBinary();

export interface EmbeddedFerretDB {
  uri: string;
  port: number;
  dataDir: string;
  stop(): Promise<void>;
}

export interface EmbeddedFerretDBOptions {
  /** SQLite files live here; the data survives restarts. */
  dataDir: string;
  /** 0 or unset picks a free port. */
  port?: number;
  onLog?: (line: string) => void;
  /** The oplog FerretDB keeps for outside changes (see ensureOplog); `false` leaves it alone. */
  oplog?: false | OplogOptions;
}

export interface OplogOptions {
  /** Upper bound in bytes. Default 256 MiB. */
  sizeBytes?: number;
  /**
   * Upper bound in entries, the bound that matters in practice. Default 250. FerretDB's SQLite
   * backend has no index on `ts`: every read of the oplog decodes all of it (60-150 µs an entry
   * here), and the outside-change reader reads it whenever it changed, so this bounds the cost
   * of a read (250 entries: 15-40 ms) and with it the latency of outside changes. A follower
   * further behind than this is told its position was lost and the caller does a full pass.
   */
  maxEntries?: number;
  /**
   * FerretDB trims capped collections only on a timer (default every minute), so between trims
   * the oplog grows past its bounds; we trim every this many seconds. Default 1.
   */
  trimIntervalSeconds?: number;
}

/** Builds FerretDB if it is not built yet (a minute or so, once). */
export function ensureFerretDBBuilt(): void {
  if (existsSync(FERRETDB_BINARY)) return;
  if (process.env.TRIBUTARY_FERRETDB_BIN) throw new Error(`TRIBUTARY_FERRETDB_BIN=${process.env.TRIBUTARY_FERRETDB_BIN}: no such file (unset it to have FerretDB built)`);
  // Its output goes to stderr: stdout may be a log others parse.
  const build = spawnSync('bash', [resolve(PACKAGE_ROOT, 'scripts/build-ferretdb.sh')], {
    stdio: ['ignore', 2, 2],
    env: { ...process.env, FERRETDB_VERSION, TRIBUTARY_BIN_DIR: dirname(FERRETDB_BINARY) },
  });
  if (build.status !== 0) throw new Error(`building FerretDB into ${dirname(FERRETDB_BINARY)} failed (exit ${build.status ?? build.error}); see the output above`);
}

export async function startEmbeddedFerretDB(options: EmbeddedFerretDBOptions): Promise<EmbeddedFerretDB> {
  ensureFerretDBBuilt();
  const dataDir = resolve(options.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const port = options.port || (await freePort());
  const oplog = options.oplog === false ? undefined : (options.oplog ?? {});
  const child = spawn(
    FERRETDB_BINARY,
    [
      '--handler=sqlite',
      `--sqlite-url=file:${dataDir}/`,
      `--state-dir=${dataDir}`,
      `--listen-addr=127.0.0.1:${port}`,
      '--debug-addr=-',
      '--telemetry=disable',
      '--log-level=warn',
      ...(oplog ? [`--test-capped-cleanup-interval=${oplog.trimIntervalSeconds ?? 1}s`] : []),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  const collect = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-4_000);
    options.onLog?.(chunk.toString());
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  // A process that exits without stop() (an uncaught error, process.exit) must not leave
  // FerretDB running on the data folder.
  const stopOnExit = () => child.kill('SIGTERM');
  process.once('exit', stopOnExit);
  child.once('exit', () => process.off('exit', stopOnExit));

  const deadline = Date.now() + 30_000;
  while (!(await canConnect(port))) {
    if (child.exitCode !== null) throw new Error(`FerretDB exited with code ${child.exitCode}:\n${output}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`FerretDB did not listen on port ${port} within 30 s:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  const uri = `mongodb://127.0.0.1:${port}/`;
  if (oplog) {
    try {
      await ensureOplog(uri, oplog);
    } catch (error) {
      child.kill('SIGKILL');
      throw new Error(`could not create the oplog in FerretDB: ${String(error)}\n${output}`);
    }
  }

  return {
    uri,
    port,
    dataDir,
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * Creates `local.oplog.rs` as a capped collection unless it exists (so, idempotent across
 * restarts on one data folder; an existing oplog keeps the bounds it was created with).
 *
 * FerretDB writes an oplog entry for every insert, update and delete once this collection
 * exists, and not before: it is how the gateway learns of writes that other services make to
 * the store without going through it (store/outside-changes.ts; FerretDB has no change streams).
 * Caveats (FerretDB v1.24): the entry is written after the data, not atomically with it, and a
 * failed entry is only logged by FerretDB; dropping a collection or database logs nothing.
 */
export async function ensureOplog(uri: string, options: OplogOptions = {}): Promise<void> {
  const client = new MongoClient(uri, { serverSelectionTimeoutMS: 10_000 });
  try {
    await client.connect();
    const local = client.db('local');
    if ((await local.listCollections({ name: 'oplog.rs' }, { nameOnly: true }).toArray()).length > 0) return;
    try {
      await local.createCollection('oplog.rs', {
        capped: true,
        size: options.sizeBytes ?? 256 * 1024 * 1024,
        max: options.maxEntries ?? 250,
      });
    } catch (error) {
      // Created meanwhile by someone else: fine.
      if (!(error instanceof MongoServerError && error.code === 48 /* NamespaceExists */)) throw error;
    }
  } finally {
    await client.close();
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((r) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      r(true);
    });
    socket.once('error', () => r(false));
  });
}
