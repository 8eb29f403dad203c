// `npm run bench [-- --quick] [-- --only initial-sync,fanout,memory]`: starts its own FerretDB
// (SQLite, temporary folder), runs the benchmarks and prints markdown tables, each with its
// comparison ("limit") rows measured in the same run. See bench/README.md.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { FERRETDB_VERSION, startEmbeddedFerretDB, type EmbeddedFerretDB } from '../gateway/store/embedded-ferretdb.ts';
import { fmt, ROOT } from './common.ts';
import { fanoutTable, runFanout } from './fanout.ts';
import { initialSyncTable, runInitialSync } from './initial-sync.ts';
import { memoryTable, runMemory } from './memory.ts';
import { runSubscriptionSwap, swapTable } from './subscription-swap.ts';
import { pushTable, runPush } from './push.ts';
import { outsideWritesTable, runOutsideWrites } from './outside-writes.ts';
import { adoptionProgress, adoptionTable, runAdoption } from './adoption.ts';
import { gatewayCostTable, runGatewayCost } from './gateway-cost.ts';
import { runStoreBackends, storeBackendsRatios, storeBackendsTable } from './store-backends.ts';
import { runScaleOut, scaleOutTable } from './scale-out.ts';

const BENCHMARKS = ['gateway-cost', 'initial-sync', 'fanout', 'scale-out', 'memory', 'subscription-swap', 'push', 'outside-writes', 'adoption'] as const;
// Only with --only: store-backends needs PostgreSQL installed and starts its own stores.
const OPTIONAL = ['store-backends'] as const;
type Benchmark = (typeof BENCHMARKS)[number] | (typeof OPTIONAL)[number];

