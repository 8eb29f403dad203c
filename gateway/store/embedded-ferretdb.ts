// The embedded store: FerretDB (a MongoDB wire-compatible server) on its SQLite backend, built by
// scripts/build-ferretdb.sh and run as a child process. For development, tests and the default
// `npm start`; production points MONGODB_URI at MongoDB 6+.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../..');
export const FERRETDB_BINARY = resolve(process.env.TRIBUTARY_BIN_DIR ?? resolve(ROOT, '.tributary/bin'), 'ferretdb');

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
}

/** Builds FerretDB if it is not built yet (a minute or so, once). */
export function ensureFerretDBBuilt(): void {
  if (existsSync(FERRETDB_BINARY)) return;
  const build = spawnSync('bash', [resolve(ROOT, 'scripts/build-ferretdb.sh')], { stdio: 'inherit' });
  if (build.status !== 0) throw new Error(`building FerretDB failed (exit ${build.status}); see the output above`);
}

export async function startEmbeddedFerretDB(options: EmbeddedFerretDBOptions): Promise<EmbeddedFerretDB> {
  ensureFerretDBBuilt();
  const dataDir = resolve(options.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const port = options.port || (await freePort());
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

  const deadline = Date.now() + 30_000;
  while (!(await canConnect(port))) {
    if (child.exitCode !== null) throw new Error(`FerretDB exited with code ${child.exitCode}:\n${output}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`FerretDB did not listen on port ${port} within 30 s:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  return {
    uri: `mongodb://127.0.0.1:${port}/`,
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
