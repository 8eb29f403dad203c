// The three servers the fan-out benchmark drives, behind one interface: the Tributary gateway
// and the two comparison ("limit") servers of servers.ts. All run in the benchmark's process.
import { pino } from 'pino';
import type { StreamEvent, SyncDocument } from '../protocol/messages.ts';
import { startGateway } from '../gateway/server.ts';
import { anonymousUser, dropDatabase, epochMs, insertRow, runId } from './common.ts';
import { startBareYoga, startWsBroadcast } from './servers.ts';

export interface Target {
  name: string;
  /** What the clients speak: graphql-ws subscriptions, or raw WebSocket messages. */
  kind: 'graphql-ws' | 'ws';
  /** A fresh server per scenario: an empty collection each time, and no sockets left over. */
  start(mongoUri: string): Promise<RunningTarget>;
}

export interface RunningTarget {
  url: string;
  /** For graphql-ws `connection_init`, when the server requires one. */
  token?: string;
  /** Owner for the written tasks: the clients' user, when the server has one. */
  ownerId?: string;
  /** Sends one ~1 KB task; resolves when the server accepted it. */
  write(doc: Record<string, unknown> & { id: string }, seq: number): Promise<void>;
  /**
   * When the server began fanning out the write stamped `sentAt` (gateway: its change feed
   * emitted the batch holding it; limits: the publish call).
   */
  fanoutStartedAt(sentAt: number): number | undefined;
  stop(): Promise<void>;
}

/** Title of a benchmark task: `w:` (warm-up) or `m:` (measured), then when it was due (epoch ms). */
export const stampTitle = (phase: 'w' | 'm', sentAt: number) => `${phase}:${sentAt}`;
export const sentAtOf = (doc: Record<string, unknown>) => Number(String(doc.title).slice(2));

/** The gateway's live event for one new document, reproduced for the limit servers. */
const streamEvent = (doc: Record<string, unknown>, seq: number): StreamEvent => ({
  documents: [{ ...doc, _deleted: false } as SyncDocument],
  checkpoint: { seq },
  resync: false,
});

export const TARGETS: Target[] = [
  {
    name: 'Tributary gateway',
    kind: 'graphql-ws',
    async start(mongoUri) {
      const database = `bench_fanout_${runId()}`;
      const gateway = await startGateway({ mongoUri, database, port: 0, logger: pino({ level: 'warn' }, pino.destination(2)) });
      const tasks = gateway.collections.get('tasks')!;
      // Listening on the change feed like a subscriber does (and before any of them) tells when
      // each write left the store side: the rest of its latency is the fan-out.
      const emittedAt = new Map<number, number>();
      tasks.feed.subscribe((batch) => {
        const now = epochMs();
        for (const doc of batch.documents) emittedAt.set(sentAtOf(doc), now);
      });
      const user = await anonymousUser(gateway.httpUrl);
      return {
        url: gateway.wsUrl,
        token: user?.token,
        ownerId: user?.userId,
        async write(doc) {
          const result = await tasks.writer.push([insertRow(doc)]);
          if (result.rejected.length > 0) throw new Error(result.rejected[0]!.message);
        },
        fanoutStartedAt: (sentAt) => emittedAt.get(sentAt),
        async stop() {
          await gateway.stop();
          await dropDatabase(mongoUri, database);
        },
      };
    },
  },
  {
    name: 'limit: bare yoga + graphql-ws',
    kind: 'graphql-ws',
    async start() {
      const yoga = await startBareYoga();
      const publishedAt = new Map<number, number>();
      return {
        url: yoga.wsUrl,
        async write(doc, seq) {
          publishedAt.set(sentAtOf(doc), epochMs());
          yoga.publishTasks(streamEvent(doc, seq));
        },
        fanoutStartedAt: (sentAt) => publishedAt.get(sentAt),
        stop: () => yoga.stop(),
      };
    },
  },
  {
    name: 'limit: plain ws broadcast',
    kind: 'ws',
    async start() {
      const ws = await startWsBroadcast();
      const publishedAt = new Map<number, number>();
      return {
        url: ws.wsUrl,
        async write(doc, seq) {
          publishedAt.set(sentAtOf(doc), epochMs());
          // Serialized once for all sockets, as a hand-written broadcast would.
          ws.broadcast(JSON.stringify(streamEvent(doc, seq)));
        },
        fanoutStartedAt: (sentAt) => publishedAt.get(sentAt),
        stop: () => ws.stop(),
      };
    },
  },
];
