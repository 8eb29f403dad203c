// (e) Pushes: rows per second through the whole write path (graphql-ws, auth, validation, rules,
// merge, sequencing, compare-and-set write), for stamped rows as the SDK sends them:
//  - inserts of new ~1 KB documents;
//  - edits of those documents from another device (a field, a counter increment and a set
//    addition), merged into the stored state.
// Limit in the same run: the MongoDB driver writing the same documents into a collection with the
// same indexes, in batches of the same size with the same concurrency (insertMany; replaceOne by
// _id for the edits, 16 per command on FerretDB, which never answers 100 updates in one command:
// gateway/store/store-limits.ts).
import { MongoClient, type AnyBulkWriteOperation, type Document } from 'mongodb';
import { pino } from 'pino';
import { createClient } from 'graphql-ws/client';
import { WebSocket } from 'ws';
import { startGateway } from '../gateway/server.ts';
import { detectStoreLimits } from '../gateway/store/store-limits.ts';
import { HybridLogicalClock } from '../protocol/hlc.ts';
import { mergedFields, recordChange, withDerivedValues, type Stamps } from '../protocol/field-state.ts';
import { loadModel, STAMPS_FIELD } from '../protocol/model.ts';
import { syncOperations } from '../protocol/operations.ts';
import type { PushResult, PushRow } from '../protocol/messages.ts';
import { anonymousUser, fmt, makeTask, markdownTable, runId, SCHEMA } from './common.ts';

export interface PushOptions {
  mongoUri: string;
  documents: number;
}

export interface PushBenchRow {
  what: string;
  tributaryRowsPerSec: number;
  rawRowsPerSec: number;
}

/** Rows per push, and pushes in flight at once. */
const BATCH = 100;
const CONCURRENCY = 4;

export async function runPush({ mongoUri, documents }: PushOptions): Promise<PushBenchRow[]> {
  const run = runId();
  const database = `bench_push_${run}`;
  const gateway = await startGateway({ mongoUri, database, port: 0, logger: pino({ level: 'warn' }, pino.destination(2)) });
  const user = await anonymousUser(gateway.httpUrl);
  const tasks = loadModel(SCHEMA).collections.find((c) => c.name === 'tasks')!;
  const fields = mergedFields(tasks);
  const ops = syncOperations(tasks);
  const socket = createClient({ url: gateway.wsUrl, webSocketImpl: WebSocket, connectionParams: user ? { authToken: user.token } : undefined, lazy: false });
  const mongo = await new MongoClient(mongoUri).connect();
  try {
    // Two devices: one creates the documents, the other edits them.
    const creator = new HybridLogicalClock('creator');
    const editor = new HybridLogicalClock('editor');
    const created = Array.from({ length: documents }, (_, i) => {
      const doc: Record<string, unknown> & { id: string } = { ...makeTask(i, run, undefined, user?.userId), minutesLogged: 0 };
      return { doc, stamps: recordChange(fields, {}, doc, {}, () => creator.tick(), creator.node)! };
    });
    const edited = created.map(({ doc, stamps }, i) => {
      const after = { ...doc, title: `edited ${i}`, minutesLogged: 15, assigneeIds: [...(doc.assigneeIds as string[]), 'editor'] };
      const next = recordChange(fields, doc, after, stamps, () => editor.tick(), editor.node)!;
      return { doc: withDerivedValues(fields, after, next), stamps: next };
    });
    const wire = (doc: Record<string, unknown>, stamps: Stamps) => ({ ...doc, _deleted: false, [STAMPS_FIELD]: stamps });
    const insertRows: PushRow[] = created.map(({ doc, stamps }) => ({ assumedMasterState: null, newDocumentState: wire(doc, stamps) as never }));
    // The editor last saw the document as created: what a device that synced and then edited sends.
    const editRows: PushRow[] = edited.map(({ doc, stamps }, i) => ({ assumedMasterState: wire(created[i]!.doc, created[i]!.stamps) as never, newDocumentState: wire(doc, stamps) as never }));

    const push = async (rows: PushRow[]) => {
      const result = await new Promise<PushResult>((resolve, reject) => {
        let data: PushResult | undefined;
        socket.subscribe<Record<string, PushResult>>(
          { query: ops.push, variables: { rows } },
          { next: (r) => (r.errors ? reject(new Error(r.errors[0]!.message)) : (data = r.data![ops.fields.push])), error: reject, complete: () => (data ? resolve(data) : reject(new Error('no result'))) },
        );
      });
      if (result.rejected.length > 0) throw new Error(`push refused: ${JSON.stringify(result.rejected[0])}`);
    };
    const tributary = async (rows: PushRow[]) => documents / (await inBatches(rows, push));

    const raw = mongo.db(`${database}_raw`).collection<Document & { _id: string }>('tasks');
    for (const index of await mongo.db(database).collection('tasks').indexes()) {
      if (index.name !== '_id_') await raw.createIndex(index.key, { name: index.name });
    }
    const limits = await detectStoreLimits(mongo.db(database));
    const rawInserts = async () => documents / (await inBatches(created.map(({ doc }) => ({ ...doc, _id: doc.id })), (batch) => raw.insertMany(batch, { ordered: false })));
    const rawEdits = async () =>
      documents /
      (await inBatches(
        edited.map(({ doc }): AnyBulkWriteOperation<Document & { _id: string }> => ({ replaceOne: { filter: { _id: doc.id as string }, replacement: doc } })),
        async (batch) => {
          for (let i = 0; i < batch.length; i += limits.updatesPerCommand) await raw.bulkWrite(batch.slice(i, i + limits.updatesPerCommand), { ordered: false });
        },
      ));

    const rows: PushBenchRow[] = [];
    rows.push({ what: `insert ${fmt(documents)} new documents`, tributaryRowsPerSec: await tributary(insertRows), rawRowsPerSec: await rawInserts() });
    console.error(`  push: inserts done`);
    rows.push({ what: `merge an edit into each (field, counter, set)`, tributaryRowsPerSec: await tributary(editRows), rawRowsPerSec: await rawEdits() });
    const stored = await mongo.db(database).collection('tasks').countDocuments({ minutesLogged: 15 });
    if (stored !== documents) throw new Error(`expected ${documents} merged documents, found ${stored}`);
    return rows;
  } finally {
    await socket.dispose();
    await gateway.stop();
    await mongo.db(database).dropDatabase().catch(() => {});
    await mongo.db(`${database}_raw`).dropDatabase().catch(() => {});
    await mongo.close();
  }
}

/** Runs `write` over `items` in batches of BATCH, CONCURRENCY at a time; returns the seconds taken. */
async function inBatches<T>(items: T[], write: (batch: T[]) => Promise<unknown>): Promise<number> {
  const batches: T[][] = [];
  for (let i = 0; i < items.length; i += BATCH) batches.push(items.slice(i, i + BATCH));
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < batches.length) await write(batches[next++]!);
    }),
  );
  return (performance.now() - started) / 1000;
}

export function pushTable(rows: PushBenchRow[]): string {
  return markdownTable(
    ['stamped push rows', 'Tributary rows/s', 'limit: driver writes/s', 'ratio (target ≥ 50 %)'],
    rows.map((r) => [r.what, fmt(r.tributaryRowsPerSec), fmt(r.rawRowsPerSec), `${fmt((100 * r.tributaryRowsPerSec) / r.rawRowsPerSec)} %`]),
  );
}
