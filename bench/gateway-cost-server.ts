// Child process: one server for the gateway-cost benchmark, alone in its process so that the
// CPU time read from /proc is its own (the load comes from the benchmark's process).
//
//   node --import tsx bench/gateway-cost-server.ts --target gateway --mongo URI --database NAME
//   node --import tsx bench/gateway-cost-server.ts --target yoga
//   node --import tsx bench/gateway-cost-server.ts --target driver --mongo URI --database NAME
//
// `yoga` is the first comparison: graphql-yoga over HTTP with the same pull and push operations,
// whose resolvers hand out pages of documents already in memory and accept rows without looking
// at them. `driver` is the second: the same yoga server whose resolvers read pages of the stored
// documents with the bare driver (`_id` order, 1,000 per find) and insert pushed rows with one
// `insertMany` per push: the least any GraphQL gateway over the official driver spends, with no
// metadata, rules or merge. What the gateway spends beyond it is its own work.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { parseArgs } from 'node:util';
import { GraphQLScalarType } from 'graphql';
import { MongoClient } from 'mongodb';
import { createSchema, createYoga } from 'graphql-yoga';
import { pino } from 'pino';
import { startGateway } from '../gateway/server.ts';
import { anonymousUser, insertRow, makeTask, storedTask } from './common.ts';

export type CostServerIn = { type: 'seed'; n: number; run: string } | { type: 'profile-start' } | { type: 'profile-stop'; file: string };
export type CostServerOut = { type: 'listening'; httpUrl: string } | { type: 'seeded'; token: string | null; userId: string | null } | { type: 'profiled' };

const { values } = parseArgs({ options: { target: { type: 'string' }, mongo: { type: 'string' }, database: { type: 'string' } } });
const send = (message: CostServerOut) => process.send!(message);
const BATCH = 1_000;

interface CostServer {
  httpUrl: string;
  seed(n: number, run: string): Promise<{ token: string | null; userId: string | null }>;
  stop(): Promise<void>;
}

async function startGatewayTarget(): Promise<CostServer> {
  // Without following other services' writes: that path has its own figures (outside-writes),
  // and its oplog reads, or the full comparison passes run every minute without them, would be
  // charged to pulls and pushes here.
  const gateway = await startGateway({
    mongoUri: values.mongo!,
    database: values.database!,
    port: 0,
    followOutsideChanges: false,
    fullPassIntervalMs: 0,
    logger: pino({ level: 'warn' }, pino.destination(2)),
  });
  return {
    httpUrl: gateway.httpUrl,
    async seed(n, run) {
      const user = await anonymousUser(gateway.httpUrl);
      const writer = gateway.collections.get('tasks')!.writer;
      for (let i = 0; i < n; i += BATCH) {
        const docs = Array.from({ length: Math.min(BATCH, n - i) }, (_, j) => makeTask(i + j, run, `Task ${i + j}`, user?.userId));
        await writer.push(docs.map(insertRow));
      }
      return { token: user?.token ?? null, userId: user?.userId ?? null };
    },
    stop: () => gateway.stop(),
  };
}

const COMPARISON_SDL = /* GraphQL */ `
  scalar JSONObject
  type SyncCheckpoint { seq: Float!, epoch: String }
  input SyncCheckpointInput { seq: Float!, epoch: String }
  input SyncPushRow { assumedMasterState: JSONObject, newDocumentState: JSONObject! }
  type SyncPullBulk { documents: [JSONObject!]!, checkpoint: SyncCheckpoint!, hasMore: Boolean! }
  type PushRejection { id: ID!, code: String!, field: String, message: String!, realmCode: Int }
  type SyncPushResult { conflicts: [JSONObject!]!, rejected: [PushRejection!]! }
  type Query { pullTasks(checkpoint: SyncCheckpointInput, limit: Int!, view: [JSONObject!], stamps: Boolean): SyncPullBulk! }
  type Mutation { pushTasks(rows: [SyncPushRow!]!, view: [JSONObject!]): SyncPushResult! }
`;

type Checkpoint = { seq: number; epoch?: string } | null;
type Row = { newDocumentState: { id: string } & Record<string, unknown> };

