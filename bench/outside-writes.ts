// (f) Outside writes: another service writes to MongoDB with the driver, not through the
// gateway; how soon do subscribed devices see it?
//
// N ~1 KB tasks are inserted with the driver before the gateway starts (it adopts them), all
// owned by one user. Then, for each kind of write and rate, K clients of that user subscribe to
// `streamTasks` exactly as in the fan-out benchmark (fanout-clients.ts: plain graphql-ws, one
// socket each), and a driver writes at W writes/s for the measuring time:
//  - update: `updateOne({ _id }, { $set: { title } })` on an existing document (`title` is
//    @queryable), each write a different document, in a random order over the collection;
//  - insert: `insertOne` of a new task.
// The title carries the epoch time taken just before the driver call (`m:<ms>`, stampTitle), so
// a client's latency for a document is its arrival time minus that. The gateway learns of the
// writes through FerretDB's oplog (store/outside-changes.ts), repairs their metadata
// (sync/reconcile.ts), and its change feed delivers them.
//
// Limits, same run, same writes: the driver's own time to acknowledge each write (in the
// gateway's rows too), and, with the gateway stopped, the "bare" path: a driver that reads
// local.oplog.rs the way the gateway's oplog reader does (every 25 ms, or back to back while a
// read takes longer) and notes when each write's entry appears.
//
// The writer keeps at most WRITER_IN_FLIGHT writes outstanding, like a service with a small
// connection pool: a store that cannot take W writes/s slows the writer down (the achieved rate
// is reported) instead of queueing calls that are then charged as latency.
import { MongoClient, Timestamp, type Collection } from 'mongodb';
import { pino } from 'pino';
import { startGateway, type Gateway } from '../gateway/server.ts';
import { clientsReady, spawnChild, type Child } from './child.ts';
import { BENCH_AUTH, benchToken, cpuSeconds, dropDatabase, epochMs, ferretdbPid, fmt, makeTask, markdownTable, latencyColumns, percentile, runId, sleep, storedTask, timeMethods, type LatencyColumns } from './common.ts';
import { awaitDeliveries } from './fanout.ts';
import type { ClientsIn, ClientsOut } from './fanout-clients.ts';
import { stampTitle } from './fanout-targets.ts';

export interface OutsideWritesOptions {
  mongoUri: string;
  clients: number;
  rates: number[];
  seconds: number;
  /** Tasks in the collection before the measured writes (each update edits a different one). */
  documents: number;
  /** Child processes the clients are spread over. */
  clientProcesses: number;
}

export type WriteKind = 'update' | 'insert';

/** Latency columns: driver call until arrival; ack: the driver's own acknowledgement. */
export interface OutsideWritesRow extends LatencyColumns {
  path: 'gateway' | 'oplog';
  kind: WriteKind;
  targetRate: number;
  /** Acknowledged writes / (last acknowledgement − first call). */
  achievedRate: number;
  /** Measured writes acknowledged. */
  writes: number;
  /** Subscribed clients (0: the oplog row). */
  clients: number;
  expected: number;
  delivered: number;
  deliveriesPerSec: number;
  docsPerMessage: number;
  /**
   * Gateway rows: p50 from the driver call until the gateway's repair of the document began (its
   * oplog reader reported it), until that repair resolved (metadata written), and until the
   * change feed handed it to subscribers. The rest of `p50` is the fan-out.
   */
  stages?: { detected: number; repaired: number; emitted: number };
  /** FerretDB's CPU over the measured writes, in cores (NaN: not a FerretDB of ours). */
  storeCores: number;
  /** This process's CPU (the gateway and the writer; the oplog reader in the oplog rows). */
  benchCores: number;
  /**
   * This process's CPU per write, µs, from the first measured write until everything it caused
   * was done: the driver write and, for the gateway, its repair and fan-out to every client (the
   * gateway's cost per outside change); for the limit, the write and reading its oplog entry.
   */
  benchMicrosPerWrite: number;
  /** Full comparison passes the gateway started during the scenario (its oplog position was lost). */
  fullPasses: number;
  /** Times the bare oplog reader found its position trimmed away. */
  oplogLost: number;
  errors: number;
}

export interface OutsideWritesResult {
  rows: OutsideWritesRow[];
  documents: number;
  /** Seeding and the adoption at the gateway's start (info). */
  seedDocsPerSec: number;
  adoptionSeconds: number;
  source: string;
}

