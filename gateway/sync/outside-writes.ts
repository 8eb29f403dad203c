// Keeps sync in step with writes the gateway did not make: documents that were in MongoDB
// before it started, and what other services write while it runs (ARCHITECTURE.md, "Outside
// writers").
//  - A source of outside changes (store/outside-changes.ts: MongoDB change streams, FerretDB's
//    oplog) reports the ids other services wrote; each batch is reconciled (sync/reconcile.ts)
//    under the documents' locks, and its resume point is kept only once that is done.
//  - A full comparison pass per collection adopts documents without metadata and catches any
//    change the source cannot tell (none: no source; or its resume point was lost). It runs in
//    the background at start, whenever the source loses its place, and, without a source, every
//    `fullPassIntervalMs`. It compares each document's field hashes with its metadata's, so it
//    reads the collection once and writes only what changed.
//  - Both run on one gateway instance at a time, the holder of the follower lease
//    (store/role-lease.ts): two followers would sequence each outside change twice. The other
//    instances stand by, take the lease over when its holder stops or dies, and learn of the
//    repairs like of any write, from the side collection (store/change-feed.ts).
import type { Logger } from 'pino';
import { CollectionStore, idKey, type PlainDocument, type StoredId } from '../store/collection-store.ts';
import type { OutsideChange, OutsideChangeSource } from '../store/outside-changes.ts';
import type { RoleLease } from '../store/role-lease.ts';
import type { ReconcileCounts } from './reconcile.ts';
import type { CollectionWriter } from './push.ts';
import type { FieldViolation } from './validate.ts';

export interface FollowedCollection {
  store: CollectionStore;
  writer: CollectionWriter;
}

export interface OutsideWritesOptions {
  /** Without a source of outside changes, how often a full pass runs (0: only at start). */
  fullPassIntervalMs: number;
  /** Documents reconciled under one set of locks and one sequence lease. */
  batchSize: number;
  log: Logger;
  /** Whether the operator turned following off (TRIBUTARY_FOLLOW_OUTSIDE_CHANGES=false): then no source is no surprise. */
  followingDisabled?: boolean;
}

export interface PassStatus {
  state: 'waiting' | 'running' | 'done' | 'failed';
  /** Documents read so far in the current (or last) pass. */
  read: number;
  counts: ReconcileCounts;
  startedAt: string | null;
  finishedAt: string | null;
}

export interface OutsideWritesStatus {
  source: OutsideChangeSource['kind'];
  /** Whether this instance follows outside changes ('leader') or another one does ('standby'). */
  role: 'leader' | 'standby';
  passes: Record<string, PassStatus>;
  /** Documents that fail schema.graphql, per collection (TRIBUTARY_INVALID_DOCUMENTS). */
  invalidDocuments: Record<string, number>;
}

export class OutsideWrites {
  private readonly passes = new Map<string, PassStatus>();
  private readonly running = new Map<string, Promise<void>>();
  private readonly invalid = new Map<string, Map<string, FieldViolation>>();
  private passTimer: NodeJS.Timeout | null = null;
  private leaseTimer: NodeJS.Timeout | null = null;
  private stopped = false;
  /** Whether this instance follows now; `term` counts the times it started to, so a pass of an earlier term stops. */
  private leading = false;
  private term = 0;
  private refreshing: Promise<void> | null = null;
  private stopping: Promise<void> | null = null;

  constructor(
    private readonly collections: Map<string, FollowedCollection>,
    private readonly source: OutsideChangeSource,
    private readonly lease: RoleLease,
    private readonly options: OutsideWritesOptions,
  ) {
    for (const name of collections.keys()) {
      this.passes.set(name, { state: 'waiting', read: 0, counts: { adopted: 0, changed: 0, deleted: 0 }, startedAt: null, finishedAt: null });
      this.invalid.set(name, new Map());
    }
  }

  /** For CollectionWriter: a document found to fail the schema (or to pass again). */
  invalidReporter(collection: string): (key: string, violation: FieldViolation | null) => void {
    return (key, violation) => {
      const found = this.invalid.get(collection)!;
      if (violation) found.set(key, violation);
      else found.delete(key);
    };
  }

