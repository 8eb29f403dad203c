// Gateway cost (issue 16, point 1): the gateway process's own CPU time per document, which
// does not depend on how fast the store is. On FerretDB every throughput figure is bounded by the
// store; on MongoDB, which reads tens of thousands of documents per second, what the gateway
// spends per document decides how close to the store it gets.
//
// The server runs alone in a child process (gateway-cost-server.ts); this process sends the load
// over HTTP, as any client would, and reads the child's CPU time from /proc around each phase:
//  - per pulled document: every document pulled in pages of 1,000 (`pullTasks`, a first sync);
//  - per pushed row: unstamped inserts, 1,000 rows per `pushTasks`;
// next to two comparison rows: the same operations on bare graphql-yoga answering from memory
// (HTTP, GraphQL parsing, validation, execution and JSON), and on bare graphql-yoga whose
// resolvers use the bare driver (a find per page, an insertMany per push: what reading and
// writing the documents costs through the official driver, with nothing of the gateway's own).
import { syncOperations } from '../protocol/operations.ts';
import { getCollection, loadModel } from '../protocol/model.ts';
import { spawnChild } from './child.ts';
import type { CostServerIn, CostServerOut } from './gateway-cost-server.ts';
import { cpuSeconds, fmt, insertRow, makeTask, markdownTable, runId, SCHEMA, sleep } from './common.ts';

export interface GatewayCostOptions {
  mongoUri: string;
  /** Documents pulled, and rows pushed, per measurement. */
  documents: number;
  /** Measurements per figure (the median is reported). */
  repeats: number;
}

export interface GatewayCostRow {
  target: 'gateway' | 'yoga + driver' | 'bare yoga';
  /** CPU µs per pulled document (median), and its spread. */
  pullMicros: number[];
  pushMicros: number[];
}

const PAGE = 1_000;
const ops = syncOperations(getCollection(loadModel(SCHEMA), 'tasks'));

export async function runGatewayCost(options: GatewayCostOptions): Promise<GatewayCostRow[]> {
  const rows: GatewayCostRow[] = [];
  for (const target of ['gateway', 'driver', 'yoga'] as const) {
    const run = runId();
    const args = target === 'yoga' ? ['--target', 'yoga'] : ['--target', target, '--mongo', options.mongoUri, '--database', `bench_cost_${target}_${run}`];
    const server = spawnChild<CostServerIn, CostServerOut>('gateway-cost-server.ts', args);
    try {
      const { httpUrl } = await server.next('listening');
      server.send({ type: 'seed', n: options.documents, run });
      const { token, userId } = await server.next('seeded', 600_000);
      await settle(server.pid);
      const request = async (query: string, variables: Record<string, unknown>) => {
        const headers: Record<string, string> = { 'content-type': 'application/json' };
        if (token) headers.authorization = `Bearer ${token}`;
        const answer = (await (await fetch(httpUrl, { method: 'POST', headers, body: JSON.stringify({ query, variables }) })).json()) as { data?: Record<string, any>; errors?: unknown[] };
        if (answer.errors) throw new Error(`${target}: ${JSON.stringify(answer.errors).slice(0, 500)}`);
        return answer.data!;
      };
      // BENCH_CPU_PROF=<dir>: a V8 CPU profile of each phase's last measurement is written there.
      const profileDir = process.env.BENCH_CPU_PROF;
      const perDocument = async (work: () => Promise<number>, phase?: string) => {
        if (profileDir && phase) {
          server.send({ type: 'profile-start' });
          await server.next('profiled');
        }
        const before = cpuSeconds(server.pid);
        const count = await work();
        const micros = ((cpuSeconds(server.pid) - before) * 1e6) / count;
        if (profileDir && phase) {
          server.send({ type: 'profile-stop', file: `${profileDir}/${target}-${phase}.cpuprofile` });
          await server.next('profiled');
        }
        return micros;
      };

      const pullMicros: number[] = [];
      for (let r = 0; r < options.repeats; r++) {
        pullMicros.push(
          await perDocument(async () => {
            let checkpoint: unknown = null;
            let pulled = 0;
            for (;;) {
              const page = (await request(ops.pull, { checkpoint, limit: PAGE }))[ops.fields.pull];
              pulled += page.documents.length;
              checkpoint = page.checkpoint;
              if (!page.hasMore) return pulled;
            }
          }, r === options.repeats - 1 ? 'pull' : undefined),
        );
      }
      const pushMicros: number[] = [];
      for (let r = 0; r < options.repeats; r++) {
        const pushRun = runId();
        pushMicros.push(
          await perDocument(async () => {
            for (let i = 0; i < options.documents; i += PAGE) {
              const rows = Array.from({ length: Math.min(PAGE, options.documents - i) }, (_, j) => insertRow(makeTask(i + j, pushRun, `Pushed ${i + j}`, userId ?? undefined)));
              const result = (await request(ops.push, { rows }))[ops.fields.push];
              if (result.rejected.length > 0) throw new Error(`${target}: ${result.rejected.length} rows refused: ${JSON.stringify(result.rejected[0])}`);
            }
            return options.documents;
          }, r === options.repeats - 1 ? 'push' : undefined),
        );
        // The change feed reads what was pushed: let it finish before the next measurement.
        await settle(server.pid);
      }
      rows.push({ target: ({ gateway: 'gateway', driver: 'yoga + driver', yoga: 'bare yoga' } as const)[target], pullMicros, pushMicros });
    } finally {
      await server.stop();
    }
  }
  return rows;
}

/** Waits until the server is idle (its change feed and caches done with what came before). */
async function settle(pid: number): Promise<void> {
  for (let i = 0; i < 50; i++) {
    const before = cpuSeconds(pid);
    await sleep(200);
    if (cpuSeconds(pid) - before <= 0.01) return;
  }
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const cell = (values: number[]) => `${fmt(median(values), 1)} (${fmt(Math.min(...values), 1)}–${fmt(Math.max(...values), 1)})`;

export function gatewayCostTable(rows: GatewayCostRow[], options: Pick<GatewayCostOptions, 'documents' | 'repeats'>): string {
  const label = { gateway: 'Tributary gateway', 'yoga + driver': 'limit: bare graphql-yoga + bare driver (find per page, insertMany per push)', 'bare yoga': 'limit: bare graphql-yoga, same operations from memory' };
  const table = markdownTable(
    ['server', `CPU µs per pulled document (pages of ${PAGE})`, `CPU µs per pushed row (unstamped inserts, ${PAGE} per push)`],
    rows.map((r) => [label[r.target], cell(r.pullMicros), cell(r.pushMicros)]),
  );
  const gateway = rows.find((r) => r.target === 'gateway');
  const driver = rows.find((r) => r.target === 'yoga + driver');
  const own =
    gateway && driver
      ? `\nThe gateway's own share (beyond yoga + driver): ${fmt(median(gateway.pullMicros) - median(driver.pullMicros), 1)} µs per pulled document, ${fmt(median(gateway.pushMicros) - median(driver.pushMicros), 1)} µs per pushed row.`
      : '';
  return `${options.documents} documents per measurement; median of ${options.repeats} (min–max). CPU time of the server's process, from /proc.\n\n${table}${own}\n`;
}
