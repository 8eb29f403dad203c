// Outside changes: writes made to the store by other services, not through the gateway. The
// gateway learns of them from a MongoDB change stream (MongoDB 6+ replica sets), from the oplog
// (`local.oplog.rs`, which the embedded FerretDB keeps: see embedded-ferretdb.ts ensureOplog), or
// not at all ('none': the caller's periodic full comparison passes are then the only way).
//
// Each source keeps its resume point in one document of `resumeStore`, written only after `apply`
// resolved: a crash re-delivers changes, it never skips one. Writes made through the gateway are
// reported too (they are writes to the store like any other); the caller tells them apart.
//
// What a change says: a document with this id in this collection was inserted, updated or
// replaced ('upsert', read its current state) or deleted. Not reported by either source:
// dropping or renaming a collection or the database.
import { BSON, MongoError, MongoNetworkError, MongoServerError, MongoServerSelectionError, Timestamp } from 'mongodb';
import type { ChangeStream, ChangeStreamDocument, Collection, Db, Document, MongoClient, ResumeToken } from 'mongodb';
import type { Logger } from 'pino';

export interface OutsideChange {
  collection: string;
  /** The BSON _id exactly as stored (a Long stays a Long). */
  id: unknown;
  op: 'upsert' | 'delete';
  /**
   * The document as this change left it, where the source says (FerretDB's oplog logs an insert
   * and every update as the whole new document); lets the caller tell its own writes apart
   * without reading the store. Absent otherwise.
   */
  document?: Record<string, unknown>;
}

export interface OutsideChangeHandlers {
  /** One batch, in commit order, at most `batchSize` changes, at most one per (collection, id). */
  apply(changes: OutsideChange[]): Promise<void>;
  /** The resume point could not be used: changes may have been missed. Following resumes from "now" once this resolves. */
  lost(reason: string): Promise<void>;
}

export interface OutsideChangeSource {
  readonly kind: 'change-stream' | 'oplog' | 'none';
  /**
   * Starts following, from the stored resume point, or from "now" on a first start (not `lost`:
   * the caller's full pass covers the past). Resolves once the starting point is fixed (a write
   * made after that is reported) or, if the store is unreachable, after the first attempt (it
   * keeps retrying). `apply` is called with batches (in commit order, at most `batchSize`
   * changes, the last op per (collection, id) within a batch, order otherwise kept); the resume
   * point is stored only after `apply` resolves. If `apply` or `lost` throws, the same changes
   * come again after a backoff.
   */
  start(handlers: OutsideChangeHandlers): Promise<void>;
  /** Stops following; waits for an `apply`/`lost` under way, not for the store. `start` may follow again. */
  stop(): Promise<void>;
}

export interface OutsideChangeOptions {
  /** Collection names to follow in `db`. */
  collections: string[];
  /** Where resume points are kept, one document per source (`_id` `outside-changes:<kind>:<db>`). */
  resumeStore: Collection<{ _id: string; [k: string]: unknown }>;
  /** Most changes per `apply`. Default 500. */
  batchSize?: number;
  log: Logger;
  /** Oplog: how often it is checked for new entries (one cheap probe). Default 50 ms. */
  pollIntervalMs?: number;
  /** Change streams: how long one getMore waits for events. Default 500 ms. */
  maxAwaitTimeMS?: number;
}

const OPS = ['insert', 'update', 'replace', 'delete'];

export async function detectOutsideChangeSource(client: MongoClient, db: Db, options: OutsideChangeOptions): Promise<OutsideChangeSource> {
  const { log } = options;
  const kind = await storeChangeKind(client, db, changeStreamPipeline(options.collections), log);
  if (kind === 'change-stream') {
    log.info({ database: db.databaseName }, 'outside changes: following a change stream');
    return new ChangeStreamSource(db, options);
  }
  if (kind === 'oplog') {
    log.info({ database: db.databaseName }, 'outside changes: following the oplog (local.oplog.rs)');
    return new OplogSource(client, db, options);
  }
  log.warn(
    { database: db.databaseName },
    'outside changes: the store has neither change streams nor a readable oplog; writes made to it by other services will be seen only by the periodic full comparison passes',
  );
  return NO_OUTSIDE_CHANGES;
}

/**
 * How this store reports its writes: change streams (MongoDB replica sets; `pipeline` is what is
 * tried), a readable oplog (the embedded FerretDB), or neither. Throws if the store is unreachable.
 */
