// Store backends (issue 16, point 6): the embedded store's raw speed on FerretDB's SQLite backend
// (what `npm start` and the other benchmarks use) against FerretDB v1 on PostgreSQL (Debian's
// packages), with the MongoDB driver and the benchmarks' ~1 KB tasks. Not in the default run: it
// needs PostgreSQL installed (`apt-get install postgresql`), and prints a skip line without it.
//
// Each backend gets a fresh FerretDB started with the same flags as the embedded one (oplog
// created and trimmed every second, as `npm start` has it, so every write also writes an oplog
// entry); PostgreSQL gets a throwaway cluster (initdb in a temporary folder, a free loopback
// port, Debian's default settings: fsync and synchronous_commit on). They run one after the
// other, never at once. Everything is stopped and removed at the end, also on failure or Ctrl-C.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { MongoClient } from 'mongodb';
import { ensureFerretDBBuilt, ensureOplog, FERRETDB_BINARY, freePort } from '../gateway/store/embedded-ferretdb.ts';
import { cpuSeconds, fmt, makeTask, markdownTable, percentile, runId, sleep, storedTask } from './common.ts';

export interface StoreBackendsOptions {
  documents: number;
}

export type Backend = 'SQLite' | 'PostgreSQL';

export interface PhaseResult {
  phase: string;
  backend: Backend;
  /** Documents or operations per second, by wall time. */
  rate: number;
  unit: 'docs/s' | 'ops/s';
  p50Ms?: number;
  p99Ms?: number;
  wallSeconds: number;
  /** Documents or operations in the phase. */
  count: number;
  ferretCpu: number;
  /** PostgreSQL's processes together (postmaster, its backends and workers); NaN on SQLite. */
  postgresCpu: number;
  /** This process (the driver). */
  driverCpu: number;
}

export type StoreBackendsResult = { skipped: string } | { phases: PhaseResult[]; plans: Record<Backend, string>; postgresVersion: string };

const BATCH = 1_000;
const ONE_BY_ONE = 1_000;

export async function runStoreBackends({ documents }: StoreBackendsOptions): Promise<StoreBackendsResult> {
  const postgres = findPostgres();
  if (typeof postgres === 'string') return { skipped: postgres };
  ensureFerretDBBuilt();

  const run = runId();
  const tasks = Array.from({ length: documents }, (_, i) => storedTask(makeTask(i, run)) as StoredTask);
  // The same random ids, in the same order, for both backends.
  const picked = shuffled(tasks.map((t) => t._id)).slice(0, Math.min(ONE_BY_ONE, documents));

  const phases: PhaseResult[] = [];
  const plans = {} as Record<Backend, string>;
  for (const backend of ['SQLite', 'PostgreSQL'] as const) {
    const cleanup = new Cleanup();
    try {
      let cluster: PostgresCluster | undefined;
      if (backend === 'PostgreSQL') {
        cluster = await startPostgres(postgres, cleanup);
      }
      const ferret = await startFerret(backend === 'SQLite' ? { handler: 'sqlite' } : { handler: 'postgresql', url: cluster!.url }, cleanup);
      console.error(`  store-backends: ${backend} up (FerretDB pid ${ferret.pid}${cluster ? `, PostgreSQL ${cluster.version} pid ${cluster.pid}` : ''})`);
      const measured = await measure(backend, ferret, cluster, tasks, picked);
      phases.push(...measured.phases);
      plans[backend] = measured.plan;
    } finally {
      await cleanup.run();
    }
  }
  return { phases, plans, postgresVersion: postgres.version };
}

type StoredTask = { _id: string } & Record<string, unknown>;

