// (g) Adoption: a gateway started on a database that other services filled.
//
// N tasks (~500 bytes of BSON each, schema.graphql's fields) are inserted with the driver, no
// gateway running. Then, against the same data in the same run:
//  - limit: the driver reading the whole collection, find({}) with batchSize 1000: what the store
//    can deliver at all, and the first half of what a full pass does;
//  - Tributary: a gateway (alone in a child process, adoption-server.ts) started on the database;
//    its full comparison pass (sync/outside-writes.ts) reads every document, finds no metadata
//    and adopts each one (sync/reconcile.ts: sequence, stamps, metadata insert). Its time is
//    the pass's own, from `/ready` (startedAt to finishedAt of `passes.tasks`), polled as an
//    operator would; also from the startGateway() call to the pass being done.
// While the pass runs, a device's requests are timed now and then (a lookup `task(id)` and a
// pull of 10), and again once it is done: whether the gateway keeps serving during adoption.
// The gateway's peak RSS (getrusage) and the CPU time of it and of FerretDB are reported too.
import { BSON, MongoClient } from 'mongodb';
import { loadModel } from '../protocol/model.ts';
import { syncOperations } from '../protocol/operations.ts';
import { spawnChild } from './child.ts';
import { benchToken, cpuSeconds, dropDatabase, epochMs, ferretdbPid, fmt, makeTask, markdownTable, mib, runId, SCHEMA, sleep, storedTask } from './common.ts';
import type { AdoptionServerIn, AdoptionServerOut } from './adoption-server.ts';
import type { PassStatus } from '../gateway/sync/outside-writes.ts';

export interface AdoptionOptions {
  mongoUri: string;
  documents: number[];
}

export interface Probe {
  /** Documents the pass had read when the probe started (NaN: after the pass). */
  passRead: number;
  lookupMs: number;
  /** Whether the lookup found the document (not yet adopted: null). */
  found: boolean;
  pullMs: number;
  pulled: number;
  errors: string[];
}

export interface AdoptionResult {
  documents: number;
  bsonBytesPerDoc: number;
  seedDocsPerSec: number;
  rawReadDocsPerSec: number;
  passSeconds: number;
  passDocsPerSec: number;
  /** From the startGateway() call until the pass was seen done on /ready. */
  startToDoneSeconds: number;
  adopted: number;
  invalid: number;
  rssAtStart: number;
  peakRss: number;
  /** CPU over the pass, in cores. */
  gatewayCores: number;
  storeCores: number;
  during: Probe[];
  after: Probe[];
  /** /ready samples: seconds since the pass began, documents read (for the rate over time). */
  progress: Array<[number, number]>;
  /** Changes sequenced but not yet read by the change feed when the pass was done. */
  feedBehindAtDone: number;
  /** Seconds after the pass until the change feed had read every adopted document (NaN: not within FEED_WAIT). */
  feedCaughtUpAfter: number;
}

const SEED_BATCH = 1_000;
/** Characters of description that make a task ~500 bytes of BSON. */
const DESCRIPTION_CHARS = 100;
const PROBE_USER = 'user-0';
/** First probe this long after start, then every PROBE_EVERY_MS while the pass runs. */
const FIRST_PROBE_MS = 500;
const PROBE_EVERY_MS = 15_000;
/** A device's request that takes longer than this counts as not served. */
const PROBE_TIMEOUT_MS = 300_000;
/** How long to wait, after the pass, for the change feed to read what it adopted. */
const FEED_WAIT_MS = 600_000;

const tasksModel = loadModel(SCHEMA).collections.find((c) => c.name === 'tasks')!;
const ops = syncOperations(tasksModel);

export async function runAdoption(options: AdoptionOptions): Promise<AdoptionResult[]> {
  const results: AdoptionResult[] = [];
  for (const n of options.documents) results.push(await measure(options.mongoUri, n));
  return results;
}