export async function storeChangeKind(client: MongoClient, db: Db, pipeline: Document[], log: Logger): Promise<'change-stream' | 'oplog' | 'none'> {
  try {
    const probe = db.watch(pipeline, { maxAwaitTimeMS: 100 });
    try {
      await probe.tryNext();
    } finally {
      await probe.close().catch(() => {});
    }
    return 'change-stream';
  } catch (error) {
    if (unreachable(error)) throw error;
    log.debug({ err: error }, 'no change streams');
  }
  try {
    const local = client.db('local');
    if ((await local.listCollections({ name: 'oplog.rs' }, { nameOnly: true }).toArray()).length > 0) {
      await local.collection('oplog.rs').find({}, { limit: 1, projection: { ts: 1 } }).toArray();
      return 'oplog';
    }
  } catch (error) {
    if (unreachable(error)) throw error;
    log.debug({ err: error }, 'the oplog is not readable');
  }
  return 'none';
}

/** No source: other services' writes are seen by full comparison passes only. */
export const NO_OUTSIDE_CHANGES: OutsideChangeSource = { kind: 'none', async start() {}, async stop() {} };

/** Keeps the last op per (collection, id), at the position of that last op. */
export function coalesce(changes: OutsideChange[]): OutsideChange[] {
  const keys = changes.map((c) => `${c.collection}\u0000${BSON.EJSON.stringify({ id: c.id }, { relaxed: false })}`);
  const last = new Map<string, number>();
  keys.forEach((key, i) => last.set(key, i));
  return changes.filter((_, i) => last.get(keys[i]!) === i);
}

function changeStreamPipeline(collections: string[]): Document[] {
  return [
    { $match: { 'ns.coll': { $in: collections }, operationType: { $in: OPS } } },
    // Only what we report; `_id` (the resume token) must stay as it is.
    { $project: { operationType: 1, ns: 1, documentKey: 1 } },
  ];
}

function unreachable(error: unknown): boolean {
  return error instanceof MongoNetworkError || error instanceof MongoServerSelectionError;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done);
  });

/** Runs `loop` until stopped; start() resolves when the loop says it is under way. */
abstract class Follower implements OutsideChangeSource {
  abstract readonly kind: 'change-stream' | 'oplog';
  protected abort = new AbortController();
  protected readonly batchSize: number;
  protected readonly log: Logger;
  protected readonly resumeId: string;
  private running: Promise<void> | undefined;

  constructor(
    protected readonly db: Db,
    protected readonly options: OutsideChangeOptions,
    kind: string,
  ) {
    this.batchSize = Math.max(1, options.batchSize ?? 500);
    this.log = options.log;
    this.resumeId = `outside-changes:${kind}:${db.databaseName}`;
  }

  protected get stopped(): boolean {
    return this.abort.signal.aborted;
  }

  async start(handlers: OutsideChangeHandlers): Promise<void> {
    if (this.running) throw new Error('outside changes: already started');
    // Started again after a stop (this instance leads again: sync/outside-writes.ts).
    if (this.abort.signal.aborted) this.abort = new AbortController();
    let started!: () => void;
    const ready = new Promise<void>((r) => (started = r));
    this.running = this.loop(handlers, started).finally(started);
    await ready;
  }

  async stop(): Promise<void> {
    this.abort.abort(new Error('outside changes: stopped'));
    await this.running?.catch(() => {});
    this.running = undefined;
  }

  protected abstract loop(handlers: OutsideChangeHandlers, started: () => void): Promise<void>;

  protected async readResumePoint(): Promise<Record<string, unknown> | null> {
    return this.options.resumeStore.findOne({ _id: this.resumeId }, { promoteLongs: false, signal: this.abort.signal });
  }