async function measure(backend: Backend, ferret: FerretProcess, cluster: PostgresCluster | undefined, tasks: StoredTask[], picked: string[]): Promise<{ phases: PhaseResult[]; plan: string }> {
  const mongo = await new MongoClient(ferret.uri, { serverSelectionTimeoutMS: 10_000 }).connect();
  try {
    const collection = mongo.db('bench_store_backends').collection<StoredTask>('tasks');
    // Created before the clock starts: a table and its indexes are not what is compared.
    await mongo.db('bench_store_backends').createCollection('tasks');
    const results: PhaseResult[] = [];
    const phase = async (name: string, unit: PhaseResult['unit'], count: number, body: (latencies: number[]) => Promise<void>) => {
      const latencies: number[] = [];
      const ferretBefore = cpuSeconds(ferret.pid);
      const postgresBefore = cluster ? treeCpuSeconds(cluster.pid) : Number.NaN;
      const driverBefore = process.cpuUsage();
      const started = performance.now();
      await body(latencies);
      const wallSeconds = (performance.now() - started) / 1000;
      const driver = process.cpuUsage(driverBefore);
      const sorted = Float64Array.from(latencies).sort();
      results.push({
        phase: name,
        backend,
        rate: count / wallSeconds,
        unit,
        ...(latencies.length > 0 ? { p50Ms: percentile(sorted, 50), p99Ms: percentile(sorted, 99) } : {}),
        wallSeconds,
        count,
        ferretCpu: cpuSeconds(ferret.pid) - ferretBefore,
        postgresCpu: cluster ? treeCpuSeconds(cluster.pid) - postgresBefore : Number.NaN,
        driverCpu: (driver.user + driver.system) / 1e6,
      });
      console.error(`  store-backends: ${backend} ${name}: ${fmt(count / wallSeconds)} ${unit}`);
    };
    const timed = async (latencies: number[], op: () => Promise<unknown>) => {
      const began = performance.now();
      await op();
      latencies.push(performance.now() - began);
    };

    await phase(`insertMany, ${fmt(BATCH)} per call`, 'docs/s', tasks.length, async () => {
      for (let i = 0; i < tasks.length; i += BATCH) await collection.insertMany(tasks.slice(i, i + BATCH));
    });
    await phase(`full find, batchSize ${fmt(BATCH)}`, 'docs/s', tasks.length, async () => {
      let read = 0;
      for await (const _ of collection.find({}, { batchSize: BATCH })) read++;
      if (read !== tasks.length) throw new Error(`${backend}: full find read ${read} documents, expected ${tasks.length}`);
    });
    await phase(`find by _id, ${fmt(picked.length)} one by one`, 'ops/s', picked.length, async (latencies) => {
      for (const id of picked) {
        await timed(latencies, async () => {
          if (!(await collection.findOne({ _id: id }))) throw new Error(`${backend}: ${id} not found`);
        });
      }
    });
    await phase(`updateOne $set, ${fmt(picked.length)} one by one`, 'ops/s', picked.length, async (latencies) => {
      for (const [i, id] of picked.entries()) {
        await timed(latencies, async () => {
          const { modifiedCount } = await collection.updateOne({ _id: id }, { $set: { title: `edited ${i}`, priority: (i % 5) + 1, status: 'DONE' } });
          if (modifiedCount !== 1) throw new Error(`${backend}: updateOne of ${id} modified ${modifiedCount}`);
        });
      }
    });
    // What bounds the lookups: whether the backend uses an index for them.
    const explained = (await collection.find({ _id: picked[0]! }).explain()) as { queryPlanner?: { Plan?: unknown }; filterPushdown?: boolean };
    const plan = explained.queryPlanner?.Plan as { 'Node Type'?: string; 'Index Name'?: string } | string[] | undefined;
    const summary = Array.isArray(plan) ? plan.map((line) => line.replace(/^.*detail=/, '')).join('; ') : [plan?.['Node Type'], plan?.['Index Name']].filter(Boolean).join(' on ');
    return { phases: results, plan: `${summary || 'unknown'} (filter pushdown ${explained.filterPushdown ? 'yes' : 'no'})` };
  } finally {
    await mongo.close();
  }
}

export function storeBackendsTable(results: PhaseResult[]): string {
  const ms = (n: number | undefined) => (n === undefined ? '' : fmt(n, 2));
  const cpu = (n: number) => (Number.isNaN(n) ? '–' : fmt(n, 2));
  return markdownTable(
    ['phase', 'store', 'rate', 'p50 ms', 'p99 ms', 'wall s', 'FerretDB CPU s', 'PostgreSQL CPU s', 'store CPU per doc/op', 'driver CPU s'],
    results.map((r) => [
      r.phase,
      r.backend,
      `${fmt(r.rate)} ${r.unit}`,
      ms(r.p50Ms),
      ms(r.p99Ms),
      fmt(r.wallSeconds, 2),
      cpu(r.ferretCpu),
      cpu(r.postgresCpu),
      `${fmt((1e6 * (r.ferretCpu + (Number.isNaN(r.postgresCpu) ? 0 : r.postgresCpu))) / r.count)} µs`,
      fmt(r.driverCpu, 2),
    ]),
  );
}