async function measure(mongoUri: string, n: number): Promise<AdoptionResult> {
  const run = runId();
  const database = `bench_adopt_${run}`;
  const mongo = new MongoClient(mongoUri);
  const ferret = ferretdbPid(mongoUri);
  try {
    await mongo.connect();
    const tasks = mongo.db(database).collection<Record<string, unknown>>('tasks');
    const task = (i: number) => storedTask(makeTask(i, run, `Task ${i}`, `user-${i % 200}`, DESCRIPTION_CHARS));
    const bsonBytesPerDoc = Array.from({ length: 100 }, (_, i) => BSON.calculateObjectSize(task(i))).reduce((a, b) => a + b) / 100;

    const seedStart = performance.now();
    let lastLog = seedStart;
    for (let i = 0; i < n; i += SEED_BATCH) {
      await tasks.insertMany(Array.from({ length: Math.min(SEED_BATCH, n - i) }, (_, j) => task(i + j)), { ordered: false });
      if (performance.now() - lastLog > 30_000) {
        lastLog = performance.now();
        console.error(`  adoption ${fmt(n)}: seeded ${fmt(i + SEED_BATCH)}`);
      }
    }
    const seedDocsPerSec = n / ((performance.now() - seedStart) / 1_000);
    console.error(`  adoption ${fmt(n)}: seeded with the driver (${fmt(seedDocsPerSec)} docs/s, ~${fmt(bsonBytesPerDoc)} bytes of BSON each)`);

    const rawStart = performance.now();
    let read = 0;
    for await (const _ of tasks.find({}, { batchSize: 1_000 })) read++;
    if (read !== n) throw new Error(`raw read found ${read} of ${n} documents`);
    const rawReadDocsPerSec = n / ((performance.now() - rawStart) / 1_000);
    console.error(`  adoption ${fmt(n)}: raw read ${fmt(rawReadDocsPerSec)} docs/s`);

    // A task the probing user owns (i % 200 === 0), from the middle of the collection.
    const probeId = makeTask(Math.floor(n / 2 / 200) * 200, run).id;
    const result = await adopt(mongoUri, database, n, probeId, ferret);
    return { documents: n, bsonBytesPerDoc, seedDocsPerSec, rawReadDocsPerSec, ...result };
  } finally {
    await mongo.close();
    await dropDatabase(mongoUri, database).catch(() => {});
  }
}