  protected async writeResumePoint(fields: Record<string, unknown>): Promise<void> {
    const write = this.options.resumeStore.replaceOne(
      { _id: this.resumeId },
      { ...fields, collections: this.options.collections, updatedAt: new Date() },
      { upsert: true },
    );
    // stop() waits for it, but not for long: replaceOne takes no signal, and a store that is gone
    // would hold it for the server selection timeout. (If it lands later, no harm: its point's
    // changes were applied.)
    write.catch(() => {});
    await new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const stopped = () => (timer = setTimeout(() => reject(this.abort.signal.reason), 2_000));
      if (this.abort.signal.aborted) stopped();
      else this.abort.signal.addEventListener('abort', stopped, { once: true });
      write.then(
        () => resolve(),
        (error: unknown) => reject(error),
      ).finally(() => {
        clearTimeout(timer);
        this.abort.signal.removeEventListener('abort', stopped);
      });
    });
  }

  /** Backoff after a failure: 100 ms doubling up to 5 s. */
  protected async backoff(attempt: number, error: unknown, what: string): Promise<void> {
    if (this.stopped) return;
    const ms = Math.min(5_000, 100 * 2 ** Math.min(attempt, 6));
    this.log.warn({ err: error, retryInMs: ms }, `outside changes: ${what} failed`);
    await sleep(ms, this.abort.signal);
  }
}

// ---------------------------------------------------------------------------------------------
// Change streams (MongoDB 6+ replica sets). FerretDB has none: the test suite runs this against a
// scripted stream only (test/change-stream-source.test.ts).

const LOST_CODES = new Set([
  286, // ChangeStreamHistoryLost
  280, // ChangeStreamFatalError
  260, // InvalidResumeToken
  40576, // older servers: "resume point may no longer be in the oplog"
]);

class ChangeStreamSource extends Follower {
  readonly kind = 'change-stream' as const;

  constructor(db: Db, options: OutsideChangeOptions) {
    super(db, options, 'change-stream');
  }

  protected async loop(handlers: OutsideChangeHandlers, started: () => void): Promise<void> {
    let token: ResumeToken | undefined;
    let tokenRead = false;
    let failures = 0;
    while (!this.stopped) {
      let stream: ChangeStream | undefined;
      const closeOnStop = () => void stream?.close().catch(() => {});
      this.abort.signal.addEventListener('abort', closeOnStop);
      try {
        if (!tokenRead) {
          token = ((await this.readResumePoint())?.token as ResumeToken | undefined) ?? undefined;
          tokenRead = true;
        }
        stream = this.db.watch(changeStreamPipeline(this.options.collections), {
          ...(token ? { startAfter: token } : {}),
          maxAwaitTimeMS: this.options.maxAwaitTimeMS ?? 500,
          batchSize: this.batchSize,
          promoteLongs: false,
        });
        let event = await stream.tryNext(); // opens it: the starting point is fixed from here
        if (!token && !event && stream.resumeToken) {
          // First start: remember "now" at once, so that a restart resumes from here. (With an
          // event in hand, the token is stored after it is applied, below.)
          token = stream.resumeToken;
          await this.writeResumePoint({ token });
        }
        started();
        failures = 0;
        let persistedAt = Date.now();
        while (!this.stopped && !stream.closed) {
          if (!event) event = await stream.tryNext();
          if (!event) {
            // Idle: the token still moves on (post-batch resume token); keep it fresh now and
            // then so that a restart after a quiet spell does not find its point rolled off.
            if (stream.resumeToken && Date.now() - persistedAt > 10_000 && !this.stopped) {
              token = stream.resumeToken;
              await this.writeResumePoint({ token });
              persistedAt = Date.now();
            }
            continue;
          }
          const batch: OutsideChange[] = [];
          while (event) {
            batch.push(changeOf(event));
            event = batch.length < this.batchSize && stream.bufferedCount() > 0 ? await stream.tryNext() : null;
          }
          if (this.stopped) return;
          await handlers.apply(coalesce(batch));
          token = stream.resumeToken;
          await this.writeResumePoint({ token });
          persistedAt = Date.now();
        }
        // Closed by the server (an invalidate): open it again after the last token.
      } catch (error) {
        if (this.stopped) return;
        const code = error instanceof MongoError ? error.code : undefined;
        if (token && typeof code === 'number' && LOST_CODES.has(code)) {
          this.log.warn({ err: error }, 'outside changes: the change stream cannot resume from its stored point');
          try {
            await handlers.lost(`change stream cannot resume (${code}): ${(error as Error).message}`);
            token = undefined; // from now
          } catch (lostError) {
            await this.backoff(failures++, lostError, 'lost()');
          }
          continue;
        }
        started();
        await this.backoff(failures++, error, 'following the change stream');
      } finally {
        this.abort.signal.removeEventListener('abort', closeOnStop);
        await stream?.close().catch(() => {});
      }
    }
  }
}

