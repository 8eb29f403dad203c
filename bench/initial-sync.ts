// (a) Initial sync: how fast a fresh SDK client downloads a collection of N ~1 KB documents.
//
// The documents go in through the gateway's own write path (writer.push, 1000 rows per call),
// so they carry real sequences. Then, against the same data in the same run:
//  - Tributary: a fresh client (memory storage, pullBatchSize 1000) until it holds all N;
//  - limit: the MongoDB driver reading the collection (batchSize 1000): the store side alone;
//  - limit: RxDB bulkInsert of the same N documents into a fresh memory-storage collection,
//    1000 per call: the local-write side alone.
// Initial sync does both, one after the other per page, so it cannot beat the slower one.
import { MongoClient, type Db } from 'mongodb';
import { pino } from 'pino';
import { createRxDatabase } from 'rxdb';
import { getRxStorageMemory } from 'rxdb/plugins/storage-memory';
import { WebSocket } from 'ws';
import { openTributary } from '../client-sdk/index.ts';
import { rxSchema } from '../client-sdk/database.ts';
import type { CollectionRuntime } from '../gateway/graphql/schema.ts';
import { META_COLLECTION_PREFIX } from '../gateway/store/collection-store.ts';
import { startGateway } from '../gateway/server.ts';
import { loadModel } from '../protocol/model.ts';
import { anonymousUser, fmt, insertRow, makeTask, markdownTable, runId, SCHEMA, sleep } from './common.ts';

export interface InitialSyncOptions {
  mongoUri: string;
  sizes: number[];
}

export interface InitialSyncResult {
  documents: number;
  writeDocsPerSec: number;
  clientDocsPerSec: number;
  rawReadDocsPerSec: number;
  /** The driver running a pull's query (diagnostic): the side collection in sequence order. */
  seqOrderReadDocsPerSec: number;
  bulkInsertDocsPerSec: number;
  /** Client throughput over min(raw read, bulkInsert). */
  ratio: number;
}

const BATCH = 1_000;

export async function runInitialSync(options: InitialSyncOptions): Promise<InitialSyncResult[]> {
  const results: InitialSyncResult[] = [];
  for (const n of options.sizes) results.push(await measureSize(options.mongoUri, n));
  return results;
}

async function measureSize(mongoUri: string, n: number): Promise<InitialSyncResult> {
  const run = runId();
  const database = `bench_sync_${run}`;
  const gateway = await startGateway({ mongoUri, database, port: 0, logger: pino({ level: 'warn' }, pino.destination(2)) });
  const mongo = new MongoClient(mongoUri);
  try {
    await mongo.connect();
    const user = await anonymousUser(gateway.httpUrl);
    const docs = Array.from({ length: n }, (_, i) => makeTask(i, run, `Task ${i}`, user?.userId));
    const writer = gateway.collections.get('tasks')!.writer;
    const writeSeconds = await timed(async () => {
      for (let i = 0; i < n; i += BATCH) {
        const result = await writer.push(docs.slice(i, i + BATCH).map(insertRow));
        if (result.rejected.length > 0 || result.conflicts.length > 0) throw new Error(`seeding refused: ${JSON.stringify(result.rejected[0])}`);
      }
    });
    console.error(`  initial-sync ${fmt(n)}: seeded in ${fmt(writeSeconds, 1)} s`);
    await changeFeedCaughtUp(gateway.collections.get('tasks')!);

    const clientSeconds = await timed(() => syncFreshClient(gateway.wsUrl, n, user?.token));
    console.error(`  initial-sync ${fmt(n)}: client ${fmt(n / clientSeconds)} docs/s`);

    const rawSeconds = await timed(async () => {
      let read = 0;
      for await (const _ of mongo.db(database).collection('tasks').find({}, { batchSize: BATCH })) read++;
      if (read !== n) throw new Error(`raw read found ${read} of ${n} documents`);
    });
    const seqOrderSeconds = await timed(() => seqOrderRead(mongo.db(database), n));
    const bulkSeconds = await bulkInsertSeconds(docs);

    const client = n / clientSeconds;
    const raw = n / rawSeconds;
    const bulk = n / bulkSeconds;
    return {
      documents: n,
      writeDocsPerSec: n / writeSeconds,
      clientDocsPerSec: client,
      rawReadDocsPerSec: raw,
      seqOrderReadDocsPerSec: n / seqOrderSeconds,
      bulkInsertDocsPerSec: bulk,
      ratio: client / Math.min(raw, bulk),
    };
  } finally {
    await gateway.stop();
    await mongo.db(database).dropDatabase().catch(() => {});
    await mongo.close();
  }
}

