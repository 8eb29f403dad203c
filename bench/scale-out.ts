// Scale-out: live fan-out with 1, 2 and 3 gateway processes on one store, at the same load.
//
// Each instance is a real `gateway/main.ts` process; the clients (fanout-clients.ts, one child
// process per instance) connect straight to their instance, evenly spread. One writer pushes
// ~1 KB tasks at a fixed rate over HTTP, to the instances in turn, so with n instances (n-1)/n of
// each write's deliveries cross instances: the column "cross-instance" is the latency of those
// (the other instances learn of the commit from the store: store/commit-signal.ts), "same
// instance" of the others. The gateways' and FerretDB's CPU over the run (cores used) shows where
// this machine's cores limit it. The limit row is bare yoga + graphql-ws at the same load, in
// one process (fanout-targets.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import { loadModel } from '../protocol/model.ts';
import { syncOperations } from '../protocol/operations.ts';
import { freePort } from '../gateway/store/embedded-ferretdb.ts';
import { clientsReady, spawnChild, type Child } from './child.ts';
import { anonymousUser, cpuSeconds, dropDatabase, epochMs, ferretdbPid, fmt, insertRow, makeTask, markdownTable, percentile, ROOT, runId, SCHEMA, sleep } from './common.ts';
import { awaitDeliveries, OpenLoopWriter, scenario } from './fanout.ts';
import type { ClientsIn, ClientsOut } from './fanout-clients.ts';
import { TARGETS, type RunningTarget } from './fanout-targets.ts';

export interface ScaleOutOptions {
  mongoUri: string;
  instances: number[];
  clients: number;
  rate: number;
  seconds: number;
}

export interface ScaleOutRow {
  server: string;
  instances: number;
  delivered: number;
  expected: number;
  deliveriesPerSec: number;
  p50: number;
  p99: number;
  sameP50: number;
  sameP99: number;
  crossP50: number;
  crossP99: number;
  ackP50: number;
  /** CPU the gateway processes (or the limit's process) used, in cores, over the measured run. */
  gatewayCores: number;
  ferretdbCores: number;
  errors: number;
}

const push = syncOperations(loadModel(SCHEMA).collections.find((c) => c.name === 'tasks')!).push;

export async function runScaleOut(options: ScaleOutOptions): Promise<ScaleOutRow[]> {
  const rows: ScaleOutRow[] = [];
  for (const n of options.instances) {
    const row = await instancesScenario(n, options);
    rows.push(row);
    console.error(`  scale-out ${n} instance(s): ${fmt(row.deliveriesPerSec)} deliveries/s, p99 ${fmt(row.p99, 1)} ms, cross-instance p50 ${fmt(row.crossP50, 1)} ms`);
  }
  const limit = TARGETS.find((t) => t.name.startsWith('limit: bare yoga'))!;
  const server = await limit.start(options.mongoUri);
  try {
    const cpuBefore = process.cpuUsage();
    const began = Date.now();
    const r = await scenario(limit, server, options.clients, options.rate, { mongoUri: options.mongoUri, clients: [options.clients], rates: [options.rate], seconds: options.seconds, clientProcesses: 1 });
    const cpu = process.cpuUsage(cpuBefore);
    rows.push({
      server: r.server,
      instances: 1,
      delivered: r.delivered,
      expected: r.expected,
      deliveriesPerSec: r.deliveriesPerSec,
      p50: r.p50,
      p99: r.p99,
      sameP50: r.p50,
      sameP99: r.p99,
      crossP50: Number.NaN,
      crossP99: Number.NaN,
      ackP50: r.ackP50,
      gatewayCores: (cpu.user + cpu.system) / 1e6 / ((Date.now() - began) / 1_000),
      ferretdbCores: Number.NaN,
      errors: r.errors,
    });
  } finally {
    await server.stop();
  }
  return rows;
}