function changeOf(event: ChangeStreamDocument): OutsideChange {
  const e = event as { operationType: string; ns: { coll: string }; documentKey: { _id: unknown } };
  return { collection: e.ns.coll, id: e.documentKey._id, op: e.operationType === 'delete' ? 'delete' : 'upsert' };
}

// ---------------------------------------------------------------------------------------------
// The oplog, as FerretDB v1.24 keeps it. What shapes this reader (FerretDB's source and probes):
//
// - Its SQLite backend pushes no filter on `ts` down: every query on the oplog decodes all of it
//   (60-150 µs an entry). A tailable awaitData cursor is no better: FerretDB serves one by
//   re-running the query every 10 ms while a getMore waits, so one open cursor kept a core busy
//   with 1000 entries in the oplog, idle, and woke 130-270 ms after a write (and FerretDB closes
//   a tailable cursor whose first batch is not full, and fails a getMore on one that has not
//   returned anything yet, since it finds its place again by the last record returned). So we poll, and
//   read only when a cheap probe (entry count and oldest entry) says the oplog changed; and all
//   followers of one server in a process share one poller (OplogPoller), so a test run with many
//   gateways reads the oplog once per change, not once per gateway.
// - `ts` comes from a process-wide counter when the entry is built, before it waits for the
//   SQLite write lock; writers commit their entries out of `ts` order, often (a tenth of them
//   with 8 concurrent writers here, up to 2 s late; a 1 s look-back missed 1-4 changes in 450
//   in stress runs here, this one none). So each read also looks back
//   REORDER_WINDOW_S (FerretDB's SQLite busy timeout is 10 s: an entry cannot be later than that)
//   before the newest entry seen, at the followed namespaces only, and skips the entries
//   already delivered (the newest of them remembered with the resume point, so a restart
//   neither misses them nor, mostly, repeats them).
// - Entries leave from the oldest end only (capped trimming). The resume point is the newest
//   entry seen (any namespace): if a read no longer contains it, entries after it may be gone
//   too, and the position is lost.

const REORDER_WINDOW_S = 15;
const SEEN_MAX = 50_000;
/** Delivered entries stored with the resume point (more would be re-delivered after a restart, not missed). */
const SEEN_STORED_MAX = 200;
/** How often a resume point moved only by other namespaces' entries is written. */
const IDLE_PERSIST_MS = 5_000;

interface OplogEntry {
  ts: Timestamp;
  op: string;
  ns: string;
  o?: { _id?: unknown; $set?: Record<string, unknown> } & Record<string, unknown>;
  o2?: { _id?: unknown };
}

/** Where a follower is: it needs every entry from `position` on, and its own namespaces' from `floor` on. */
interface ReadNeed {
  position: bigint;
  floor: bigint;
}

/**
 * One read of the oplog, in natural order: every entry (`covers` undefined), or every entry with
 * `ts` >= `covers.position`, and every entry of `namespaces` with `ts` > `covers.floor`.
 */
interface OplogRead {
  covers: ReadNeed | undefined;
  namespaces: Set<string>;
  entries: OplogEntry[];
}

const big = (ts: Timestamp) => (BigInt(ts.t) << 32n) | BigInt(ts.i);

/** Told whenever a server's oplog changed (an entry added or trimmed): store/commit-signal.ts. */
interface OplogWatcher {
  readonly client: MongoClient;
  changed(): void;
}

/** How often a watched oplog is probed when nobody follows it. */
const WATCH_INTERVAL_MS = 50;

/**
 * Calls `changed` soon after anything is written to the oplog of `client`'s server (any
 * namespace; spuriously too, e.g. when it is trimmed), sharing the follower's probe. Returns the
 * function that stops watching.
 */
export function watchOplog(client: MongoClient, changed: () => void): () => void {
  const watcher: OplogWatcher = { client, changed };
  const poller = OplogPoller.join(watcher);
  return () => poller.leave(watcher);
}

/** Probes and reads one server's oplog for every follower and watcher of it in this process. */
class OplogPoller {
  private static readonly pollers = new Map<string, OplogPoller>();
  private readonly followers = new Set<OplogSource>();
  private readonly watchers = new Set<OplogWatcher>();
  private readonly stopped = new AbortController();
  private inflight: { client: MongoClient; abort: AbortController } | undefined;
  private readAgain = true;
  private wake: (() => void) | undefined;
  private rotate = 0;

  private constructor(private readonly key: string) {}