async function adopt(mongoUri: string, database: string, n: number, probeId: string, ferret: number | undefined) {
  const server = spawnChild<AdoptionServerIn, AdoptionServerOut>('adoption-server.ts', ['--mongo', mongoUri, '--database', database]);
  try {
    // The gateway's start creates the queryable-field indexes on the documents already there.
    const started = await server.next('started', 3_600_000);
    const cpuStart = [cpuSeconds(server.pid), cpuSeconds(ferret)] as const;
    const wallStart = performance.now();
    const token = await benchToken(PROBE_USER);

    const readyUrl = new URL('/ready', started.httpUrl);
    const feedStatus = () => (server.send({ type: 'feed' }), server.next('feed'));
    const during: Probe[] = [];
    const progress: Array<[number, number]> = [];
    let nextProbeAt = started.listeningAt + FIRST_PROBE_MS;
    // One probe at a time, beside the polling (on a big collection a probe may take minutes).
    let probing: Promise<void> | null = null;
    let lastLog = Date.now();
    let pass: PassStatus;
    for (;;) {
      const ready = (await (await fetch(readyUrl)).json()) as { outsideWrites: { passes: Record<string, PassStatus>; invalidDocuments: Record<string, number> } };
      pass = ready.outsideWrites.passes.tasks!;
      if (pass.state === 'done' || pass.state === 'failed') break;
      if (pass.startedAt) progress.push([(Date.now() - Date.parse(pass.startedAt)) / 1_000, pass.read]);
      if (!probing && epochMs() >= nextProbeAt) {
        probing = probe(started.httpUrl, token, probeId, pass.read).then((p) => {
          during.push(p);
          probing = null;
          nextProbeAt = epochMs() + PROBE_EVERY_MS;
        });
      }
      if (Date.now() - lastLog > 30_000) {
        lastLog = Date.now();
        const feed = await feedStatus();
        const rss = (server.send({ type: 'memory' }), await server.next('memory')).rss;
        console.error(`  adoption ${fmt(n)}: pass read ${fmt(pass.read)}, adopted ${fmt(pass.counts.adopted)}; change feed at ${fmt(feed.position)} of ${fmt(feed.horizon)}; gateway RSS ${mib(rss)}`);
      }
      await sleep(250);
    }
    const doneSeenAt = epochMs();
    const wall = (performance.now() - wallStart) / 1_000;
    const gatewayCores = (cpuSeconds(server.pid) - cpuStart[0]) / wall;
    const storeCores = (cpuSeconds(ferret) - cpuStart[1]) / wall;
    if (pass.state !== 'done') throw new Error(`the full pass failed: ${JSON.stringify(pass)}`);
    await probing;
    server.send({ type: 'memory' });
    const memory = await server.next('memory');
    const ready = (await (await fetch(readyUrl)).json()) as { outsideWrites: { invalidDocuments: Record<string, number> } };
    const feedAtDone = await feedStatus();
    server.send({ type: 'diagnostics' });
    console.error(`  adoption ${fmt(n)}: during the pass, time in the store's calls (overlapping): ${(await server.next('diagnostics')).summary}`);
    const after: Probe[] = [];
    // Three probes once the pass is done (one on big collections, where each may take minutes).
    for (let i = 0; i < (n > 100_000 ? 1 : 3); i++) after.push(await probe(started.httpUrl, token, probeId, Number.NaN));
    let feedCaughtUpAfter = Number.NaN;
    for (;;) {
      const feed = await feedStatus();
      if (feed.position >= feedAtDone.horizon) {
        feedCaughtUpAfter = (epochMs() - doneSeenAt) / 1_000;
        break;
      }
      if (epochMs() - doneSeenAt > FEED_WAIT_MS) {
        console.error(`  adoption ${fmt(n)}: the change feed is still ${fmt(feedAtDone.horizon - feed.position)} changes behind ${FEED_WAIT_MS / 1_000} s after the pass`);
        break;
      }
      await sleep(250);
    }
    const passSeconds = (Date.parse(pass.finishedAt!) - Date.parse(pass.startedAt!)) / 1_000;
    console.error(`  adoption ${fmt(n)}: pass ${fmt(passSeconds, 1)} s (${fmt(pass.read / passSeconds)} docs/s), peak RSS ${mib(memory.peakRss)}`);
    return {
      passSeconds,
      passDocsPerSec: pass.read / passSeconds,
      startToDoneSeconds: (doneSeenAt - started.startCalledAt) / 1_000,
      adopted: pass.counts.adopted,
      invalid: ready.outsideWrites.invalidDocuments.tasks ?? 0,
      rssAtStart: started.rssAtStart,
      peakRss: memory.peakRss,
      gatewayCores,
      storeCores,
      during,
      after,
      progress,
      feedBehindAtDone: feedAtDone.horizon - feedAtDone.position,
      feedCaughtUpAfter,
    };
  } finally {
    await server.stop(60_000);
  }
}

/** A device's requests while the pass runs: a lookup by id, and a first pull of 10. */
async function probe(httpUrl: string, token: string, id: string, passRead: number): Promise<Probe> {
  const errors: string[] = [];
  const post = async (query: string, variables: Record<string, unknown> = {}) => {
    const began = performance.now();
    try {
      const response = await fetch(httpUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ query, variables }),
        signal: AbortSignal.timeout(PROBE_TIMEOUT_MS),
      });
      const body = (await response.json()) as { data?: Record<string, any>; errors?: Array<{ message: string }> };
      if (body.errors?.length) errors.push(body.errors[0]!.message);
      return { ms: performance.now() - began, data: body.data };
    } catch (error) {
      errors.push(error instanceof Error && error.name === 'TimeoutError' ? `no answer within ${PROBE_TIMEOUT_MS / 1_000} s` : String(error));
      return { ms: Number.POSITIVE_INFINITY, data: undefined };
    }
  };
  const lookup = await post(`query { task(id: ${JSON.stringify(id)}) { id title } }`);
  const pull = await post(ops.pull, { checkpoint: null, limit: 10 });
  return {
    passRead,
    lookupMs: lookup.ms,
    found: Boolean(lookup.data?.task),
    pullMs: pull.ms,
    pulled: (pull.data?.[ops.fields.pull]?.documents as unknown[] | undefined)?.length ?? 0,
    errors,
  };
}