const BENCH_USER = 'bench-outside-writer';
const WRITER_IN_FLIGHT = 8;
const WARMUP_SECONDS = 1;
/** The gateway's oplog reader's interval (store/outside-changes.ts, pollIntervalMs default). */
const OPLOG_POLL_MS = 25;
/** As the gateway's reader: entries may commit out of `ts` order, so each read looks back this far. */
const REORDER_WINDOW = 2n << 32n;
/** A full pass (the gateway lost its oplog position) can hold deliveries back for many seconds. */
const STALL_MS = 30_000;
/** Longest wait for the gateway to have nothing left to read between scenarios. */
const QUIESCE_MS = 600_000;

type ClientsChild = Child<ClientsIn, ClientsOut>;

export async function runOutsideWrites(options: OutsideWritesOptions): Promise<OutsideWritesResult> {
  const run = runId();
  const database = `bench_outside_${run}`;
  // A second client for the writer: its own pool, as another service has.
  const writerClient = new MongoClient(options.mongoUri, { maxPoolSize: WRITER_IN_FLIGHT });
  const ferret = ferretdbPid(options.mongoUri);
  try {
    await writerClient.connect();
    const tasks = writerClient.db(database).collection<Record<string, unknown>>('tasks');
    const n = options.documents;
    const seedStart = performance.now();
    for (let i = 0; i < n; i += 1_000) {
      await tasks.insertMany(Array.from({ length: Math.min(1_000, n - i) }, (_, j) => storedTask(makeTask(i + j, run, `Task ${i + j}`, BENCH_USER))), { ordered: false });
    }
    const seedDocsPerSec = n / ((performance.now() - seedStart) / 1_000);
    console.error(`  outside-writes: seeded ${fmt(n)} tasks with the driver (${fmt(seedDocsPerSec)} docs/s)`);

    // Each update edits a different document, spread over the collection.
    const order = shuffled(n);
    let nextDoc = 0;
    const pickDoc = () => {
      if (nextDoc === n) console.error('  outside-writes: more updates than documents; starting over (raise --outside-docs)');
      return `bench-${run}-${String(order[nextDoc++ % n]).padStart(7, '0')}`;
    };
    let inserted = 0;
    const write = (kind: WriteKind, phase: 'w' | 'm') => (stamp: number) => {
      const title = stampTitle(phase, stamp);
      if (kind === 'update') {
        const id = pickDoc();
        return { id, done: tasks.updateOne({ _id: id as never }, { $set: { title } }) };
      }
      const doc = storedTask(makeTask(n + inserted, `${run}-ins`, title, BENCH_USER));
      inserted++;
      return { id: doc._id as string, done: tasks.insertOne(doc) };
    };

    const rows: OutsideWritesRow[] = [];
    const scenarios = (['update', 'insert'] as const).flatMap((kind) => options.rates.map((rate) => ({ kind, rate })));

    // The gateway's rows: one gateway for all of them (adoption of N at its start is not measured here).
    const gatewayStart = performance.now();
    // Its warnings (e.g. the oplog position lost) go to stderr with the progress, not into the tables.
    const gateway = await startGateway({ mongoUri: options.mongoUri, database, port: 0, logger: pino({ level: 'warn' }, pino.destination(2)), auth: BENCH_AUTH });
    let source = 'unknown';
    let adoptionSeconds = Number.NaN;
    try {
      await gateway.outsideWrites.settled();
      adoptionSeconds = (performance.now() - gatewayStart) / 1_000;
      const status = gateway.outsideWrites.status();
      source = status.source;
      const pass = status.passes.tasks!;
      if (pass.state !== 'done' || pass.counts.adopted !== n || status.invalidDocuments.tasks !== 0) {
        throw new Error(`adoption of the seeded tasks did not go as expected: ${JSON.stringify(status)}`);
      }
      console.error(`  outside-writes: gateway adopted ${fmt(n)} tasks in ${fmt(adoptionSeconds, 1)} s; outside changes through: ${source}`);
      const quiet = await quiesce(gateway);
      console.error(`  outside-writes: change feed caught up with the adoption ${fmt(quiet, 1)} s later`);
      const token = await benchToken(BENCH_USER);
      for (const { kind, rate } of scenarios) {
        const row = await gatewayScenario(gateway, token, kind, rate, write, options, ferret);
        rows.push(row);
        console.error(`  outside-writes gateway ${kind} ${rate}/s: ${fmt(row.achievedRate)} writes/s, ${fmt(row.deliveriesPerSec)} deliveries/s, p50 ${fmt(row.p50, 1)} ms, p99 ${fmt(row.p99, 1)} ms, ${row.fullPasses} full passes`);
      }
    } finally {
      await gateway.stop();
    }

    // The bare path, gateway stopped: the same kinds of writes, seen in the oplog.
    const oplog = writerClient.db('local').collection<OplogEntry>('oplog.rs');
    for (const { kind, rate } of scenarios) {
      const row = await oplogScenario(oplog, `${database}.tasks`, kind, rate, write, options, ferret);
      rows.push(row);
      console.error(`  outside-writes oplog ${kind} ${rate}/s: ${fmt(row.achievedRate)} writes/s, p50 ${fmt(row.p50, 1)} ms, p99 ${fmt(row.p99, 1)} ms`);
    }
    const order2 = (r: OutsideWritesRow) => `${r.kind === 'update' ? 0 : 1}:${String(r.targetRate).padStart(8, '0')}:${r.path === 'gateway' ? 0 : 1}`;
    rows.sort((a, b) => (order2(a) < order2(b) ? -1 : 1));
    return { rows, documents: n, seedDocsPerSec, adoptionSeconds, source };
  } finally {
    await writerClient.close();
    await dropDatabase(options.mongoUri, database).catch(() => {});
  }
}