/** PostgreSQL ÷ SQLite per phase. */
export function storeBackendsRatios(results: PhaseResult[]): string {
  const rows: string[][] = [];
  for (const sqlite of results.filter((r) => r.backend === 'SQLite')) {
    const pg = results.find((r) => r.backend === 'PostgreSQL' && r.phase === sqlite.phase);
    if (!pg) continue;
    const storeCpu = (r: PhaseResult) => r.ferretCpu + (Number.isNaN(r.postgresCpu) ? 0 : r.postgresCpu);
    rows.push([sqlite.phase, `${fmt(pg.rate / sqlite.rate, 2)}×`, `${fmt(storeCpu(pg) / storeCpu(sqlite), 2)}×`]);
  }
  return markdownTable(['phase', 'PostgreSQL ÷ SQLite: rate', 'store CPU (FerretDB + PostgreSQL)'], rows);
}

// --- PostgreSQL -----------------------------------------------------------------------------

interface PostgresInstall {
  bin: string;
  version: string;
  /** Run its programs as this OS user (initdb refuses root); undefined: as ourselves. */
  runAs?: { name: string; uid: number; gid: number };
}

/** Debian's PostgreSQL server programs (the newest version installed), or why not. */
function findPostgres(): PostgresInstall | string {
  const install = 'install Debian\'s PostgreSQL server (`apt-get install postgresql`)';
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'initdb')) && existsSync(join(root, v, 'bin', 'pg_ctl'))) : [];
  const version = versions.sort((a, b) => Number(b) - Number(a))[0];
  if (!version) return `PostgreSQL is not installed (no ${root}/<version>/bin/initdb): ${install}`;
  const bin = join(root, version, 'bin');
  if (userInfo().uid !== 0) return { bin, version };
  const id = (flag: string) => spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' });
  const uid = id('-u');
  const gid = id('-g');
  if (uid.status !== 0 || gid.status !== 0) return `running as root and there is no "postgres" OS user to run PostgreSQL as (initdb refuses root): ${install}, or run as another user`;
  return { bin, version, runAs: { name: 'postgres', uid: Number(uid.stdout), gid: Number(gid.stdout) } };
}

interface PostgresCluster {
  url: string;
  pid: number;
  version: string;
}