/** Bare graphql-yoga over HTTP with the sync operations' shapes, answered by `pull` and `push`. */
async function startComparison(pull: (checkpoint: Checkpoint, limit: number) => Promise<unknown> | unknown, push: (rows: Row[]) => Promise<void> | void): Promise<{ httpUrl: string; stop(): Promise<void> }> {
  const schema = createSchema({
    typeDefs: COMPARISON_SDL,
    resolvers: {
      JSONObject: new GraphQLScalarType({ name: 'JSONObject', serialize: (v) => v, parseValue: (v) => v }),
      Query: { pullTasks: (_: unknown, args: { checkpoint: Checkpoint; limit: number }) => pull(args.checkpoint, args.limit) },
      Mutation: {
        pushTasks: async (_: unknown, args: { rows: Row[] }) => {
          await push(args.rows);
          return { conflicts: [], rejected: [] };
        },
      },
    },
  });
  const yoga = createYoga({ schema, graphqlEndpoint: '/graphql', logging: false });
  const server = createServer((req, res) => void yoga.handle(req, res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { httpUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`, stop: () => new Promise((r) => server.close(() => r())) };
}

/** The same operations' shapes, answered from memory. */
async function startYogaTarget(): Promise<CostServer> {
  let documents: Record<string, unknown>[] = [];
  const http = await startComparison(
    (checkpoint, limit) => {
      const from = checkpoint?.seq ?? 0;
      const page = documents.slice(from, from + limit);
      return { documents: page, checkpoint: { seq: from + page.length, epoch: 'bench' }, hasMore: from + page.length < documents.length };
    },
    () => {},
  );
  return {
    ...http,
    async seed(n, run) {
      // As a pull hands them out: the stored task with its wire fields.
      documents = Array.from({ length: n }, (_, i) => ({ ...makeTask(i, run), _deleted: false }));
      return { token: null, userId: null };
    },
  };
}

/** The same operations' shapes, answered by the bare driver: a find per page, an insertMany per push. */
async function startDriverTarget(): Promise<CostServer> {
  const client = await new MongoClient(values.mongo!).connect();
  const tasks = client.db(values.database!).collection<{ _id: string } & Record<string, unknown>>('tasks');
  const http = await startComparison(
    async (checkpoint, limit) => {
      // The checkpoint's epoch carries the last id read: the next page starts after it.
      const after = checkpoint?.epoch;
      const page = await tasks
        .find(after ? { _id: { $gt: after } } : {})
        .sort({ _id: 1 })
        .limit(limit)
        .batchSize(limit)
        .toArray();
      const last = page.length > 0 ? page[page.length - 1]!._id : after;
      return { documents: page, checkpoint: { seq: 0, epoch: last }, hasMore: page.length === limit };
    },
    async (rows) => {
      await tasks.insertMany(rows.map((r) => storedTask(r.newDocumentState) as { _id: string }), { ordered: false });
    },
  );
  return {
    ...http,
    async seed(n, run) {
      for (let i = 0; i < n; i += BATCH) {
        await tasks.insertMany(Array.from({ length: Math.min(BATCH, n - i) }, (_, j) => storedTask(makeTask(i + j, run)) as { _id: string }));
      }
      return { token: null, userId: null };
    },
    async stop() {
      await http.stop();
      await client.db(values.database!).dropDatabase().catch(() => {});
      await client.close();
    },
  };
}

const targets: Record<string, () => Promise<CostServer>> = { gateway: startGatewayTarget, yoga: startYogaTarget, driver: startDriverTarget };
const server = await targets[values.target ?? '']?.();
if (!server) throw new Error(`unknown --target ${values.target}`);
// A V8 CPU profile of one phase (BENCH_CPU_PROF in gateway-cost.ts).
const profiler = new Session();
process.on('message', (message: CostServerIn) => {
  if (message.type === 'seed') void server.seed(message.n, message.run).then((seeded) => send({ type: 'seeded', ...seeded }));
  if (message.type === 'profile-start') {
    profiler.connect();
    void profiler.post('Profiler.enable').then(() => profiler.post('Profiler.start')).then(() => send({ type: 'profiled' }));
  }
  if (message.type === 'profile-stop') {
    void profiler
      .post('Profiler.stop')
      .then(({ profile }) => writeFile(message.file, JSON.stringify(profile)))
      .then(() => profiler.disconnect())
      .then(() => send({ type: 'profiled' }));
  }
});
process.on('disconnect', () => {
  const timer = setTimeout(() => process.exit(1), 10_000);
  void server.stop().finally(() => {
    clearTimeout(timer);
    process.exit(0);
  });
});
send({ type: 'listening', httpUrl: server.httpUrl });