type WriteFn = (kind: WriteKind, phase: 'w' | 'm') => (stamp: number) => { id: string; done: Promise<unknown> };

async function gatewayScenario(gateway: Gateway, token: string, kind: WriteKind, rate: number, write: WriteFn, options: OutsideWritesOptions, ferret: number | undefined): Promise<OutsideWritesRow> {
  const clients = options.clients;
  const share = (p: number) => Math.floor(clients / options.clientProcesses) + (p < clients % options.clientProcesses ? 1 : 0);
  const children: ClientsChild[] = Array.from({ length: options.clientProcesses }, (_, p) =>
    spawnChild<ClientsIn, ClientsOut>('fanout-clients.ts', ['--kind', 'graphql-ws', '--url', gateway.wsUrl, '--token', token, '--clients', String(share(p))]),
  );
  const passes = watchPasses(gateway);
  const stages = watchStages(gateway);
  const { store } = gateway.collections.get('tasks')!;
  const storeTime = timeMethods({ store: store as never, sequencer: store.sequencer as never }, { store: ['readRaw', 'writeMany'], sequencer: ['allocate', 'horizon'] });
  try {
    await Promise.all(children.map(clientsReady));
    await writePhase(rate, WARMUP_SECONDS, write(kind, 'w'));
    await sleep(500);
    const cpu = cpuMeter(ferret);
    const phase = await writePhase(rate, options.seconds, write(kind, 'm'), (id, stamp) => stages.expect(id, stamp));
    const [storeCores, benchCores] = cpu();
    const expected = phase.acks.length * clients;
    await awaitDeliveries(children, expected, STALL_MS);
    const reports = await Promise.all(children.map((c) => (c.send({ type: 'report' }), c.next('report'))));
    const firstError = reports.find((r) => r.firstError)?.firstError;
    if (firstError) console.error(`  outside-writes: client error: ${firstError}`);
    await quiesce(gateway);
    const benchMicrosPerWrite = cpu.ownMicros() / Math.max(1, phase.acks.length);
    console.error(`  outside-writes gateway ${kind} ${rate}/s: time in the store's calls (overlapping): ${storeTime.stop()}`);

    const latencies: number[] = [];
    for (const r of reports) r.sentAt.forEach((sent, i) => latencies.push(r.receivedAt[i]! - sent));
    const delivered = reports.reduce((s, r) => s + r.delivered, 0);
    const lastDeliveryAt = Math.max(...reports.map((r) => r.lastDeliveryAt));
    return {
      path: 'gateway',
      ...writeColumns(kind, rate, phase),
      clients,
      expected,
      delivered,
      deliveriesPerSec: delivered / ((lastDeliveryAt - phase.firstCallAt) / 1_000),
      docsPerMessage: delivered / reports.reduce((s, r) => s + r.messages, 0),
      ...latencyColumns(latencies, phase.acks),
      stages: stages.p50(),
      storeCores,
      benchCores,
      benchMicrosPerWrite,
      fullPasses: passes.stop(),
      oplogLost: 0,
      errors: phase.failed + reports.reduce((s, r) => s + r.errors, 0),
    };
  } finally {
    passes.stop();
    stages.stop();
    storeTime.stop();
    await Promise.all(children.map((c) => c.stop()));
  }
}