async function instancesScenario(n: number, options: ScaleOutOptions): Promise<ScaleOutRow> {
  const database = `bench_scaleout_${runId()}`;
  const ports = await Promise.all(Array.from({ length: n }, () => freePort()));
  const gateways: ChildProcess[] = [];
  const children: Array<Child<ClientsIn, ClientsOut>> = [];
  try {
    for (const port of ports) gateways.push(await startInstance(options.mongoUri, database, port));
    // The instances see each other at their next heartbeat (1 s): only then do they watch the store.
    await sleep(2_500);
    const httpUrls = ports.map((port) => `http://127.0.0.1:${port}/graphql`);
    const user = (await anonymousUser(httpUrls[0]!))!;
    const share = (i: number) => Math.floor(options.clients / n) + (i < options.clients % n ? 1 : 0);
    for (const [i, port] of ports.entries()) {
      children.push(spawnChild<ClientsIn, ClientsOut>('fanout-clients.ts', ['--kind', 'graphql-ws', '--url', `ws://127.0.0.1:${port}/graphql`, '--token', user.token, '--clients', String(share(i))]));
    }
    await Promise.all(children.map(clientsReady));

    /** Which instance each measured write went to, by the time it was due (its title). */
    const writtenTo = new Map<number, number>();
    const target: RunningTarget = {
      url: '',
      ownerId: user.userId,
      async write(doc, seq) {
        const instance = seq % n;
        writtenTo.set(Number(String(doc.title).slice(2)), instance);
        const response = await fetch(httpUrls[instance]!, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${user.token}` },
          body: JSON.stringify({ query: push, variables: { rows: [insertRow(doc)] } }),
        });
        const body = (await response.json()) as { errors?: unknown[]; data?: { pushTasks?: { rejected?: unknown[] } } };
        if (body.errors || (body.data?.pushTasks?.rejected?.length ?? 0) > 0) throw new Error(JSON.stringify(body.errors ?? body.data));
      },
      fanoutStartedAt: () => undefined,
      stop: async () => {},
    };
    const writer = new OpenLoopWriter(target, options.rate);
    await writer.write(Math.max(1, options.rate), 'w');
    await sleep(200);
    const pids = [...gateways.map((g) => g.pid), ferretdbPid(options.mongoUri)];
    const cpuBefore = pids.map(cpuSeconds);
    const firstSendAt = epochMs();
    const writes = Math.round(options.rate * options.seconds);
    const { acksMs, failed } = await writer.write(writes, 'm');
    const expected = (writes - failed) * options.clients;
    await awaitDeliveries(children, expected);
    const wallSeconds = (epochMs() - firstSendAt) / 1_000;
    const cpu = pids.map((pid, i) => cpuSeconds(pid) - cpuBefore[i]!);

    const reports = await Promise.all(children.map((c) => (c.send({ type: 'report' }), c.next('report'))));
    const all: number[] = [];
    const same: number[] = [];
    const cross: number[] = [];
    reports.forEach((report, instance) => {
      report.sentAt.forEach((sent, k) => {
        const latency = report.receivedAt[k]! - sent;
        all.push(latency);
        (writtenTo.get(sent) === instance ? same : cross).push(latency);
      });
    });
    const sorted = (values: number[]) => Float64Array.from(values).sort();
    const [allSorted, sameSorted, crossSorted] = [sorted(all), sorted(same), sorted(cross)];
    const delivered = reports.reduce((sum, r) => sum + r.delivered, 0);
    const lastDeliveryAt = Math.max(...reports.map((r) => r.lastDeliveryAt));
    return {
      server: `Tributary × ${n}`,
      instances: n,
      delivered,
      expected,
      deliveriesPerSec: delivered / ((lastDeliveryAt - firstSendAt) / 1_000),
      p50: percentile(allSorted, 50),
      p99: percentile(allSorted, 99),
      sameP50: percentile(sameSorted, 50),
      sameP99: percentile(sameSorted, 99),
      crossP50: percentile(crossSorted, 50),
      crossP99: percentile(crossSorted, 99),
      ackP50: percentile(sorted(acksMs), 50),
      gatewayCores: cpu.slice(0, n).reduce((a, b) => a + b, 0) / wallSeconds,
      ferretdbCores: cpu[n]! / wallSeconds,
      errors: failed + reports.reduce((sum, r) => sum + r.errors, 0),
    };
  } finally {
    await Promise.all(children.map((c) => c.stop()));
    await Promise.all(gateways.map((g) => stopInstance(g)));
    await dropDatabase(options.mongoUri, database);
  }
}

async function startInstance(mongoUri: string, database: string, port: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'gateway/main.ts'], {
    cwd: ROOT,
    env: { ...process.env, MONGODB_URI: mongoUri, TRIBUTARY_DATABASE: database, PORT: String(port), LOG_LEVEL: 'warn', TRIBUTARY_DRAIN_MS: '0' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`gateway on port ${port} exited (${child.exitCode})`);
    const ready = await fetch(`http://127.0.0.1:${port}/ready`).then((r) => r.ok, () => false);
    if (ready) return child;
    if (Date.now() > deadline) throw new Error(`gateway on port ${port} not ready within 60 s`);
    await sleep(100);
  }
}

async function stopInstance(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

export function scaleOutTable(rows: ScaleOutRow[]): string {
  return markdownTable(
    ['server', 'deliveries/s', 'delivered', 'p50 ms', 'p99 ms', 'same instance p50 / p99 ms', 'cross-instance p50 / p99 ms', 'write ack p50 ms', 'gateway cores', 'FerretDB cores', 'errors'],
    rows.map((r) => [
      r.server,
      fmt(r.deliveriesPerSec),
      `${fmt(r.delivered)} / ${fmt(r.expected)}`,
      fmt(r.p50, 1),
      fmt(r.p99, 1),
      `${fmt(r.sameP50, 1)} / ${fmt(r.sameP99, 1)}`,
      `${fmt(r.crossP50, 1)} / ${fmt(r.crossP99, 1)}`,
      fmt(r.ackP50, 1),
      fmt(r.gatewayCores, 2),
      fmt(r.ferretdbCores, 2),
      fmt(r.errors),
    ]),
  );
}