  /**
   * Claims the follower lease, and keeps renewing or claiming it. While this instance holds it,
   * it follows the source and runs a full pass of every collection in the background; holding it
   * from the start, this resolves once the source's starting point is fixed.
   */
  async start(): Promise<void> {
    if (this.source.kind === 'none') {
      const message = 'no change stream or oplog: writes made by other services are seen only by full comparison passes';
      if (this.options.followingDisabled) this.options.log.info(message);
      else this.options.log.warn(message);
    }
    await this.refreshLease();
    this.leaseTimer = setInterval(() => void this.refreshLease(), this.lease.refreshIntervalMs);
    this.leaseTimer.unref();
  }

  status(): OutsideWritesStatus {
    return {
      source: this.source.kind,
      role: this.leading ? 'leader' : 'standby',
      passes: Object.fromEntries(this.passes),
      invalidDocuments: Object.fromEntries([...this.invalid].map(([name, found]) => [name, found.size])),
    };
  }

  /** Resolves when no full pass is running (tests, benchmarks). */
  async settled(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running.values()]);
  }

  /** Stops following and gives the lease up, so that another instance takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.leaseTimer) clearInterval(this.leaseTimer);
    await this.refreshing;
    await this.stopLeading();
    await this.lease.release().catch((error: unknown) => this.options.log.warn({ err: error }, 'outside changes: could not release the follower lease; another instance takes over when it expires'));
  }

  /** Renews or claims the lease, and starts or stops following to match. One at a time. */
  private refreshLease(): Promise<void> {
    this.refreshing ??= (async () => {
      try {
        let holds: boolean;
        try {
          holds = await this.lease.refresh();
        } catch (error) {
          this.options.log.warn({ err: error }, 'outside changes: could not renew or claim the follower lease');
          holds = this.lease.holds();
        }
        if (this.stopped) return;
        if (holds && !this.leading) await this.startLeading();
        else if (!holds && this.leading) {
          this.options.log.warn('outside changes: this instance lost the follower lease; another instance follows them now');
          await this.stopLeading();
        }
      } catch (error) {
        this.options.log.error({ err: error }, 'outside changes: could not start or stop following; trying again at the next lease renewal');
      } finally {
        this.refreshing = null;
      }
    })();
    return this.refreshing;
  }

  private async startLeading(): Promise<void> {
    await this.stopping;
    this.leading = true;
    this.term++;
    this.options.log.info({ source: this.source.kind }, 'outside changes: this instance follows them (it holds the follower lease)');
    await this.source.start({
      apply: (changes) => this.apply(changes),
      lost: async (reason) => {
        this.options.log.warn({ reason }, 'outside changes: resume point lost; comparing every collection in full');
        this.passAll();
      },
    });
    if (this.source.kind === 'none' && this.options.fullPassIntervalMs > 0) {
      this.passTimer = setInterval(() => this.passAll(), this.options.fullPassIntervalMs);
      this.passTimer.unref();
    }
    this.passAll();
  }

  /** Stops the source and the passes; `leading` is false from the first moment (a pass may call it). */
  private stopLeading(): Promise<void> {
    if (!this.leading) return this.stopping ?? Promise.resolve();
    this.leading = false;
    if (this.passTimer) clearInterval(this.passTimer);
    this.passTimer = null;
    this.stopping = (async () => {
      await this.source.stop();
      await Promise.allSettled([...this.running.values()]);
    })().finally(() => (this.stopping = null));
    return this.stopping;
  }

  /**
   * Whether a pass of this term may go on: this instance still follows, and its lease is still
   * valid. A holder whose renewals stalled must not write (another instance may take over once
   * the lease expires): it stands down now, and follows again once a renewal succeeds.
   */
  private active(term: number): boolean {
    if (this.stopped || !this.leading || this.term !== term) return false;
    if (this.lease.holds()) return true;
    this.options.log.warn('outside changes: the follower lease was not renewed in time; this instance stops following until it is');
    void this.stopLeading();
    return false;
  }

  private async apply(changes: OutsideChange[]): Promise<void> {
    if (!this.active(this.term)) throw new Error('outside changes: this instance no longer holds the follower lease');
    const byCollection = new Map<string, StoredId[]>();
    for (const change of changes) {
      const followed = this.collections.get(change.collection);
      // The gateway's own writes come back too: those need no repair, nor any read.
      if (!followed || followed.store.isOwnWrite(change.id as StoredId, change.op, change.document as PlainDocument | undefined)) continue;
      const ids = byCollection.get(change.collection) ?? [];
      ids.push(change.id as StoredId);
      byCollection.set(change.collection, ids);
    }
    await Promise.all(
      [...byCollection].map(async ([name, ids]) => {
        const { writer } = this.collections.get(name)!;
        for (let i = 0; i < ids.length; i += this.options.batchSize) await writer.reconcile(ids.slice(i, i + this.options.batchSize));
      }),
    );
  }

  /** Starts a full pass of every collection that is not in one already. */
  private passAll(): void {
    for (const name of this.collections.keys()) {
      if (this.running.has(name) || !this.active(this.term)) continue;
      const pass = this.fullPass(name, this.term).finally(() => this.running.delete(name));
      this.running.set(name, pass);
    }
  }

  private async fullPass(name: string, term: number): Promise<void> {
    const { store, writer } = this.collections.get(name)!;
    const status: PassStatus = { state: 'running', read: 0, counts: { adopted: 0, changed: 0, deleted: 0 }, startedAt: new Date().toISOString(), finishedAt: null };
    this.passes.set(name, status);
    const log = this.options.log.child({ collection: name });
    const began = Date.now();
    let lastLog = began;
    const add = (counts: ReconcileCounts) => {
      for (const key of Object.keys(counts) as Array<keyof ReconcileCounts>) status.counts[key] += counts[key];
    };
    try {
      // What the metadata says of each document: a digest of its field hashes (or a tombstone).
      // About 100 bytes per document for the length of the pass.
      const known = new Map<string, { id: StoredId; digest: string | null }>();
      for await (const meta of store.meta.find({}, { projection: { hashes: 1, deleted: 1 } }).batchSize(5_000)) {
        if (!this.active(term)) return void (status.state = 'waiting');
        known.set(idKey(meta._id), { id: meta._id, digest: meta.deleted ? null : CollectionStore.digest(meta.hashes ?? {}) });
      }
      let fresh = new Map<string, PlainDocument>();
      let changed: StoredId[] = [];
      const flush = async () => {
        if (fresh.size > 0) add(await writer.reconcile([...fresh.values()].map((d) => d._id), { docs: fresh }));
        if (changed.length > 0) add(await writer.reconcile(changed));
        fresh = new Map();
        changed = [];
      };
      for await (const doc of store.documents.find({}).batchSize(1_000)) {
        if (!this.active(term)) return void (status.state = 'waiting');
        status.read++;
        const key = idKey(doc._id);
        const was = known.get(key);
        known.delete(key);
        if (was === undefined) fresh.set(key, doc);
        else if (was.digest === null || was.digest !== CollectionStore.digest(store.fieldHashes(doc))) changed.push(doc._id);
        if (fresh.size + changed.length >= this.options.batchSize) await flush();
        if (Date.now() - lastLog > 10_000) {
          lastLog = Date.now();
          log.info({ read: status.read, ...status.counts, perSecond: Math.round(status.read / ((Date.now() - began) / 1000)) }, 'comparing documents with sync metadata');
        }
      }
      await flush();
      // Live metadata whose document was not found: deleted by another service.
      const gone = [...known.values()].flatMap(({ id, digest }) => (digest === null ? [] : [id]));
      for (let i = 0; i < gone.length; i += this.options.batchSize) {
        if (!this.active(term)) return void (status.state = 'waiting');
        add(await writer.reconcile(gone.slice(i, i + this.options.batchSize)));
      }
      status.state = 'done';
      status.finishedAt = new Date().toISOString();
      const seconds = (Date.now() - began) / 1000;
      log.info({ read: status.read, ...status.counts, seconds, perSecond: Math.round(status.read / Math.max(seconds, 0.001)) }, 'sync metadata matches the documents');
    } catch (error) {
      status.state = 'failed';
      log.error({ err: error }, 'full comparison pass failed; it runs again at the next start or loss of the resume point');
    }
  }
}