async function oplogScenario(
  oplog: Collection<OplogEntry>,
  ns: string,
  kind: WriteKind,
  rate: number,
  write: WriteFn,
  options: OutsideWritesOptions,
  ferret: number | undefined,
): Promise<OutsideWritesRow> {
  const tail = new OplogTail(oplog, ns);
  await tail.start();
  try {
    await writePhase(rate, WARMUP_SECONDS, write(kind, 'w'));
    await sleep(500);
    const cpu = cpuMeter(ferret);
    const phase = await writePhase(rate, options.seconds, write(kind, 'm'), (id, stamp) => tail.expect(id, stamp));
    const [storeCores, benchCores] = cpu();
    // Until every acknowledged write was seen, or nothing new for a while.
    let last = -1;
    let lastChange = Date.now();
    while (tail.seen < phase.acks.length && Date.now() - lastChange < 5_000) {
      if (tail.seen !== last) [last, lastChange] = [tail.seen, Date.now()];
      await sleep(50);
    }
    const benchMicrosPerWrite = cpu.ownMicros() / Math.max(1, phase.acks.length);
    return {
      path: 'oplog',
      ...writeColumns(kind, rate, phase),
      clients: 0,
      expected: phase.acks.length,
      delivered: tail.seen,
      deliveriesPerSec: tail.seen / ((tail.lastSeenAt - phase.firstCallAt) / 1_000),
      docsPerMessage: Number.NaN,
      ...latencyColumns(tail.latencies(), phase.acks),
      storeCores,
      benchCores,
      benchMicrosPerWrite,
      fullPasses: 0,
      oplogLost: tail.lost,
      errors: phase.failed,
    };
  } finally {
    await tail.stop();
  }
}

/** The writer's columns of a row: what was asked, and what the store took. */
function writeColumns(kind: WriteKind, rate: number, phase: WritePhaseResult): Pick<OutsideWritesRow, 'kind' | 'targetRate' | 'achievedRate' | 'writes'> {
  return { kind, targetRate: rate, achievedRate: phase.acks.length / ((phase.lastAckAt - phase.firstCallAt) / 1_000), writes: phase.acks.length };
}

interface WritePhaseResult {
  /** Per acknowledged write: call to acknowledgement, ms. */
  acks: number[];
  failed: number;
  firstCallAt: number;
  lastAckAt: number;
}

/**
 * Writes at `rate` for `seconds`, each call due at k / rate, with at most WRITER_IN_FLIGHT
 * outstanding: when the store is slower, calls go out as earlier ones finish, and the phase ends
 * after `seconds` with fewer writes. `stamp` is taken just before each driver call.
 */
async function writePhase(
  rate: number,
  seconds: number,
  write: (stamp: number) => { id: string; done: Promise<unknown> },
  onCall?: (id: string, stamp: number) => void,
): Promise<WritePhaseResult> {
  const acks: number[] = [];
  let failed = 0;
  let lastAckAt = 0;
  const inFlight = new Set<Promise<void>>();
  const start = performance.now();
  const end = start + seconds * 1_000;
  const firstCallAt = epochMs();
  for (let k = 0; ; k++) {
    const wait = start + (k * 1_000) / rate - performance.now();
    // Behind schedule, still yield once, so that acknowledgements are timed when they arrive.
    await (wait > 0 ? sleep(wait) : new Promise((r) => setImmediate(r)));
    while (inFlight.size >= WRITER_IN_FLIGHT) await Promise.race(inFlight);
    if (performance.now() >= end) break;
    const stamp = epochMs();
    const { id, done } = write(stamp);
    onCall?.(id, stamp);
    const settled: Promise<void> = done.then(
      () => {
        const now = epochMs();
        acks.push(now - stamp);
        lastAckAt = Math.max(lastAckAt, now);
      },
      (error: unknown) => {
        if (failed++ === 0) console.error(`  outside-writes: a driver write failed: ${String(error)}`);
      },
    );
    inFlight.add(settled);
    void settled.finally(() => inFlight.delete(settled));
  }
  await Promise.all(inFlight);
  return { acks, failed, firstCallAt, lastAckAt };
}

