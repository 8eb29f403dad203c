// Update sequences that readers can follow in commit order.
//
// Every write takes sequence numbers from a per-collection counter document. A sequence is
// taken before its write commits, so a write with a lower sequence can become visible after
// one with a higher sequence. To keep readers from passing it, each allocation also records a
// lease { lo, hi } in the same counter document, in the same atomic update; the writer removes
// the lease once its write has committed. Readers only read up to the *horizon*: below the
// lowest open lease, or the counter itself when none is open. Everything at or below the
// horizon has committed (or will never exist).
//
// A writer that dies holding a lease would stall readers, so leases expire after `leaseTtlMs`
// and readers then ignore (and remove) them. A live writer renews its open leases every quarter
// of the TTL, so a write the store is slow to take (a big push on a slow store) holds readers
// back until it commits instead of being passed; renewals stop after MAX_LEASE_LIFE_TTLS TTLs,
// so a write that hangs holds them back for a bounded time. A write that commits after its
// lease expired may already have been passed by a reader; its writer notices that `release()`
// found no lease and re-sequences the documents it wrote (see push.ts), so they are read again
// above the horizon.
//
// Only single-document updates are used, so this works on MongoDB and FerretDB alike. MongoDB
// makes each of them atomic, which keeps any number of gateway instances correct. FerretDB v1
// does not (it reads, modifies and writes back without a lock: 50 concurrent $inc on one
// document were seen to add up to 7), so this class runs all its updates of the counter document
// one at a time within the process and, given a `counterLock`, under a lock shared with the
// other instances (store-locks.ts): then several gateways per FerretDB are safe too.
import { randomBytes } from 'node:crypto';
import type { Collection } from 'mongodb';
import type { SharedLocks } from './instances.ts';

const MAX_ALLOCATION_ATTEMPTS = 100;
/** The counter's key among the shared locks (store-locks.ts). */
const COUNTER_LOCK_PREFIX = '_tributary_sequences/';
/** A lease is renewed for at most this many TTLs from its allocation (readers wait that long for a hung write). */
export const MAX_LEASE_LIFE_TTLS = 10;

function newEpoch(): string {
  return randomBytes(8).toString('hex');
}

interface LeaseRecord {
  lo: number;
  hi: number;
  at: Date;
}

export interface CounterDocument {
  _id: string;
  seq: number;
  leases: Record<string, LeaseRecord>;
  /**
   * Names this feed: set once when the counter is created. A copy restored from a backup keeps
   * it; a database made anew has another, which tells its clients to reset (sync/client-reset.ts).
   */
  epoch?: string;
}

export interface Lease {
  lo: number;
  hi: number;
  /** Removes the lease. False when it had expired first (a reader may have passed it). */
  release(): Promise<boolean>;
}

export interface SequencerOptions {
  leaseTtlMs: number;
  /** Where single-document updates are not atomic: every update of the counter runs holding this lock. */
  counterLock?: SharedLocks | null;
}

/** A lease this process holds: renewed while open (renewOpenLeases). */
interface OpenLease {
  /** When it was allocated, and the `at` last written for it (the counter document's). */
  born: number;
  at: Date;
}

interface Pending<T> {
  resolve: (value: T) => void;
  reject: (error: unknown) => void;
}

export class Sequencer {
  private allocations: Array<Pending<Lease> & { count: number }> = [];
  private releases: Array<Pending<boolean> & { token: string }> = [];
  private expired = new Set<string>();
  private readonly open = new Map<string, OpenLease>();
  private renewTimer: NodeJS.Timeout | null = null;
  private renewDue = false;
  private working = false;

  constructor(
    private readonly counters: Collection<CounterDocument>,
    private readonly key: string,
    private readonly options: SequencerOptions,
  ) {}

  /** This feed's epoch (CounterDocument.epoch), known after init(). */
  epoch = '';

