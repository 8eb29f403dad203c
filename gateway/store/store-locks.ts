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
//  - The holder renews `at` (at ticks every ttl / 4) once it has held a lock for ttl / 8: a lock
//    held briefly, like the sequence counter's, costs no renewal. A lock whose `at` is older than
//    the TTL, or whose holder is a process of this host that no longer exists (isDead), is taken
//    over: the first waiter to insert the takeover marker `takeover:<key>:<at>:<holder>` deletes
//    it (by key, holder and `at`), so two waiters never both delete a lock, and a lock taken
//    meanwhile by someone else is never the one deleted. A marker left by a waiter that stopped
//    halfway is cleared once older than the TTL.
//  - A lock is never renewed while it is being released (FerretDB's updates are a read and a
//    later write: a renewal in flight would write a released lock back over the next holder's).
//  - A waiter that has waited a second claims its turn (Claims): an instance that let go of the
//    key within the last second does not take it again past that claim, so a slow instance is
//    not starved by faster ones handing a hot key (the sequence counter) back and forth.
// So two instances never hold one key at once while a renewal takes less than 5/8 of the TTL to
// run and answer (a lock goes at most 3/8 of it unrenewed before that).
import type { Collection } from 'mongodb';
import { isDead, markLive, newHolder, type LeaseHolder } from './role-lease.ts';
import { duplicateKeyIndexes } from './write-errors.ts';

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

/** A waiter claims its turn after this long. */
const CLAIM_AFTER_MS = 1_000;
/** A key let go of this recently is not taken again past another instance's claim. */
const HOT_MS = 1_000;
const MAX_RELEASED_REMEMBERED = 10_000;
const CLAIM_PREFIX = 'claim:';
/** A lock is renewed at the first tick (every ttl / 4) after it has been held this much of the TTL. */
const RENEW_AFTER = 1 / 8;

/**
 * A waiter's claims to its turn: `claim:<key>` documents, inserted (so one waiter per key) once
 * it has waited CLAIM_AFTER_MS. An instance that let go of a key less than HOT_MS ago does not
 * take it again while another instance's live claim on it stands, so a slow instance is not
 * starved by faster ones that hand a hot key (the sequence counter) back and forth between
 * them. Only those re-takers read claims: other acquisitions cost nothing more. A claim older
 * than the TTL, or whose holder is dead, counts for nothing (its waiter re-inserts it at ttl / 2).
 */
class Claims {
  private readonly mine = new Map<string, Date>();

  constructor(
    private readonly locks: Collection<LockDocument>,
    private readonly self: LeaseHolder,
    private readonly ttlMs: number,
  ) {}

  /** Claims the keys not claimed yet (by this waiter or a live other), and renews its own. */
  async claim(keys: string[]): Promise<void> {
    const now = Date.now();
    const due = keys.filter((key) => {
      const at = this.mine.get(key);
      return at === undefined || now - at.getTime() >= this.ttlMs / 2;
    });
    if (due.length === 0) return;
    const renewing = due.filter((key) => this.mine.has(key));
    // Its own claims are renewed by delete and insert: never by an update (see release()).
    if (renewing.length > 0) await this.withdraw(renewing);
    // A claim left by a waiter that stopped is cleared once older than the TTL.
    await this.locks.deleteMany({ _id: { $in: due.map((key) => CLAIM_PREFIX + key) }, at: { $lt: new Date(now - this.ttlMs) } });
    const at = new Date(now);
    const docs = due.map((key) => ({ _id: CLAIM_PREFIX + key, holder: this.self, at }));
    let refused = new Set<number>();
    try {
      await this.locks.insertMany(docs, { ordered: false });
    } catch (error) {
      const duplicates = duplicateKeyIndexes(error);
      if (!duplicates) throw error;
      refused = duplicates; // another waiter's turn comes first
    }
    due.forEach((key, i) => (refused.has(i) ? undefined : this.mine.set(key, at)));
  }

