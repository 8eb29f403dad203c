// Locks shared by every gateway instance on one database (ARCHITECTURE.md, "Several instances").
//
// A lock is the document `{ _id: <key>, holder, at }` in `_tributary_locks`: taking it is an
// insert of that `_id`, and of several instances inserting at once exactly one succeeds, on
// MongoDB and on FerretDB alike (FerretDB v1 does not make a single-document update atomic,
// see sequencer.ts, but it refuses a second insert of one `_id`). Releasing it is a delete
// that names its holder.
//
//  - A task takes all its keys at once (one unordered insertMany), or none: what it got is
//    given back when any key is busy, and it tries again after a jittered wait (bounded by
//    `waitMs`). No instance holds part of a set while waiting for the rest, so no cycle forms.
//  - The holder renews `at` every ttl / 4 while it holds a lock. A lock whose `at` is older than
//    the TTL, or whose holder is a process of this host that no longer exists (isDead), is taken
//    over: the first waiter to insert the takeover marker `takeover:<key>:<at>:<holder>` deletes
//    it (by key, holder and `at`), so two waiters never both delete a lock, and a lock taken
//    meanwhile by someone else is never the one deleted.
// So two instances never hold one key at once while a renewal takes less than ttl / 4 to run
// and answer (the event loop is never blocked that long).
import type { Collection } from 'mongodb';
import { isDead, markLive, newHolder, type LeaseHolder } from './role-lease.ts';
import { duplicateKeyIndexes, isDuplicateKey } from './write-errors.ts';

export const LOCKS_COLLECTION = '_tributary_locks';

export interface LockDocument {
  _id: string;
  holder: LeaseHolder;
  at: Date;
}

export interface StoreLocksOptions {
  /** How long a lock lasts without renewal. */
  ttlMs: number;
  /** How long a task waits for its locks before it fails (LockTimeoutError). */
  waitMs: number;
}

export const DEFAULT_STORE_LOCKS: StoreLocksOptions = { ttlMs: 15_000, waitMs: 60_000 };

export class LockTimeoutError extends Error {
  override name = 'LockTimeoutError';
}

export class StoreLocks {
  readonly self: LeaseHolder = newHolder();
  /** Keys held by this instance (one task at a time per key: its callers lock in-process first). */
  private readonly held = new Set<string>();
  private renewTimer: NodeJS.Timeout | null = null;
  /** A renewal is in flight: a tick meanwhile is skipped (a slow store must not queue them). */
  private renewing = false;

  constructor(
    private readonly locks: Collection<LockDocument>,
    private readonly options: StoreLocksOptions = DEFAULT_STORE_LOCKS,
  ) {
    markLive(this.self, true);
  }

  /** Runs `task` holding every key (taken from all instances at once, or waited for). */
  async run<T>(keys: readonly string[], task: () => Promise<T>): Promise<T> {
    const unique = [...new Set(keys)];
    if (unique.length === 0) return task();
    await this.acquire(unique);
    try {
      return await task();
    } finally {
      // A release that fails leaves locks that expire after the TTL.
      await this.release(unique).catch(() => {});
    }
  }

  /** Stops renewing (the instance stops; what it holds expires, or is taken over as dead). */
  close(): void {
    if (this.renewTimer) clearInterval(this.renewTimer);
    this.renewTimer = null;
    markLive(this.self, false);
  }

  private async acquire(keys: string[]): Promise<void> {
    const deadline = Date.now() + this.options.waitMs;
    for (let attempt = 0; ; attempt++) {
      const taken = await this.insert(keys);
      if (taken.length === keys.length) {
        for (const key of keys) this.held.add(key);
        this.scheduleRenewals();
        return;
      }
      if (taken.length > 0) await this.locks.deleteMany({ _id: { $in: taken }, 'holder.instance': this.self.instance });
      const busy = keys.filter((k) => !taken.includes(k));
      await this.takeOverStale(busy);
      if (Date.now() >= deadline) throw new LockTimeoutError(`${busy.length} of ${keys.length} locks still held by other instances after ${this.options.waitMs} ms (e.g. ${busy[0]})`);
      await new Promise((r) => setTimeout(r, Math.random() * Math.min(100, 2 ** attempt)));
    }
  }

  /** Inserts the locks; returns the keys taken (the others are held by someone). */
  private async insert(keys: string[]): Promise<string[]> {
    const at = new Date();
    try {
      await this.locks.insertMany(
        keys.map((key) => ({ _id: key, holder: this.self, at })),
        { ordered: false },
      );
      return keys;
    } catch (error) {
      const busy = duplicateKeyIndexes(error);
      if (!busy) throw error;
      return keys.filter((_, i) => !busy.has(i));
    }
  }

  /** Deletes the locks among `keys` whose holder stopped renewing them or is known dead. */
  private async takeOverStale(keys: string[]): Promise<void> {
    const now = Date.now();
    const found = await this.locks.find({ _id: { $in: keys } }).toArray();
    for (const lock of found) {
      if (now - lock.at.getTime() <= this.options.ttlMs && !isDead(lock.holder, this.self)) continue;
      const marker = `takeover:${lock._id}:${lock.at.getTime()}:${lock.holder.instance}`;
      try {
        await this.locks.insertOne({ _id: marker, holder: this.self, at: new Date() });
      } catch (error) {
        if (isDuplicateKey(error)) continue; // another waiter takes it over
        throw error;
      }
      try {
        await this.locks.deleteOne({ _id: lock._id, 'holder.instance': lock.holder.instance, at: lock.at });
      } finally {
        await this.locks.deleteOne({ _id: marker });
      }
    }
  }

  private async release(keys: string[]): Promise<void> {
    for (const key of keys) this.held.delete(key);
    if (this.held.size === 0 && this.renewTimer) {
      clearInterval(this.renewTimer);
      this.renewTimer = null;
    }
    await this.locks.deleteMany({ _id: { $in: keys }, 'holder.instance': this.self.instance });
  }

  private scheduleRenewals(): void {
    if (this.renewTimer) return;
    this.renewTimer = setInterval(() => {
      // One renewal at a time; one that fails is tried again at the next tick.
      if (this.renewing) return;
      this.renewing = true;
      void this.renew()
        .catch(() => {})
        .finally(() => (this.renewing = false));
    }, this.options.ttlMs / 4);
    this.renewTimer.unref();
  }

  private async renew(): Promise<void> {
    if (this.held.size === 0) return;
    await this.locks.updateMany({ _id: { $in: [...this.held] }, 'holder.instance': this.self.instance }, { $set: { at: new Date() } });
  }
}
