// How an instance learns, within milliseconds, that another instance committed a write: every
// write moves its collection's sequence counter (`_tributary_sequences`: an allocation, then the
// release of its lease, which moves the horizon). So each instance watches that collection and
// wakes the collection's change feed, which reads up to the horizon as it does for its own
// writes. The store tells it (ARCHITECTURE.md, "Several instances"):
//
//  - MongoDB (replica sets): a change stream on the counters collection; each event names the
//    collection whose counter moved.
//  - FerretDB: it has no change streams, but it logs every write in its oplog; the probe the
//    outside-change follower uses (store/outside-changes.ts) says when the oplog changed, and every
//    feed is woken (a woken feed whose horizon did not move reads nothing more).
//  - Neither: the feeds' poll (TRIBUTARY_POLL_INTERVAL_MS) is all there is.
//
// A wake-up is only a hint: the poll goes on beside it, so a signal lost (a stream reopened) costs
// latency, never a change.
import type { ChangeStream, Db, MongoClient } from 'mongodb';
import type { Logger } from 'pino';
import { storeChangeKind, watchOplog } from './outside-changes.ts';

export type WakeFeeds = (collection: string | undefined) => void;

export interface CommitSignal {
  readonly kind: 'change-stream' | 'oplog' | 'none';
  /** Calls `wake(collection)` soon after a write to `collection` commits (undefined: any collection may have). */
  start(wake: WakeFeeds): void;
  stop(): Promise<void>;
}

const COUNTER_EVENTS = [{ $match: { operationType: { $in: ['insert', 'update', 'replace'] } } }, { $project: { documentKey: 1 } }];

export async function detectCommitSignal(client: MongoClient, db: Db, countersCollection: string, log: Logger): Promise<CommitSignal> {
  const kind = await storeChangeKind(client, db, COUNTER_EVENTS, log);
  if (kind === 'change-stream') return new CounterChangeStream(db, countersCollection, log);
  if (kind === 'oplog') return new OplogCommitSignal(client);
  return NO_COMMIT_SIGNAL;
}

export const NO_COMMIT_SIGNAL: CommitSignal = { kind: 'none', start() {}, async stop() {} };

class OplogCommitSignal implements CommitSignal {
  readonly kind = 'oplog' as const;
  private unwatch: (() => void) | undefined;

  constructor(private readonly client: MongoClient) {}

  start(wake: WakeFeeds): void {
    this.unwatch ??= watchOplog(this.client, () => wake(undefined));
  }

  async stop(): Promise<void> {
    this.unwatch?.();
    this.unwatch = undefined;
  }
}

class CounterChangeStream implements CommitSignal {
  readonly kind = 'change-stream' as const;
  private abort: AbortController | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly db: Db,
    private readonly countersCollection: string,
    private readonly log: Logger,
  ) {}

  start(wake: WakeFeeds): void {
    if (this.running) return;
    const abort = new AbortController();
    this.abort = abort;
    this.running = this.follow(wake, abort.signal);
  }

  async stop(): Promise<void> {
    this.abort?.abort();
    await this.running;
    this.running = undefined;
  }

  private async follow(wake: WakeFeeds, signal: AbortSignal): Promise<void> {
    let failures = 0;
    while (!signal.aborted) {
      let stream: ChangeStream | undefined;
      const close = () => void stream?.close().catch(() => {});
      signal.addEventListener('abort', close);
      try {
        stream = this.db.collection(this.countersCollection).watch(COUNTER_EVENTS, { maxAwaitTimeMS: 500 });
        let event = await stream.tryNext(); // opens it
        // Commits made while no stream was open were not signalled: catch up once.
        wake(undefined);
        failures = 0;
        while (!signal.aborted && !stream.closed) {
          if (event) wake(String((event as { documentKey: { _id: unknown } }).documentKey._id));
          event = await stream.tryNext();
        }
      } catch (error) {
        if (signal.aborted) break;
        const ms = Math.min(5_000, 100 * 2 ** Math.min(failures++, 6));
        this.log.warn({ err: error, retryInMs: ms }, 'commit signal: the change stream on the sequence counters failed');
        await new Promise((resolve) => setTimeout(resolve, ms));
      } finally {
        signal.removeEventListener('abort', close);
        await stream?.close().catch(() => {});
      }
    }
  }
}
