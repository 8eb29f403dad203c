// (b) Live fan-out: one writer, K subscribed clients, W writes per second.
//
// The gateway, the bare-yoga and plain-ws servers run in this process (fanout-targets.ts); the
// clients run in child processes (fanout-clients.ts), so the servers' event loop does not also
// carry the load. Each write stamps the time it was due in `title`; the clients report, per
// delivered document, when it arrived. For the gateway a write is `writer.push` of one new ~1 KB task, so
// the latency covers the MongoDB write, the change-feed read and the fan-out; for the limits it
// is a publish of the same document in the same event shape.
import { clientsReady, spawnChild, type Child } from './child.ts';
import { epochMs, fmt, latencyColumns, makeTask, markdownTable, percentile, runId, sleep, type LatencyColumns } from './common.ts';
import type { ClientsIn, ClientsOut } from './fanout-clients.ts';
import { stampTitle, TARGETS, type RunningTarget, type Target } from './fanout-targets.ts';

export interface FanoutOptions {
  mongoUri: string;
  clients: number[];
  rates: number[];
  seconds: number;
  /** Child processes the clients are spread over. */
  clientProcesses: number;
}

/** Latency columns: write due until arrival; ack: until the server accepted the write (gateway: writer.push resolved). */
export interface FanoutRow extends LatencyColumns {
  server: string;
  clients: number;
  rate: number;
  expected: number;
  delivered: number;
  deliveriesPerSec: number;
  /** Documents per stream event received (> 1 when the gateway's change feed batched writes). */
  docsPerMessage: number;
  /** From the start of the fan-out (gateway: change feed emitted the write) to the client. */
  fanoutP50: number;
  fanoutP99: number;
  /** This process's CPU (the server; the writes too: one per `clients` deliveries) per delivery, µs. */
  cpuMicrosPerDelivery: number;
  errors: number;
}

type ClientsChild = Child<ClientsIn, ClientsOut>;
type Report = Extract<ClientsOut, { type: 'report' }>;

const WARMUP_SECONDS = 1;
/** Give up waiting for stragglers after this long without a new delivery. */
const STALL_MS = 3_000;

export async function runFanout(options: FanoutOptions): Promise<FanoutRow[]> {
  const rows: FanoutRow[] = [];
  // Servers alternate within each (clients, rate) pair, so drift in the machine's load hits all three.
  for (const clients of options.clients) {
    for (const rate of options.rates) {
      for (const target of TARGETS) {
        const server = await target.start(options.mongoUri);
        try {
          const row = await scenario(target, server, clients, rate, options);
          rows.push(row);
          console.error(`  fanout ${target.name}, ${clients} clients, ${rate} writes/s: ${fmt(row.deliveriesPerSec)} deliveries/s, p99 ${fmt(row.p99, 1)} ms`);
        } finally {
          await server.stop();
        }
      }
    }
  }
  return rows;
}

export async function scenario(target: Target, server: RunningTarget, clients: number, rate: number, options: FanoutOptions): Promise<FanoutRow> {
  const share = (p: number) => Math.floor(clients / options.clientProcesses) + (p < clients % options.clientProcesses ? 1 : 0);
  const args = ['--kind', target.kind, '--url', server.url, ...(server.token ? ['--token', server.token] : [])];
  const children = Array.from({ length: options.clientProcesses }, (_, p) =>
    spawnChild<ClientsIn, ClientsOut>('fanout-clients.ts', [...args, '--clients', String(share(p))]),
  );
  try {
    await Promise.all(children.map(clientsReady));
    const writer = new OpenLoopWriter(server, rate);
    await writer.write(Math.max(1, WARMUP_SECONDS * rate), 'w');
    await sleep(200);
    const firstSendAt = epochMs();
    const cpuBefore = process.cpuUsage();
    const writes = Math.round(rate * options.seconds);
    const { acksMs, failed } = await writer.write(writes, 'm');
    const expected = (writes - failed) * clients;
    await awaitDeliveries(children, expected);
    const cpu = process.cpuUsage(cpuBefore);

    const reports = await Promise.all(children.map((c) => (c.send({ type: 'report' }), c.next('report'))));
    const firstError = reports.find((r) => r.firstError)?.firstError;
    if (firstError) console.error(`  ${target.name}: client error: ${firstError}`);
    const row = summarize(target, server, clients, rate, expected, firstSendAt, reports, acksMs, failed);
    return { ...row, cpuMicrosPerDelivery: (cpu.user + cpu.system) / Math.max(1, row.delivered) };
  } finally {
    await Promise.all(children.map((c) => c.stop()));
  }
}