  /** Deletes its claims (those of `keys`, or all). */
  async withdraw(keys: string[] = [...this.mine.keys()]): Promise<void> {
    if (keys.length === 0) return;
    for (const key of keys) this.mine.delete(key);
    await this.locks.deleteMany({ _id: { $in: keys.map((key) => CLAIM_PREFIX + key) }, 'holder.instance': this.self.instance });
  }
}

export class StoreLocks {
  readonly self: LeaseHolder = newHolder();
  /**
   * Keys held by this instance, and when each was taken (one task at a time per key: its callers
   * lock in-process first).
   */
  private readonly held = new Map<string, number>();
  /** When this instance last let go of each key (kept for HOT_MS: a claim may be waiting on it). */
  private readonly released = new Map<string, number>();
  private renewTimer: NodeJS.Timeout | null = null;
  /** The renewal in flight: a tick meanwhile is skipped (a slow store must not queue them). */
  private renewal: Promise<void> | null = null;
  /** The keys that renewal writes. */
  private renewing: ReadonlySet<string> = new Set();

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
    const began = Date.now();
    const deadline = began + this.options.waitMs;
    const claims = new Claims(this.locks, this.self, this.options.ttlMs);
    try {
      let holders: LockDocument[] = [];
      for (let attempt = 0; ; attempt++) {
        const busy = await this.tryAcquire(keys);
        if (busy.length === 0) return;
        if (Date.now() >= deadline) throw this.timeout(keys, busy, holders);
        // (A takeover is always followed by another try.)
        holders = await this.takeOverStale(busy);
        // A waiter that has waited a while claims its turn (see Claims).
        if (Date.now() - began >= CLAIM_AFTER_MS) await claims.claim(busy);
        await new Promise((r) => setTimeout(r, Math.random() * Math.min(100, 2 ** attempt)));
      }
    } finally {
      // (One that fails is left to expire after the TTL.)
      await claims.withdraw().catch(() => {});
    }
  }

  /** Takes every key, or none; returns the busy ones. */
  private async tryAcquire(keys: string[]): Promise<string[]> {
    // A key this instance let go of a moment ago is not taken again past another's claim.
    const now = Date.now();
    const hot = keys.filter((key) => now - (this.released.get(key) ?? 0) < HOT_MS);
    const claimed = hot.length > 0 ? await this.claimedByOthers(hot) : [];
    if (claimed.length > 0) return claimed;
    const taken = await this.insert(keys);
    if (taken.length === keys.length) {
      for (const key of keys) this.held.set(key, now);
      this.scheduleRenewals();
      return [];
    }
    if (taken.length > 0) await this.locks.deleteMany({ _id: { $in: taken }, 'holder.instance': this.self.instance });
    return keys.filter((k) => !taken.includes(k));
  }

  /** The keys among `keys` that another instance has a live claim on (see Claims). */
  private async claimedByOthers(keys: string[]): Promise<string[]> {
    const now = Date.now();
    const claims = await this.locks.find({ _id: { $in: keys.map((key) => CLAIM_PREFIX + key) } }).toArray();
    return claims
      .filter((claim) => claim.holder.instance !== this.self.instance && now - claim.at.getTime() <= this.options.ttlMs && !isDead(claim.holder, this.self))
      .map((claim) => claim._id.slice(CLAIM_PREFIX.length));
  }

  /** Says who holds one of the locks, so an operator can tell a slow peer from a stuck one. */
  private timeout(keys: string[], busy: string[], holders: LockDocument[]): LockTimeoutError {
    const example = holders.find((lock) => lock.holder.instance !== this.self.instance) ?? holders[0];
    const heldBy = example ? `, held by ${example.holder.host} pid ${example.holder.pid} (instance ${example.holder.instance}), renewed ${Date.now() - example.at.getTime()} ms ago` : '';
    return new LockTimeoutError(`${busy.length} of ${keys.length} locks still held by other instances after ${this.options.waitMs} ms (e.g. ${example?._id ?? busy[0]}${heldBy})`);
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

  /**
   * Deletes the locks among `keys` whose holder stopped renewing them or is known dead, in three
   * commands however many there are (a stopped instance may leave a push's hundreds: one by one,
   * on a loaded store, that took longer than waitMs). Returns the locks found.
   */
  private async takeOverStale(keys: string[]): Promise<LockDocument[]> {
    const now = Date.now();
    const found = await this.locks.find({ _id: { $in: keys } }).toArray();
    const stale = found.filter((lock) => now - lock.at.getTime() > this.options.ttlMs || isDead(lock.holder, this.self));
    if (stale.length === 0) return found;
    const markers = stale.map((lock) => `takeover:${lock._id}:${lock.at.getTime()}:${lock.holder.instance}`);
    let lost = new Set<number>();
    try {
      await this.locks.insertMany(
        markers.map((marker) => ({ _id: marker, holder: this.self, at: new Date() })),
        { ordered: false },
      );
    } catch (error) {
      const duplicates = duplicateKeyIndexes(error);
      if (!duplicates) throw error;
      lost = duplicates;
      // Another waiter takes those over; or one stopped halfway, and its marker would block
      // every takeover of the lock: a marker older than the TTL is cleared for the next try.
      await this.locks.deleteMany({ _id: { $in: markers.filter((_, i) => lost.has(i)) }, at: { $lt: new Date(Date.now() - this.options.ttlMs) } });
    }
    const won = stale.filter((_, i) => !lost.has(i));
    if (won.length === 0) return found;
    try {
      // Each by key, holder and `at`: a lock renewed or taken meanwhile is not the one deleted.
      await this.locks.deleteMany({ $or: won.map((lock) => ({ _id: lock._id, 'holder.instance': lock.holder.instance, at: lock.at })) });
    } finally {
      await this.locks.deleteMany({ _id: { $in: markers.filter((_, i) => !lost.has(i)) }, 'holder.instance': this.self.instance });
    }
    return found;
  }

  private async release(keys: string[]): Promise<void> {
    const now = Date.now();
    for (const key of keys) {
      this.held.delete(key);
      this.released.set(key, now);
    }
    if (this.released.size > MAX_RELEASED_REMEMBERED) {
      for (const [key, at] of this.released) if (now - at >= HOT_MS) this.released.delete(key);
    }
    if (this.held.size === 0 && this.renewTimer) {
      clearInterval(this.renewTimer);
      this.renewTimer = null;
    }
    // Not while a renewal of these keys is in flight: FerretDB v1 runs an update as a read and a
    // later write by `_id`, so a renewal that read the lock before this delete would write it
    // back over the lock another instance inserts next (seen 66 times in 300 tries), and that
    // lock would then name this instance, which never renews or releases it. (Only a renewal of
    // these keys: a lock held briefly, like the sequence counter's, is never renewed, so its
    // release never waits for the renewal of a push's long-held locks on a slow store.)
    if (keys.some((key) => this.renewing.has(key))) await this.renewal;
    await this.locks.deleteMany({ _id: { $in: keys }, 'holder.instance': this.self.instance });
  }

  private scheduleRenewals(): void {
    if (this.renewTimer) return;
    this.renewTimer = setInterval(() => {
      // One renewal at a time; one that fails is tried again at the next tick.
      if (this.renewal) return;
      this.renewal = this.renew()
        .catch(() => {})
        .finally(() => (this.renewal = null));
    }, this.options.ttlMs / 4);
    this.renewTimer.unref();
  }

  /**
   * Renews the locks held for RENEW_AFTER of the TTL or longer: so a lock goes at most 3/8 of the
   * TTL (plus the renewal's own time) unrenewed, and one held briefly is never renewed at all.
   */
  private async renew(): Promise<void> {
    const now = Date.now();
    const due = [...this.held].flatMap(([key, since]) => (now - since >= this.options.ttlMs * RENEW_AFTER ? [key] : []));
    if (due.length === 0) return;
    this.renewing = new Set(due);
    try {
      await this.locks.updateMany({ _id: { $in: due }, 'holder.instance': this.self.instance }, { $set: { at: new Date(now) } });
    } finally {
      this.renewing = new Set();
    }
  }
}