async function startPostgres(install: PostgresInstall, cleanup: Cleanup): Promise<PostgresCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'tributary-bench-pg-'));
  cleanup.add(() => rmSync(dir, { recursive: true, force: true }));
  if (install.runAs) chownSync(dir, install.runAs.uid, install.runAs.gid);
  const data = join(dir, 'data');
  const pg = (program: string, args: string[]) => {
    const [command, argv] = install.runAs ? ['runuser', ['-u', install.runAs.name, '--', join(install.bin, program), ...args]] : [join(install.bin, program), args];
    const result = spawnSync(command, argv, { cwd: dir, encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`PostgreSQL ${program} failed (exit ${result.status ?? result.error}):\n${result.stdout}${result.stderr}${logTail(dir)}`);
    return result.stdout;
  };
  pg('initdb', ['-D', data, '-U', 'tributary', '--auth=trust', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync']);
  const port = await freePort();
  // Sockets in our folder (not /var/run/postgresql), loopback only.
  pg('pg_ctl', ['start', '-D', data, '-w', '-t', '60', '-l', join(dir, 'postgres.log'), '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1`]);
  // Immediate: a throwaway cluster needs no checkpoint. Also from an exit hook (Ctrl-C), so sync.
  cleanup.add(() => void spawnSync(install.runAs ? 'runuser' : join(install.bin, 'pg_ctl'), [...(install.runAs ? ['-u', install.runAs.name, '--', join(install.bin, 'pg_ctl')] : []), 'stop', '-D', data, '-m', 'immediate', '-w'], { stdio: 'ignore' }));
  pg('createdb', ['-h', '127.0.0.1', '-p', String(port), '-U', 'tributary', 'ferretdb']);
  const pid = Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
  const version = pg('postgres', ['--version']).trim().replace(/^postgres \(PostgreSQL\) /, '');
  return { url: `postgres://tributary@127.0.0.1:${port}/ferretdb`, pid, version };
}

function logTail(dir: string): string {
  try {
    return `\npostgres.log:\n${readFileSync(join(dir, 'postgres.log'), 'utf8').slice(-2_000)}`;
  } catch {
    return '';
  }
}

/**
 * CPU seconds of a process and all its children, live or exited: PostgreSQL runs a process per
 * connection and per worker. An exited child that the parent has reaped is in the parent's
 * cutime/cstime, so the sum holds when backends come and go during a phase.
 */
export function treeCpuSeconds(rootPid: number): number {
  const stat = (pid: number | string) => {
    try {
      const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return text.slice(text.lastIndexOf(')') + 2).split(' ');
    } catch {
      return undefined; // gone meanwhile
    }
  };
  const root = stat(rootPid);
  if (!root) return Number.NaN;
  // Fields after the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14), in USER_HZ (100).
  let ticks = Number(root[11]) + Number(root[12]) + Number(root[13]) + Number(root[14]);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const fields = stat(entry);
    if (fields && Number(fields[1]) === rootPid) ticks += Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
  }
  return ticks / 100;
}

// --- FerretDB -------------------------------------------------------------------------------

interface FerretProcess {
  uri: string;
  pid: number;
}

type FerretBackend = { handler: 'sqlite' } | { handler: 'postgresql'; url: string };

/** FerretDB with embedded-ferretdb.ts's flags, only the backend differing; its oplog created. */
async function startFerret(backend: FerretBackend, cleanup: Cleanup): Promise<FerretProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'tributary-bench-ferret-'));
  cleanup.add(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  const child: ChildProcess = spawn(
    FERRETDB_BINARY,
    [
      `--handler=${backend.handler}`,
      backend.handler === 'sqlite' ? `--sqlite-url=file:${dir}/` : `--postgresql-url=${backend.url}`,
      `--state-dir=${dir}`,
      `--listen-addr=127.0.0.1:${port}`,
      '--debug-addr=-',
      '--telemetry=disable',
      '--log-level=warn',
      '--test-capped-cleanup-interval=1s',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  const collect = (chunk: Buffer) => void (output = (output + chunk.toString()).slice(-4_000));
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  // Registered before the data folder's removal, so it runs first (cleanup runs in reverse).
  cleanup.add(
    () => void child.kill('SIGKILL'),
    async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  );
  const uri = `mongodb://127.0.0.1:${port}/`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`FerretDB (${backend.handler}) exited with code ${child.exitCode}:\n${output}`);
    try {
      // Answers only once its backend is reachable (PostgreSQL: the pool connects lazily).
      await ensureOplog(uri);
      break;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`FerretDB (${backend.handler}) did not answer on port ${port} within 30 s: ${String(error)}\n${output}`);
      await sleep(200);
    }
  }
  return { uri, pid: child.pid! };
}

// --- helpers --------------------------------------------------------------------------------

/**
 * Undo steps, run in reverse order of adding, once: by run() at the end (the async variant), or
 * by the process exit hook (the sync one) when run.ts exits on Ctrl-C before run() got to them.
 */
class Cleanup {
  private steps: Array<{ sync: () => void; async?: () => Promise<void> }> = [];
  private readonly onExit = () => this.steps.reverse().forEach((s) => tryIt(s.sync));
  constructor() {
    process.once('exit', this.onExit);
  }
  add(sync: () => void, async?: () => Promise<void>): void {
    this.steps.push({ sync, async });
  }
  async run(): Promise<void> {
    process.off('exit', this.onExit);
    const steps = this.steps.reverse();
    this.steps = [];
    for (const step of steps) {
      try {
        await (step.async ?? step.sync)();
      } catch (error) {
        console.error(`  store-backends: cleanup step failed: ${String(error)}`);
      }
    }
  }
}

function tryIt(f: () => void): void {
  try {
    f();
  } catch {
    // best effort on exit
  }
}

function shuffled<T>(items: T[]): T[] {
  const a = [...items];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}