  static join(member: OplogSource | OplogWatcher): OplogPoller {
    const { options } = member.client;
    const key = `${options.hosts.map(String).sort().join(',')}|${options.credentials?.username ?? ''}`;
    let poller = OplogPoller.pollers.get(key);
    const fresh = !poller;
    poller ??= new OplogPoller(key);
    OplogPoller.pollers.set(key, poller);
    if (member instanceof OplogSource) poller.followers.add(member);
    else poller.watchers.add(member);
    if (fresh) void poller.loop();
    poller.requestRead();
    return poller;
  }

  leave(member: OplogSource | OplogWatcher): void {
    if (member instanceof OplogSource) this.followers.delete(member);
    else this.watchers.delete(member);
    // Its owner may close its client next: do not leave a query of ours running on it.
    if (this.inflight?.client === member.client) this.inflight.abort.abort();
    if (this.followers.size === 0 && this.watchers.size === 0) {
      OplogPoller.pollers.delete(this.key);
      this.stopped.abort();
    }
  }

  /** Read again at the next turn, changed or not (a new follower, a failed apply). */
  requestRead(): void {
    this.readAgain = true;
    this.wake?.();
  }

  private async loop(): Promise<void> {
    let lastProbe: string | undefined;
    let lastSignalled: string | undefined;
    let failures = 0;
    while (!this.stopped.signal.aborted) {
      const followers = [...this.followers];
      const members = [...followers, ...this.watchers];
      const first = members[this.rotate % members.length];
      if (!first) break;
      const interval = Math.max(1, Math.min(...followers.map((f) => f.pollIntervalMs), this.watchers.size > 0 ? WATCH_INTERVAL_MS : Infinity));
      let wait = interval;
      let failedNow = false;
      const abort = new AbortController();
      this.inflight = { client: first.client, abort };
      try {
        const probe = await this.probe(first.client, abort.signal);
        if (probe !== lastSignalled) {
          lastSignalled = probe;
          for (const watcher of this.watchers) watcher.changed();
        }
        if (followers.length > 0 && (this.readAgain || probe !== lastProbe)) {
          this.readAgain = false;
          const began = Date.now();
          const needs = followers.map((f) => f.need());
          const covers = needs.includes(undefined)
            ? undefined
            : needs.reduce((a, b) => ({ position: b!.position < a!.position ? b!.position : a!.position, floor: b!.floor < a!.floor ? b!.floor : a!.floor }));
          const namespaces = new Set(followers.flatMap((f) => [...f.followed]));
          const entries = await this.read(first.client, covers, namespaces, abort.signal);
          lastProbe = probe; // taken before the read: an entry added during it is read next time
          for (const follower of this.followers) follower.offer({ covers, namespaces, entries });
          // Under a steady stream of writes keep the store at most about half busy with our reads.
          wait = Math.max(interval, Date.now() - began);
        }
        failures = 0;
      } catch (error) {
        lastProbe = undefined;
        lastSignalled = undefined;
        this.readAgain = true;
        if (this.stopped.signal.aborted) break;
        if (!abort.signal.aborted) {
          // Next time through another follower's client, in case this one was closed.
          this.rotate++;
          failedNow = true;
          wait = Math.min(5_000, 100 * 2 ** Math.min(failures++, 6));
          for (const follower of this.followers) follower.failed(error, wait);
        } else {
          wait = 0; // its follower left: go on with another
        }
      } finally {
        this.inflight = undefined;
      }
      if (wait > 0 && (failedNow || !this.readAgain || this.followers.size === 0)) await this.sleep(wait);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.stopped.signal.removeEventListener('abort', done);
        this.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.stopped.signal.addEventListener('abort', done);
      this.wake = done;
    });
  }

  /** Changes whenever an entry is added or trimmed; cheap (no entry is decoded but the oldest). */
  private async probe(client: MongoClient, signal: AbortSignal): Promise<string> {
    const oplog = client.db('local').collection<OplogEntry>('oplog.rs');
    const [count, oldest] = await Promise.all([
      oplog
        .aggregate<{ count?: number }>([{ $collStats: { count: {} } }], { signal })
        .toArray()
        .then(
          ([stats]) => String(stats?.count),
          (error: unknown) => {
            // A server without $collStats: read every time (the oldest entry alone would miss adds).
            if (error instanceof MongoServerError) return `?${Date.now()}`;
            throw error;
          },
        ),
      oplog.find({}, { limit: 1, projection: { _id: 0, ts: 1 }, signal }).toArray(),
    ]);
    return `${count}:${oldest[0]?.ts?.toString() ?? '-'}`;
  }

  private read(client: MongoClient, covers: ReadNeed | undefined, namespaces: Set<string>, signal: AbortSignal): Promise<OplogEntry[]> {
    const filter = covers
      ? { $or: [{ ts: { $gte: new Timestamp(covers.position) } }, { ts: { $gt: new Timestamp(covers.floor) }, ns: { $in: [...namespaces] } }] }
      : {};
    return client
      .db('local')
      .collection<OplogEntry>('oplog.rs')
      .find(filter, {
        projection: { _id: 0, ts: 1, op: 1, ns: 1, o: 1, 'o2._id': 1 },
        promoteValues: false, // a Long _id stays a Long; values as stored
        batchSize: 5_000,
        signal,
      })
      .toArray();
  }
}

