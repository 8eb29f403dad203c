// (c) Memory per idle subscribed connection.
//
// Each server runs alone in a child process (memory-server.ts, --expose-gc) and the clients in
// another (fanout-clients.ts). We take the server's memory after forced collections before and
// after K clients connect and subscribe, and divide the difference by K. A small warm-up round
// of connections first, so that lazily compiled code and caches are not charged to the clients.
import { clientsReady, spawnChild } from './child.ts';
import { dropDatabase, fmt, markdownTable, runId, sleep } from './common.ts';
import type { ClientsIn, ClientsOut } from './fanout-clients.ts';
import type { MemoryServerIn, MemoryServerOut } from './memory-server.ts';

export interface MemoryOptions {
  mongoUri: string;
  connections: number;
}

export interface MemoryRow {
  server: string;
  connections: number;
  subscriptions: string;
  rssPerConnKiB: number;
  heapPerConnKiB: number;
  externalPerConnKiB: number;
}

const WARMUP_CONNECTIONS = 50;
/** Idle time before measuring: lets subscriptions without a first event (watch) finish setting up. */
const SETTLE_MS = 2_000;
/** What an SDK client holds open (two sync streams) plus a plain watch subscription. */
const THREE = 'streamTasks,streamProjects,watchTasks';
/**
 * V8 grows its young generation with the allocation rate, by tens of MB, whatever the number of
 * connections: pinned at 16 MB per semi-space (the size it grows to here anyway) so that the
 * RSS difference is the connections'.
 */
const SERVER_NODE_ARGS = ['--expose-gc', '--min-semi-space-size=16', '--max-semi-space-size=16'];

// The single-subscription rows separate the cost of a socket from the cost of a subscription.
const TARGETS = [
  { server: 'Tributary gateway', target: 'gateway', kind: 'graphql-ws', subscriptions: THREE },
  { server: 'limit: bare yoga + graphql-ws', target: 'yoga', kind: 'graphql-ws', subscriptions: THREE },
  { server: 'Tributary gateway', target: 'gateway', kind: 'graphql-ws', subscriptions: 'streamTasks' },
  { server: 'limit: bare yoga + graphql-ws', target: 'yoga', kind: 'graphql-ws', subscriptions: 'streamTasks' },
  { server: 'limit: plain ws', target: 'ws', kind: 'ws', subscriptions: '' },
] as const;

export async function runMemory(options: MemoryOptions): Promise<MemoryRow[]> {
  const rows: MemoryRow[] = [];
  for (const t of TARGETS) {
    const database = `bench_memory_${runId()}`;
    const server = spawnChild<MemoryServerIn, MemoryServerOut>(
      'memory-server.ts',
      ['--target', t.target, '--mongo', options.mongoUri, '--database', database],
      SERVER_NODE_ARGS,
    );
    try {
      const { wsUrl, authUrl } = await server.next('listening');
      const connect = async (count: number) => {
        // One user per connection, as with real devices: per-user state counts too.
        const args = ['--kind', t.kind, '--url', wsUrl, '--clients', String(count), ...(authUrl ? ['--auth-url', authUrl] : [])];
        const clients = spawnChild<ClientsIn, ClientsOut>('fanout-clients.ts', t.subscriptions ? [...args, '--subscriptions', t.subscriptions] : args);
        await clientsReady(clients).catch(async (error) => {
          await clients.stop();
          throw error;
        });
        return clients;
      };
      // BENCH_HEAP_SNAPSHOT=<dir>: heap snapshots before and after the clients (<target>-<subscriptions>-before|after.heapsnapshot).
      const snapshotDir = process.env.BENCH_HEAP_SNAPSHOT;
      const measure = async (when: 'before' | 'after') => {
        const heapSnapshot = snapshotDir ? `${snapshotDir}/${t.target}-${t.subscriptions.replaceAll(',', '+') || 'socket'}-${when}.heapsnapshot` : undefined;
        server.send({ type: 'measure', heapSnapshot });
        return server.next('memory', 600_000);
      };

      await (await connect(WARMUP_CONNECTIONS)).stop();
      await sleep(500);
      const before = await measure('before');
      const clients = await connect(options.connections);
      let after: Extract<MemoryServerOut, { type: 'memory' }>;
      try {
        await sleep(SETTLE_MS);
        after = await measure('after');
      } finally {
        await clients.stop();
      }

      const perConn = (key: 'rss' | 'heapUsed' | 'external') => (after[key] - before[key]) / options.connections / 1024;
      const row: MemoryRow = {
        server: t.server,
        connections: options.connections,
        subscriptions: t.subscriptions ? t.subscriptions.split(',').join(', ') : '(socket only)',
        rssPerConnKiB: perConn('rss'),
        heapPerConnKiB: perConn('heapUsed'),
        externalPerConnKiB: perConn('external'),
      };
      rows.push(row);
      console.error(`  memory ${t.server} (${row.subscriptions}): ${fmt(row.rssPerConnKiB, 1)} KiB RSS per connection`);
    } finally {
      await server.stop();
      if (t.target === 'gateway') await dropDatabase(options.mongoUri, database);
    }
  }
  return rows;
}

export function memoryTable(rows: MemoryRow[]): string {
  return markdownTable(
    ['server', 'connections', 'subscriptions per connection', 'RSS / conn (KiB)', 'JS heap / conn (KiB)', 'external / conn (KiB)'],
    rows.map((r) => [r.server, fmt(r.connections), r.subscriptions, fmt(r.rssPerConnKiB, 1), fmt(r.heapPerConnKiB, 1), fmt(r.externalPerConnKiB, 1)]),
  );
}