  async init(): Promise<void> {
    await this.underCounterLock(async () => {
      await this.counters.updateOne({ _id: this.key }, { $setOnInsert: { seq: 0, leases: {}, epoch: newEpoch() } }, { upsert: true });
      // A counter created before epochs existed gets one (init, not the allocation path, writes it).
      await this.counters.updateOne({ _id: this.key, epoch: { $exists: false } }, { $set: { epoch: newEpoch() } });
    });
    this.epoch = (await this.counters.findOne({ _id: this.key }, { projection: { epoch: 1 } }))!.epoch!;
  }

  /** Runs `task` holding the counter's lock among instances, where updates need one. */
  private underCounterLock<T>(task: () => Promise<T>): Promise<T> {
    const lock = this.options.counterLock;
    return lock ? lock.run([`${COUNTER_LOCK_PREFIX}${this.key}`], task) : task();
  }

  /** The highest sequence ever allocated (committed or not). */
  async allocated(): Promise<number> {
    return (await this.counters.findOne({ _id: this.key }, { projection: { seq: 1 } }))?.seq ?? 0;
  }

  /**
   * Reserves `count` consecutive sequences under a lease. Concurrent calls are coalesced into
   * one compare-and-set on the counter document.
   */
  allocate(count: number): Promise<Lease> {
    if (!Number.isInteger(count) || count < 1) throw new RangeError(`cannot allocate ${count} sequences`);
    return new Promise((resolve, reject) => {
      this.allocations.push({ count, resolve, reject });
      void this.work();
    });
  }

  /** The highest sequence at or below which every write has committed. */
  async horizon(): Promise<number> {
    const counter = await this.counters.findOne({ _id: this.key });
    if (!counter) return 0;
    const now = Date.now();
    let horizon = counter.seq;
    for (const [token, lease] of Object.entries(counter.leases ?? {})) {
      if (now - lease.at.getTime() > this.options.leaseTtlMs) this.expired.add(token);
      else horizon = Math.min(horizon, lease.lo - 1);
    }
    if (this.expired.size > 0) void this.work();
    return horizon;
  }