const { values } = parseArgs({
  options: {
    only: { type: 'string' },
    quick: { type: 'boolean', default: false },
    'client-procs': { type: 'string', default: '1' },
    sizes: { type: 'string' },
    clients: { type: 'string' },
    rates: { type: 'string' },
    seconds: { type: 'string' },
    connections: { type: 'string' },
    'swap-size': { type: 'string' },
    'push-size': { type: 'string' },
    'cost-docs': { type: 'string' },
    'outside-rates': { type: 'string' },
    'outside-clients': { type: 'string' },
    'outside-docs': { type: 'string' },
    'adoption-docs': { type: 'string' },
    'scale-instances': { type: 'string' },
    'scale-clients': { type: 'string' },
    'scale-rate': { type: 'string' },
    'store-docs': { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});

if (values.help) {
  console.log(`usage: npm run bench -- [--quick] [--only ${[...BENCHMARKS, ...OPTIONAL].join('|')}[,...]] [--client-procs N]
  --quick          small sizes (whole run under ~2 minutes)
  --only           run only these benchmarks (comma-separated)
  --client-procs   child processes the fan-out clients are spread over (default 1)
  --sizes 10000,100000   initial-sync collection sizes
  --clients 100,1000     fan-out subscriber counts
  --rates 10,50          fan-out writes per second
  --seconds 5            fan-out and outside-writes measuring time per scenario
  --connections 1000     memory benchmark connections
  --swap-size 10000      documents each subscription query selects (subscription-swap)
  --push-size 10000      documents inserted, then edited (push)
  --cost-docs 10000      documents pulled, and rows pushed, per gateway-cost measurement
  --outside-rates 100,1000   driver writes per second (outside-writes)
  --outside-clients 100      subscribed clients (outside-writes)
  --outside-docs 10000       tasks in the collection before the driver's updates (outside-writes)
  --adoption-docs 100000     documents there before the gateway starts (adoption; comma-separated)
  --scale-instances 1,2,3    gateway processes on one store (scale-out)
  --scale-clients 300        subscribed clients, spread over them (scale-out)
  --scale-rate 20            writes per second, to the instances in turn (scale-out)
  --store-docs 10000         tasks written and read on each backend (store-backends: FerretDB on
                             SQLite vs on PostgreSQL; only with --only, needs \`apt-get install postgresql\`)
  MONGODB_URI      use this server instead of starting FerretDB`);
  process.exit(0);
}

const only = (values.only?.split(',') ?? BENCHMARKS) as Benchmark[];
const known: readonly string[] = [...BENCHMARKS, ...OPTIONAL];
for (const name of only) if (!known.includes(name)) throw new Error(`unknown benchmark "${name}"; one of ${known.join(', ')}`);
const quick = values.quick;
const list = (flag: string | undefined, fallback: number[]) => (flag ? flag.split(',').map(Number) : fallback);
const sizes = {
  initialSync: list(values.sizes, quick ? [2_000] : [10_000, 100_000]),
  fanout: {
    clients: list(values.clients, quick ? [100] : [100, 1_000]),
    rates: list(values.rates, [10, 50]),
    seconds: Number(values.seconds ?? (quick ? 3 : 5)),
  },
  memoryConnections: Number(values.connections ?? (quick ? 200 : 1_000)),
  swap: Number(values['swap-size'] ?? (quick ? 1_000 : 10_000)),
  push: Number(values['push-size'] ?? (quick ? 2_000 : 10_000)),
  costDocs: Number(values['cost-docs'] ?? (quick ? 2_000 : 10_000)),
  outside: {
    rates: list(values['outside-rates'], [100, 1_000]),
    clients: Number(values['outside-clients'] ?? 100),
    documents: Number(values['outside-docs'] ?? (quick ? 5_000 : 10_000)),
  },
  adoption: list(values['adoption-docs'], quick ? [10_000] : [100_000]),
  storeDocs: Number(values['store-docs'] ?? (quick ? 2_000 : 10_000)),
  scaleOut: {
    instances: list(values['scale-instances'], [1, 2, 3]),
    clients: Number(values['scale-clients'] ?? (quick ? 150 : 300)),
    rate: Number(values['scale-rate'] ?? 20),
  },
};
const clientProcesses = Number(values['client-procs']);
for (const n of [...sizes.initialSync, ...sizes.fanout.clients, ...sizes.fanout.rates, sizes.fanout.seconds, sizes.memoryConnections, sizes.swap, sizes.push, sizes.costDocs, ...sizes.outside.rates, sizes.outside.clients, sizes.outside.documents, ...sizes.adoption, sizes.storeDocs, ...sizes.scaleOut.instances, sizes.scaleOut.clients, sizes.scaleOut.rate, clientProcesses]) {
  if (!Number.isFinite(n) || n <= 0) throw new Error('sizes, clients, rates, seconds, connections and client-procs must be positive numbers');
}

/** The code measured: commit, and whether the working tree differed from it. */
function revision(): string {
  const git = (args: string[]) => execFileSync('git', args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  try {
    return `commit ${git(['rev-parse', '--short', 'HEAD'])}${git(['status', '--porcelain', '--untracked-files=no']) ? ' (+ uncommitted changes)' : ''}`;
  } catch {
    return 'commit unknown';
  }
}

let ferret: EmbeddedFerretDB | undefined;
let dataDir: string | undefined;
let stopping: Promise<void> | undefined;
/** Stops our FerretDB and removes its data, once (normal end, failure or Ctrl-C). */
const shutdown = () =>
  (stopping ??= (async () => {
    await ferret?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  })());
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  // process.exit then runs child.ts's exit hook, which kills any client or server children.
  process.once(signal, () => void shutdown().finally(() => process.exit(130)));
}

try {
  let mongoUri = process.env.MONGODB_URI ?? '';
  // store-backends starts its own stores; the shared one only for the others.
  if (!mongoUri && only.some((name) => name !== 'store-backends')) {
    dataDir = mkdtempSync(join(tmpdir(), 'tributary-bench-'));
    ferret = await startEmbeddedFerretDB({ dataDir });
    mongoUri = ferret.uri;
  }
  const store = ferret ? 'FerretDB (SQLite backend)' : mongoUri ? 'MONGODB_URI' : 'see below';
  console.log(`# Tributary benchmarks${quick ? ' (--quick)' : ''}\n`);
  console.log(`${new Date().toISOString()} · ${revision()} · Node ${process.version} · ${cpus().length} vCPU (${cpus()[0]?.model.trim()}) · store: ${store}\n`);

  if (only.includes('gateway-cost')) {
    const options = { mongoUri, documents: sizes.costDocs, repeats: 3 };
    console.log(`## Gateway CPU per document (the gateway process alone, whatever the store's speed)\n\n${gatewayCostTable(await runGatewayCost(options), options)}\n`);
  }
  if (only.includes('initial-sync')) {
    const results = await runInitialSync({ mongoUri, sizes: sizes.initialSync });
    console.log(`## Initial sync (~1 KB documents)\n\n${initialSyncTable(results)}\n`);
  }
  if (only.includes('fanout')) {
    const { clients, rates, seconds } = sizes.fanout;
    const rows = await runFanout({ mongoUri, clients, rates, seconds, clientProcesses });
    console.log(`## Live fan-out (one writer, ~1 KB documents, ${seconds} s per scenario)\n\n${fanoutTable(rows)}\n`);
  }
  if (only.includes('scale-out')) {
    const { instances, clients, rate } = sizes.scaleOut;
    const rows = await runScaleOut({ mongoUri, instances, clients, rate, seconds: sizes.fanout.seconds });
    console.log(`## Scale-out: live fan-out through 1, 2 and 3 gateway processes on one store (${fmt(clients)} clients spread over them, ${rate} writes/s to the instances in turn, ${sizes.fanout.seconds} s)\n\n${scaleOutTable(rows)}\n`);
  }
  if (only.includes('memory')) {
    const rows = await runMemory({ mongoUri, connections: sizes.memoryConnections });
    console.log(`## Memory per idle subscribed connection\n\n${memoryTable(rows)}\n`);
  }
  if (only.includes('subscription-swap')) {
    const rows = await runSubscriptionSwap({ mongoUri, size: sizes.swap });
    console.log(`## Flexible Sync: time to Complete after a subscription change\n\n${swapTable(rows)}\n`);
  }
  if (only.includes('push')) {
    const rows = await runPush({ mongoUri, documents: sizes.push });
    console.log(`## Pushes through rules, merge and write (${fmt(sizes.push)} ~1 KB documents, 100 rows per push, 4 in flight)\n\n${pushTable(rows)}\n`);
  }
  if (only.includes('outside-writes')) {
    const { rates, clients, documents } = sizes.outside;
    const result = await runOutsideWrites({ mongoUri, rates, clients, documents, seconds: sizes.fanout.seconds, clientProcesses });
    console.log(
      `## Outside writes: driver write → subscribed device (${fmt(documents)} ~1 KB tasks, ${sizes.fanout.seconds} s per scenario, outside changes through: ${result.source})\n\n${outsideWritesTable(result)}\n\n` +
        `(info) seeding with insertMany: ${fmt(result.seedDocsPerSec)} docs/s; the gateway's start until its adoption of them was done: ${fmt(result.adoptionSeconds, 1)} s\n`,
    );
  }
  if (only.includes('adoption')) {
    const results = await runAdoption({ mongoUri, documents: sizes.adoption });
    console.log(`## Adoption: a gateway started on documents other services wrote (~500-byte tasks)\n\n${adoptionTable(results)}\n\nThe pass's progress (from /ready):\n\n${adoptionProgress(results)}\n`);
  }
  if (only.includes('store-backends')) {
    const result = await runStoreBackends({ documents: sizes.storeDocs });
    console.log(
      'skipped' in result
        ? `## Store backends: FerretDB on SQLite vs on PostgreSQL\n\nskipped: ${result.skipped}\n`
        : `## Store backends: FerretDB ${FERRETDB_VERSION} on SQLite vs on PostgreSQL ${result.postgresVersion} (${fmt(sizes.storeDocs)} ~1 KB tasks, MongoDB driver, one at a time)\n\n${storeBackendsTable(result.phases)}\n\n${storeBackendsRatios(result.phases)}\n\n` +
            `(info) query plan of a find by _id: ${Object.entries(result.plans).map(([backend, plan]) => `${backend}: ${plan}`).join('; ')}\n`,
    );
  }
} finally {
  await shutdown();
}