/** Writes at a fixed rate whether or not earlier writes finished (open loop), as users would. */
export class OpenLoopWriter {
  private seq = 0;
  private readonly run = runId();

  constructor(
    private readonly server: RunningTarget,
    private readonly rate: number,
  ) {}

  async write(count: number, phase: 'w' | 'm'): Promise<{ acksMs: number[]; failed: number }> {
    const acksMs: number[] = [];
    let failed = 0;
    const pending: Promise<void>[] = [];
    const start = performance.now();
    const epochStart = epochMs();
    for (let k = 0; k < count; k++) {
      const offset = (k * 1_000) / this.rate;
      const wait = start + offset - performance.now();
      // Behind schedule, still yield once: a server takes writes as I/O events between which it
      // flushes sockets and runs callbacks; a tight loop would stall both (and the ack clock).
      await (wait > 0 ? sleep(wait) : new Promise((r) => setImmediate(r)));
      // Stamped with the time it was due, not the time it went out: when a saturated server
      // delays this loop, the delay counts as latency (no "coordinated omission").
      const dueAt = epochStart + offset;
      const doc = makeTask(this.seq, this.run, stampTitle(phase, dueAt), this.server.ownerId);
      pending.push(
        this.server.write(doc, this.seq++).then(
          () => void acksMs.push(epochMs() - dueAt),
          () => void failed++,
        ),
      );
    }
    await Promise.all(pending);
    return { acksMs, failed };
  }
}

/** Until every delivery arrived, or nothing arrived for STALL_MS (the row then shows the shortfall). */
export async function awaitDeliveries(children: ClientsChild[], expected: number, stallMs = STALL_MS): Promise<void> {
  let last = -1;
  let lastChange = Date.now();
  for (;;) {
    const progress = await Promise.all(children.map((c) => (c.send({ type: 'progress' }), c.next('progress'))));
    const delivered = progress.reduce((sum, p) => sum + p.delivered, 0);
    if (delivered >= expected) return;
    if (delivered !== last) [last, lastChange] = [delivered, Date.now()];
    if (Date.now() - lastChange > stallMs) return;
    await sleep(100);
  }
}

function summarize(
  target: Target,
  server: RunningTarget,
  clients: number,
  rate: number,
  expected: number,
  firstSendAt: number,
  reports: Report[],
  acksMs: number[],
  failedWrites: number,
): Omit<FanoutRow, 'cpuMicrosPerDelivery'> {
  const total: number[] = [];
  const fanout: number[] = [];
  for (const r of reports) {
    r.sentAt.forEach((sent, i) => {
      const received = r.receivedAt[i]!;
      total.push(received - sent);
      const started = server.fanoutStartedAt(sent);
      if (started !== undefined) fanout.push(received - started);
    });
  }
  const fanoutLatency = Float64Array.from(fanout).sort();
  const sum = (pick: (r: Report) => number) => reports.reduce((n, r) => n + pick(r), 0);
  const delivered = sum((r) => r.delivered);
  const lastDeliveryAt = Math.max(...reports.map((r) => r.lastDeliveryAt));
  return {
    server: target.name,
    clients,
    rate,
    expected,
    delivered,
    deliveriesPerSec: delivered / ((lastDeliveryAt - firstSendAt) / 1_000),
    docsPerMessage: delivered / sum((r) => r.messages),
    ...latencyColumns(total, acksMs),
    fanoutP50: percentile(fanoutLatency, 50),
    fanoutP99: percentile(fanoutLatency, 99),
    errors: failedWrites + sum((r) => r.errors),
  };
}

export function fanoutTable(rows: FanoutRow[]): string {
  return markdownTable(
    ['server', 'clients', 'writes/s', 'deliveries/s', 'delivered', 'docs / message', 'p50 ms', 'p99 ms', 'max ms', 'write ack p50 / p99 ms', 'fan-out p50 / p99 ms', 'server CPU µs / delivery', 'errors'],
    rows.map((r) => [
      r.server,
      fmt(r.clients),
      fmt(r.rate),
      fmt(r.deliveriesPerSec),
      `${fmt(r.delivered)} / ${fmt(r.expected)}`,
      fmt(r.docsPerMessage, 2),
      fmt(r.p50, 1),
      fmt(r.p99, 1),
      fmt(r.max, 1),
      `${fmt(r.ackP50, 1)} / ${fmt(r.ackP99, 1)}`,
      `${fmt(r.fanoutP50, 1)} / ${fmt(r.fanoutP99, 1)}`,
      fmt(r.cpuMicrosPerDelivery, 1),
      fmt(r.errors),
    ]),
  );
}
