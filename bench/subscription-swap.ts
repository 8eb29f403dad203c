// (d) Subscription change: time from update() to Complete when a Flexible Sync client swaps a
// query that selects N documents for another that selects N others, and when it widens a query
// (only the difference should travel). Limits in the same run: the driver reading those N
// documents, and RxDB bulkInsert of them into a fresh collection.
import { MongoClient } from 'mongodb';
import { pino } from 'pino';
import { createRxDatabase } from 'rxdb';
import { getRxStorageMemory } from 'rxdb/plugins/storage-memory';
import { WebSocket } from 'ws';
import { openTributary } from '../client-sdk/index.ts';
import { rxSchema } from '../client-sdk/database.ts';
import { startGateway } from '../gateway/server.ts';
import { loadModel } from '../protocol/model.ts';
import { anonymousUser, fmt, insertRow, makeTask, markdownTable, runId, SCHEMA } from './common.ts';

export interface SwapOptions {
  mongoUri: string;
  /** Documents each query selects. */
  size: number;
}

export interface SwapRow {
  what: string;
  milliseconds: number;
  downloaded: number;
}

const BATCH = 1_000;

export async function runSubscriptionSwap({ mongoUri, size }: SwapOptions): Promise<SwapRow[]> {
  const run = runId();
  const database = `bench_swap_${run}`;
  const gateway = await startGateway({ mongoUri, database, port: 0, logger: pino({ level: 'warn' }, pino.destination(2)) });
  // The default rules let a user read what it owns: the client's user owns every task.
  const user = await anonymousUser(gateway.httpUrl);
  // Three slices of `size` documents: projects A, B and C.
  const docs = Array.from({ length: 3 * size }, (_, i) => ({ ...makeTask(i, run, undefined, user?.userId), projectId: ['A', 'B', 'C'][Math.floor(i / size)] }));
  const mongo = await new MongoClient(mongoUri).connect();
  const rows: SwapRow[] = [];
  try {
    const writer = gateway.collections.get('tasks')!.writer;
    for (let i = 0; i < docs.length; i += BATCH) await writer.push(docs.slice(i, i + BATCH).map(insertRow));

    const client = await openTributary({
      url: gateway.wsUrl,
      schema: SCHEMA,
      storage: getRxStorageMemory(),
      databaseName: `swap_${run}`,
      webSocketImpl: WebSocket,
      connectionParams: user ? { authToken: user.token } : undefined,
      flexibleSync: true,
    });
    const measure = async (what: string, change: Parameters<typeof client.subscriptions.update>[0]) => {
      const before = client.counters.downloaded.tasks!;
      const started = performance.now();
      await client.subscriptions.update(change);
      rows.push({ what, milliseconds: performance.now() - started, downloaded: client.counters.downloaded.tasks! - before });
    };
    try {
      await measure(`first query (${fmt(size)} docs)`, (m) => m.add('tasks', "projectId == 'A'", { name: 'q' }));
      await measure(`swap for a query on ${fmt(size)} other docs`, (m) => m.add('tasks', "projectId == 'B'", { name: 'q' }));
      await measure(`widen to ${fmt(2 * size)} docs (${fmt(size)} held)`, (m) => m.add('tasks', "projectId IN {'B', 'C'}", { name: 'q' }));
      await measure('narrow back (purge only)', (m) => m.add('tasks', "projectId == 'C'", { name: 'q' }));
    } finally {
      await client.close();
    }

    const rawStarted = performance.now();
    await mongo.db(database).collection('tasks').find({ projectId: 'B' }).batchSize(BATCH).toArray();
    rows.push({ what: `limit: driver reads the ${fmt(size)} docs`, milliseconds: performance.now() - rawStarted, downloaded: size });

    const local = await createRxDatabase({ name: `swap_local_${run}`, storage: getRxStorageMemory(), multiInstance: false });
    try {
      const model = loadModel(SCHEMA).collections.find((c) => c.name === 'tasks')!;
      const { tasks } = await local.addCollections({ tasks: { schema: rxSchema(model) } });
      const slice = docs.slice(size, 2 * size);
      const insertStarted = performance.now();
      for (let i = 0; i < slice.length; i += BATCH) await tasks!.bulkInsert(slice.slice(i, i + BATCH));
      rows.push({ what: `limit: RxDB bulkInsert of ${fmt(size)} docs`, milliseconds: performance.now() - insertStarted, downloaded: size });
    } finally {
      await local.close();
    }
  } finally {
    await mongo.db(database).dropDatabase().catch(() => {});
    await mongo.close();
    await gateway.stop();
  }
  return rows;
}

export function swapTable(rows: SwapRow[]): string {
  return markdownTable(
    ['subscription change', 'time to Complete (ms)', 'documents downloaded'],
    rows.map((r) => [r.what, fmt(r.milliseconds), fmt(r.downloaded)]),
  );
}