class OplogSource extends Follower {
  readonly kind = 'oplog' as const;
  readonly pollIntervalMs: number;
  readonly followed: Set<string>;
  private readonly ownNs: string;
  private poller: OplogPoller | undefined;
  /** Newest entry seen (any namespace), once there is one. */
  private position: Timestamp | undefined;
  /** Followed entries delivered within the reorder window before `position`. */
  private seen = new Set<bigint>();
  /** No resume point was stored: the first read only fixes "now". */
  private fresh = false;
  private persistedAt = 0;
  /** Entries of other namespaces moved `position` since it was last stored. */
  private movedByOthers = false;
  private loaded = false;
  /** The newest read offered by the poller and not processed yet. */
  private pending: OplogRead | undefined;
  private wake: (() => void) | undefined;
  private onFailure: (() => void) | undefined;

  constructor(
    readonly client: MongoClient,
    db: Db,
    options: OutsideChangeOptions,
  ) {
    super(db, options, 'oplog');
    this.pollIntervalMs = options.pollIntervalMs ?? 50;
    this.followed = new Set(options.collections.map((c) => `${db.databaseName}.${c}`));
    this.ownNs = `${options.resumeStore.dbName}.${options.resumeStore.collectionName}`;
  }

  /** What a read must hold for this follower (undefined: the whole oplog). */
  need(): ReadNeed | undefined {
    if (this.fresh || !this.loaded || !this.position) return undefined; // (no position: the oplog was empty when we started)
    const position = big(this.position);
    const floor = position - (BigInt(REORDER_WINDOW_S) << 32n);
    return { position, floor: floor > 0n ? floor : 0n };
  }

  offer(read: OplogRead): void {
    this.pending = read;
    this.wake?.();
  }

  failed(error: unknown, retryInMs: number): void {
    if (this.stopped) return;
    this.log.warn({ err: error, retryInMs }, 'outside changes: reading the oplog failed');
    this.onFailure?.();
  }

  protected async loop(handlers: OutsideChangeHandlers, started: () => void): Promise<void> {
    this.onFailure = started; // start() resolves after a first failed attempt too
    let failures = 0;
    try {
      while (!this.stopped) {
        try {
          if (!this.loaded) {
            await this.load();
            this.loaded = true;
            this.poller = OplogPoller.join(this);
          }
          const read = await this.next();
          if (!read || !(await this.process(read, handlers))) continue;
          started();
          failures = 0;
        } catch (error) {
          if (this.stopped) return;
          started();
          await this.backoff(failures++, error, 'following the oplog');
          this.poller?.requestRead();
        }
      }
    } finally {
      this.poller?.leave(this);
      // A start after this one reads the resume point again: another instance may have moved it.
      this.poller = undefined;
      this.loaded = false;
      this.pending = undefined;
    }
  }

  /** The newest read offered, waiting for one (undefined when stopped). */
  private async next(): Promise<OplogRead | undefined> {
    while (!this.pending && !this.stopped) {
      await new Promise<void>((resolve) => {
        const done = () => {
          this.abort.signal.removeEventListener('abort', done);
          this.wake = undefined;
          resolve();
        };
        this.wake = done;
        this.abort.signal.addEventListener('abort', done);
      });
    }
    const read = this.pending;
    this.pending = undefined;
    return this.stopped ? undefined : read;
  }