export function adoptionTable(results: AdoptionResult[]): string {
  const probes = (list: Probe[], pick: (p: Probe) => number) =>
    list.length === 0 ? 'none' : list.map((p) => (Number.isFinite(pick(p)) ? fmt(pick(p), 0) : `> ${PROBE_TIMEOUT_MS / 1_000} s`)).join(', ');
  return markdownTable(
    [
      'N',
      'BSON bytes / doc',
      'Tributary: full pass, docs/s',
      'limit: raw driver read, docs/s',
      '**pass / raw read**',
      'pass time',
      'start → done',
      'adopted',
      'gateway RSS at start / peak',
      'CPU cores during the pass: gateway / FerretDB',
      'during the pass: task(id) ms / pull(10) ms',
      'after: task(id) ms / pull(10) ms',
      'change feed behind at pass end / caught up after',
      '(info) seeding, insertMany docs/s',
    ],
    results.map((r) => [
      fmt(r.documents),
      fmt(r.bsonBytesPerDoc),
      fmt(r.passDocsPerSec),
      fmt(r.rawReadDocsPerSec),
      `**${fmt((r.passDocsPerSec / r.rawReadDocsPerSec) * 100)} %**`,
      duration(r.passSeconds),
      duration(r.startToDoneSeconds),
      `${fmt(r.adopted)}${r.invalid ? ` (${fmt(r.invalid)} invalid)` : ''}`,
      `${mib(r.rssAtStart)} / ${mib(r.peakRss)}`,
      `${fmt(r.gatewayCores, 2)} / ${fmt(r.storeCores, 2)}`,
      `${probes(r.during, (p) => p.lookupMs)} / ${probes(r.during, (p) => p.pullMs)}${r.during.some((p) => p.errors.length) ? ` (error: ${r.during.find((p) => p.errors.length)!.errors[0]})` : ''}`,
      `${probes(r.after, (p) => p.lookupMs)} / ${probes(r.after, (p) => p.pullMs)}`,
      `${fmt(r.feedBehindAtDone)} / ${Number.isFinite(r.feedCaughtUpAfter) ? duration(r.feedCaughtUpAfter) : `not within ${FEED_WAIT_MS / 1_000} s`}`,
      fmt(r.seedDocsPerSec),
    ]),
  );
}

/** The pass's read rate over time (from /ready), to see whether it slows down as it goes. */
export function adoptionProgress(results: AdoptionResult[]): string {
  return results
    .map((r) => {
      const marks = [0.1, 0.25, 0.5, 0.75, 0.9].map((f) => r.progress.find(([, read]) => read >= f * r.documents)).filter((m): m is [number, number] => m !== undefined);
      const rates = marks.map(([s, read], i) => {
        const [s0, r0] = i === 0 ? [0, 0] : marks[i - 1]!;
        return `${fmt(read)} read at ${fmt(s, 1)} s (${fmt((read - r0) / Math.max(s - s0, 0.001))} docs/s since the previous mark)`;
      });
      return `- N = ${fmt(r.documents)}: ${rates.length > 0 ? rates.join('; ') : 'too quick to sample'}.`;
    })
    .join('\n');
}

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return 'n/a';
  if (seconds < 120) return `${fmt(seconds, 1)} s`;
  return `${Math.floor(seconds / 60)} min ${fmt(seconds % 60, 0)} s`;
}