/**
 * Seeding woke the gateway's change feed, which reads every new change once (to hand it to
 * live subscribers). Let it finish first so that its reads do not compete with the client's.
 */
async function changeFeedCaughtUp({ feed, store }: CollectionRuntime): Promise<void> {
  const horizon = await store.sequencer.horizon();
  while (feed.checkpoint.seq < horizon) await sleep(50);
}

/** Opens a client with an empty local database and waits until it holds all `n` tasks. */
async function syncFreshClient(wsUrl: string, n: number, authToken: string | undefined): Promise<void> {
  const client = await openTributary({
    url: wsUrl,
    schema: SCHEMA,
    storage: getRxStorageMemory(),
    databaseName: `bench_client_${runId()}`,
    webSocketImpl: WebSocket,
    connectionParams: authToken ? { authToken } : undefined,
    pullBatchSize: BATCH,
  });
  // A client that cannot sync (refused, reconnecting in a loop) must fail the run, not hang it.
  const deadline = Date.now() + Math.max(60_000, n); // 1 ms per document: far below any sane speed
  const errors: string[] = [];
  const sub = client.errors$.subscribe((e) => errors.push(JSON.stringify(e)));
  try {
    await Promise.race([client.waitForSync(), sleep(deadline - Date.now())]);
    while ((await client.collections.tasks!.count().exec()) < n) {
      if (Date.now() > deadline) throw new Error(`client did not receive all ${n} documents in time${errors[0] ? `; first error: ${errors[0]}` : ''}`);
      await sleep(10);
    }
  } finally {
    sub.unsubscribe();
    await client.close();
  }
}

/**
 * The store side of a pull alone, with the query a pull runs (collection-store.ts,
 * changesCursor): the side collection `_tributary_sync_tasks` with seq > checkpoint in seq order,
 * whole entries (versions included), through one cursor (as the gateway keeps it open between
 * pages).
 */
async function seqOrderRead(db: Db, n: number): Promise<void> {
  const meta = db.collection<{ _id: string; seq: number }>(`${META_COLLECTION_PREFIX}tasks`);
  let read = 0;
  for await (const _ of meta.find({ seq: { $gt: 0 } }).sort({ seq: 1 }).batchSize(BATCH)) read++;
  if (read !== n) throw new Error(`sequence-order read found ${read} of ${n} documents`);
}

/** RxDB's local write speed: the same documents, same storage and options as the SDK. */
async function bulkInsertSeconds(docs: Array<{ id: string } & Record<string, unknown>>): Promise<number> {
  const tasksModel = loadModel(SCHEMA).collections.find((c) => c.name === 'tasks')!;
  const db = await createRxDatabase({ name: `bench_bulk_${runId()}`, storage: getRxStorageMemory(), multiInstance: false, eventReduce: true });
  try {
    const { tasks } = await db.addCollections({ tasks: { schema: rxSchema(tasksModel) } });
    return await timed(async () => {
      for (let i = 0; i < docs.length; i += BATCH) {
        const { error } = await tasks!.bulkInsert(docs.slice(i, i + BATCH));
        if (error.length > 0) throw new Error(`bulkInsert failed: ${JSON.stringify(error[0])}`);
      }
    });
  } finally {
    await db.close();
  }
}

async function timed(work: () => Promise<void>): Promise<number> {
  const start = performance.now();
  await work();
  return (performance.now() - start) / 1_000;
}

export function initialSyncTable(results: InitialSyncResult[]): string {
  const rows = results.flatMap((r) => [
    [fmt(r.documents), 'Tributary: fresh SDK client until it holds all N (pullBatchSize 1000)', fmt(r.clientDocsPerSec)],
    [fmt(r.documents), 'limit: raw MongoDB driver read, batchSize 1000', fmt(r.rawReadDocsPerSec)],
    [fmt(r.documents), 'limit: RxDB bulkInsert, memory storage, 1000 per call', fmt(r.bulkInsertDocsPerSec)],
    [fmt(r.documents), '**client / min(raw read, bulkInsert)**', `**${fmt(r.ratio * 100, 0)} %**`],
    [fmt(r.documents), `(info) driver read with a pull's query: ${META_COLLECTION_PREFIX}tasks by seq > checkpoint, whole entries, one cursor`, fmt(r.seqOrderReadDocsPerSec)],
    [fmt(r.documents), '(info) seeding through writer.push, 1000 per call', fmt(r.writeDocsPerSec)],
  ]);
  return markdownTable(['N', 'measurement', 'docs/s'], rows);
}