  private async load(): Promise<void> {
    const stored = await this.readResumePoint();
    this.fresh = !stored;
    this.position = stored?.ts instanceof Timestamp ? stored.ts : undefined; // none: the oplog was empty
    const recent = Array.isArray(stored?.recent) ? stored.recent.filter((t): t is Timestamp => t instanceof Timestamp) : [];
    this.seen = new Set(recent.map(big));
    this.persistedAt = Date.now();
    this.movedByOthers = false;
  }

  /** Handles one read; false if it was of no use (begun before this follower joined). */
  private async process(read: OplogRead, handlers: OutsideChangeHandlers): Promise<boolean> {
    const need = this.need();
    if (read.covers) {
      if (!need || read.covers.position > need.position || read.covers.floor > need.floor) return false;
      for (const ns of this.followed) if (!read.namespaces.has(ns)) return false;
    }
    const entries = need ? read.entries.filter((e) => big(e.ts) > need.floor) : read.entries;
    const newest = entries.reduce<Timestamp | undefined>((max, e) => (!max || big(e.ts) > big(max) ? e.ts : max), undefined);
    if (this.fresh) {
      // First start: everything in the oplog is the past (the caller's full pass covers it).
      await this.restartFromNow(entries, newest);
      this.fresh = false;
      return true;
    }
    if (this.position && !entries.some((e) => e.ts.equals(this.position!))) {
      const reason = `the oplog no longer holds the resume point ${this.position.toString()} (it was trimmed past it)`;
      this.log.warn({ database: this.db.databaseName }, `outside changes: ${reason}`);
      await handlers.lost(reason);
      await this.restartFromNow(entries, newest);
      return true;
    }

    let batch: OutsideChange[] = [];
    let batchTs: bigint[] = [];
    let upTo = this.position;
    const flush = async () => {
      const delivered = batch.length > 0;
      if (delivered) {
        await handlers.apply(coalesce(batch));
        for (const t of batchTs) this.seen.add(t);
        batch = [];
        batchTs = [];
      }
      this.position = upTo;
      this.prune();
      // Entries of other namespaces move the position too; store that now and then, or a
      // restart after a long quiet spell here would find its point trimmed away.
      if (delivered || (this.movedByOthers && Date.now() - this.persistedAt > IDLE_PERSIST_MS)) await this.persist();
    };
    for (const e of entries) {
      const t = big(e.ts);
      if (!upTo || t > big(upTo)) {
        upTo = e.ts;
        if (e.ns !== this.ownNs) this.movedByOthers = true; // (our own resume point writes do not count)
      }
      if (!this.followed.has(e.ns) || this.seen.has(t)) continue;
      const id = e.op === 'u' ? e.o2?._id : e.o?._id;
      if (id === undefined || (e.op !== 'i' && e.op !== 'u' && e.op !== 'd')) continue;
      const document = e.op === 'i' ? e.o : e.op === 'u' && e.o?.$set && !Object.keys(e.o).some((k) => k !== '$set' && k !== '$v') ? e.o.$set : undefined;
      batch.push({ collection: e.ns.slice(this.db.databaseName.length + 1), id, op: e.op === 'd' ? 'delete' : 'upsert', ...(document ? { document } : {}) });
      batchTs.push(t);
      if (batch.length >= this.batchSize) {
        if (this.stopped) return true;
        await flush();
      }
    }
    if (!this.stopped) await flush();
    return true;
  }

  /** Everything read so far is the past: the next read looks back over it, and must skip it. */
  private async restartFromNow(entries: OplogEntry[], newest: Timestamp | undefined): Promise<void> {
    this.position = newest;
    this.seen = new Set(entries.filter((e) => this.followed.has(e.ns)).map((e) => big(e.ts)));
    this.prune();
    await this.persist();
  }

  private prune(): void {
    if (!this.position) return;
    const floor = big(this.position) - (BigInt(REORDER_WINDOW_S) << 32n);
    for (const t of this.seen) if (t <= floor) this.seen.delete(t);
    if (this.seen.size > SEEN_MAX) {
      // Far more writes in the window than expected: forget the oldest (may repeat, never skips).
      const sorted = [...this.seen].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      this.seen = new Set(sorted.slice(sorted.length - SEEN_MAX));
    }
  }

  private async persist(): Promise<void> {
    const recent = [...this.seen].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)).slice(-SEEN_STORED_MAX);
    await this.writeResumePoint({ ts: this.position ?? null, recent: recent.map((t) => new Timestamp(t)) });
    this.persistedAt = Date.now();
    this.movedByOthers = false;
  }
}