  private release(token: string): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.releases.push({ token, resolve, reject });
      void this.work();
    });
  }

  /** The only place that updates the counter document, one update at a time. */
  private async work(): Promise<void> {
    if (this.working) return;
    this.working = true;
    try {
      while (this.allocations.length > 0 || this.releases.length > 0 || this.expired.size > 0 || this.renewDue) {
        const allocations = this.allocations.splice(0);
        const releases = this.releases.splice(0);
        const expired = [...this.expired];
        this.expired.clear();
        const renew = this.renewDue;
        this.renewDue = false;
        try {
          await this.underCounterLock(async () => {
            await settle(allocations, () => this.compareAndSetAllocate(allocations.map((a) => a.count)));
            await settle(releases, () => this.removeLeases(releases.map((r) => r.token), expired));
            // A renewal that fails leaves the lease to expire: its write is then re-sequenced.
            if (renew) await this.renewOpenLeases().catch(() => {});
          });
        } catch (error) {
          // The lock was not had: nothing was done (a waiter already settled ignores this).
          for (const waiter of [...allocations, ...releases]) waiter.reject(error);
        }
      }
    } finally {
      this.working = false;
    }
  }

  /** Starts or stops the renewal timer as leases open and close. */
  private scheduleRenewals(): void {
    if (this.open.size === 0) {
      if (this.renewTimer) clearInterval(this.renewTimer);
      this.renewTimer = null;
    } else if (!this.renewTimer) {
      this.renewTimer = setInterval(() => {
        this.renewDue = true;
        void this.work();
      }, this.options.leaseTtlMs / 4);
      this.renewTimer.unref();
    }
  }

  /**
   * Moves each open lease's `at` to now, as long as it was last renewed less than half the TTL
   * ago (else a reader on another instance may already have passed it: it is left to expire, and
   * its write re-sequenced) and is younger than MAX_LEASE_LIFE_TTLS. Each update matches the
   * `at` this process wrote, so a lease removed meanwhile is never written back.
   */
  private async renewOpenLeases(): Promise<void> {
    const now = Date.now();
    const ttl = this.options.leaseTtlMs;
    for (const [token, lease] of this.open) {
      if (now - lease.born > MAX_LEASE_LIFE_TTLS * ttl || now - lease.at.getTime() >= ttl / 2) {
        this.open.delete(token);
        continue;
      }
      // Every open lease at each tick: renewed at most a quarter TTL after it was taken or last
      // renewed, it keeps a quarter TTL of margin before the half-TTL limit above.
      const at = new Date(now);
      const result = await this.counters.updateOne({ _id: this.key, [`leases.${token}.at`]: lease.at }, { $set: { [`leases.${token}.at`]: at } });
      if (result.matchedCount === 1) lease.at = at;
      else this.open.delete(token);
    }
    this.scheduleRenewals();
  }

  private async compareAndSetAllocate(counts: number[]): Promise<Lease[]> {
    const total = counts.reduce((a, b) => a + b, 0);
    for (let attempt = 0; ; attempt++) {
      // Bounded: instances that keep winning for this long mean something else is wrong.
      if (attempt === MAX_ALLOCATION_ATTEMPTS) throw new Error(`sequence counter ${this.key}: lost ${attempt} allocations in a row to other writers`);
      const counter = await this.counters.findOne({ _id: this.key }, { projection: { seq: 1 } });
      if (!counter) throw new Error(`sequence counter ${this.key} is missing; was init() called?`);
      const at = new Date();
      const set: Record<string, unknown> = { seq: counter.seq + total };
      const leases: Lease[] = [];
      let next = counter.seq + 1;
      for (const count of counts) {
        const token = `l${randomBytes(8).toString('hex')}`;
        const lease = { lo: next, hi: next + count - 1 };
        set[`leases.${token}`] = { ...lease, at };
        leases.push({ ...lease, release: () => this.release(token) });
        next += count;
      }
      const result = await this.counters.updateOne({ _id: this.key, seq: counter.seq }, { $set: set });
      if (result.matchedCount === 1) {
        for (const key of Object.keys(set)) if (key.startsWith('leases.')) this.open.set(key.slice('leases.'.length), { born: at.getTime(), at });
        this.scheduleRenewals();
        return leases;
      }
      // Another gateway instance allocated in between: back off a little and retry.
      await new Promise((r) => setTimeout(r, Math.min(50, 2 ** attempt) * Math.random()));
    }
  }

  /**
   * Removes released and expired leases in one update. A released lease counts as still held
   * only if it is younger than half the TTL: that margin keeps an owner from trusting a lease
   * that a reader on another instance (with a slightly different clock) already passed.
   */
  private async removeLeases(released: string[], expired: string[]): Promise<boolean[]> {
    const counter = await this.counters.findOne({ _id: this.key }, { projection: { leases: 1 } });
    const now = Date.now();
    const held = released.map((token) => {
      const lease = counter?.leases?.[token];
      return lease !== undefined && now - lease.at.getTime() < this.options.leaseTtlMs / 2;
    });
    for (const token of released) this.open.delete(token);
    this.scheduleRenewals();
    const unset = Object.fromEntries([...released, ...expired].map((t) => [`leases.${t}`, ''] as const)) as Record<string, ''>;
    if (Object.keys(unset).length > 0) await this.counters.updateOne({ _id: this.key }, { $unset: unset });
    return held;
  }
}

/** Runs `run` for a batch of waiters and hands each its own result, or everyone the error. */
async function settle<T>(waiters: Array<Pending<T>>, run: () => Promise<T[]>): Promise<void> {
  if (waiters.length === 0) return;
  try {
    const results = await run();
    waiters.forEach((w, i) => w.resolve(results[i]!));
  } catch (error) {
    waiters.forEach((w) => w.reject(error));
  }
}