interface OplogEntry {
  ts: Timestamp;
  op: string;
  ns: string;
  o?: { _id?: unknown };
  o2?: { _id?: unknown };
}

const big = (ts: Timestamp) => (BigInt(ts.t) << 32n) | BigInt(ts.i);

/**
 * The bare path: reads local.oplog.rs as the gateway's oplog reader does (store/outside-changes.ts:
 * entries newer than the last seen minus a reorder window, every OPLOG_POLL_MS or back to back),
 * and notes when the entry of each expected write shows up.
 */
class OplogTail {
  private position: bigint | undefined;
  private readonly seenTs = new Set<bigint>();
  private readonly sentAt = new Map<string, number>();
  private readonly arrivedAt = new Map<string, number>();
  private stopped = false;
  private loop: Promise<void> | undefined;
  lost = 0;
  lastSeenAt = 0;

  constructor(
    private readonly oplog: Collection<OplogEntry>,
    private readonly ns: string,
  ) {}

  get seen(): number {
    return this.arrivedAt.size;
  }

  expect(id: string, stamp: number): void {
    this.sentAt.set(id, stamp);
  }

  latencies(): number[] {
    return [...this.arrivedAt].map(([id, at]) => at - this.sentAt.get(id)!);
  }

  /** Resolves after a first read: what is in the oplog now is the past. */
  async start(): Promise<void> {
    await this.read();
    this.loop = (async () => {
      while (!this.stopped) {
        const began = performance.now();
        await this.read();
        await sleep(Math.max(OPLOG_POLL_MS, performance.now() - began));
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  private async read(): Promise<void> {
    const from = this.position === undefined ? undefined : this.position - REORDER_WINDOW;
    const entries = await this.oplog
      .find(from !== undefined && from > 0n ? { ts: { $gt: new Timestamp(from) } } : {}, {
        projection: { _id: 0, ts: 1, op: 1, ns: 1, 'o._id': 1, 'o2._id': 1 },
        batchSize: 5_000,
      })
      .toArray();
    const now = epochMs();
    if (this.position !== undefined && !entries.some((e) => big(e.ts) === this.position)) this.lost++;
    for (const e of entries) {
      const t = big(e.ts);
      if (this.position === undefined || t > this.position) this.position = t;
      if (e.ns !== this.ns || this.seenTs.has(t)) continue;
      this.seenTs.add(t);
      const id = e.op === 'u' ? e.o2?._id : e.o?._id;
      if (typeof id === 'string' && this.sentAt.has(id) && !this.arrivedAt.has(id)) {
        this.arrivedAt.set(id, now);
        this.lastSeenAt = now;
      }
    }
    if (this.position !== undefined) for (const t of this.seenTs) if (t <= this.position - REORDER_WINDOW) this.seenTs.delete(t);
  }
}

/**
 * When each measured write reached the gateway's stages: its repair called (the oplog reader or a
 * full pass reported the id), the repair resolved, the change feed emitted it. A measuring hook
 * on the collection's writer (the object the outside-writes follower calls) and a feed listener.
 */
function watchStages(gateway: Gateway): { expect(id: string, stamp: number): void; p50(): { detected: number; repaired: number; emitted: number }; stop(): void } {
  const { writer, feed } = gateway.collections.get('tasks')!;
  const sentAt = new Map<string, number>();
  const detected = new Map<string, number>();
  const repaired = new Map<string, number>();
  const emitted = new Map<string, number>();
  const note = (into: Map<string, number>, id: unknown, at: number) => {
    if (typeof id === 'string' && sentAt.has(id) && !into.has(id)) into.set(id, at);
  };
  const original = writer.reconcile; // the class's method: stop() deletes the wrapper below
  writer.reconcile = function (this: typeof writer, ids, known) {
    const at = epochMs();
    for (const id of ids) note(detected, id, at);
    const work = original.call(this, ids, known);
    void work.then(() => {
      const done = epochMs();
      for (const id of ids) note(repaired, id, done);
    }, () => {});
    return work;
  };
  const unsubscribe = feed.subscribe((batch) => {
    const at = epochMs();
    for (const doc of batch.documents) note(emitted, doc.id, at);
  });
  const p50 = (times: Map<string, number>) => percentile(Float64Array.from([...times].map(([id, at]) => at - sentAt.get(id)!)).sort(), 50);
  return {
    expect: (id, stamp) => void sentAt.set(id, stamp),
    p50: () => ({ detected: p50(detected), repaired: p50(repaired), emitted: p50(emitted) }),
    stop() {
      delete (writer as { reconcile?: unknown }).reconcile; // the class's method again
      unsubscribe();
    },
  };
}

/** Counts the full comparison passes the gateway starts from now until `stop()`. */
function watchPasses(gateway: Gateway): { stop(): number } {
  const seen = new Set<string>();
  const initial = gateway.outsideWrites.status().passes.tasks?.startedAt ?? null;
  const look = () => {
    const startedAt = gateway.outsideWrites.status().passes.tasks?.startedAt ?? null;
    if (startedAt && startedAt !== initial) seen.add(startedAt);
  };
  const timer = setInterval(look, 20);
  return {
    stop() {
      clearInterval(timer);
      look();
      return seen.size;
    },
  };
}

/**
 * CPU used from now until the returned function is called, in cores: [FerretDB, this process];
 * `ownMicros()`: this process's CPU from now until it is called, in µs.
 */
function cpuMeter(ferret: number | undefined): (() => [number, number]) & { ownMicros: () => number } {
  const wallStart = performance.now();
  const storeStart = cpuSeconds(ferret);
  const ownStart = process.cpuUsage();
  const ownMicros = () => {
    const own = process.cpuUsage(ownStart);
    return own.user + own.system;
  };
  return Object.assign(
    (): [number, number] => {
      const wall = (performance.now() - wallStart) / 1_000;
      return [(cpuSeconds(ferret) - storeStart) / wall, ownMicros() / 1e6 / wall];
    },
    { ownMicros },
  );
}

/**
 * Until no full pass runs and the change feed has read everything sequenced (adoption, repairs),
 * twice in a row a second apart, so that a scenario starts with nothing left over from the one
 * before. Returns the seconds it took (at most QUIESCE_MS).
 */
async function quiesce(gateway: Gateway): Promise<number> {
  const { feed, store } = gateway.collections.get('tasks')!;
  const began = performance.now();
  for (let quietRounds = 0; quietRounds < 2 && performance.now() - began < QUIESCE_MS; ) {
    await gateway.outsideWrites.settled();
    const horizon = await store.sequencer.horizon();
    const caughtUp = feed.checkpoint.seq >= horizon;
    quietRounds = caughtUp ? quietRounds + 1 : 0;
    await sleep(caughtUp ? 1_000 : 100);
  }
  return (performance.now() - began) / 1_000;
}

/** 0..n-1 in a random order. */
function shuffled(n: number): Uint32Array {
  const order = Uint32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

export function outsideWritesTable(result: OutsideWritesResult): string {
  const name = (r: OutsideWritesRow) =>
    r.path === 'gateway' ? `Tributary: driver ${r.kind} → ${fmt(r.clients)} subscribed clients` : `limit: driver ${r.kind} → its entry read from local.oplog.rs (no gateway)`;
  return markdownTable(
    ['path', 'writes/s target', 'writes/s achieved', 'deliveries/s', 'delivered', 'docs / message', 'p50 ms', 'p99 ms', 'max ms', 'driver ack p50 / p99 ms', 'p50 ms to: repair begins / metadata written / feed emits', 'CPU cores: FerretDB / bench process', 'bench process CPU µs / write, until done', 'full passes', 'errors'],
    result.rows.map((r) => [
      name(r),
      fmt(r.targetRate),
      fmt(r.achievedRate),
      fmt(r.deliveriesPerSec),
      `${fmt(r.delivered)} / ${fmt(r.expected)}`,
      r.path === 'gateway' ? fmt(r.docsPerMessage, 2) : '',
      fmt(r.p50, 1),
      fmt(r.p99, 1),
      fmt(r.max, 1),
      `${fmt(r.ackP50, 1)} / ${fmt(r.ackP99, 1)}`,
      r.stages ? `${fmt(r.stages.detected, 0)} / ${fmt(r.stages.repaired, 0)} / ${fmt(r.stages.emitted, 0)}` : '',
      `${fmt(r.storeCores, 2)} / ${fmt(r.benchCores, 2)}`,
      fmt(r.benchMicrosPerWrite, 0),
      r.path === 'gateway' ? fmt(r.fullPasses) : r.oplogLost > 0 ? `(position lost ${r.oplogLost}×)` : '',
      fmt(r.errors),
    ]),
  );
}
