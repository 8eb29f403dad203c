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
// and readers then ignore (and remove) them. A write that commits after its lease expired may
// already have been passed by a reader; its writer notices that `release()` found no lease and
// re-sequences the documents it wrote (see push.ts), so they are read again above the horizon.
//
// Only single-document atomic updates are used: this works on MongoDB and FerretDB alike, and
// across any number of gateway instances sharing the database.
import { randomBytes } from 'node:crypto';
import type { Collection } from 'mongodb';

interface LeaseRecord {
  lo: number;
  hi: number;
  at: Date;
}

export interface CounterDocument {
  _id: string;
  seq: number;
  leases: Record<string, LeaseRecord>;
}

export interface Lease {
  lo: number;
  hi: number;
  /** Removes the lease. False when it had expired first (a reader may have passed it). */
  release(): Promise<boolean>;
}

export interface SequencerOptions {
  leaseTtlMs: number;
}

interface PendingAllocation {
  count: number;
  resolve: (lease: Lease) => void;
  reject: (error: unknown) => void;
}

export class Sequencer {
  private pending: PendingAllocation[] = [];
  private allocating = false;

  constructor(
    private readonly counters: Collection<CounterDocument>,
    private readonly key: string,
    private readonly options: SequencerOptions,
  ) {}

  async init(): Promise<void> {
    await this.counters.updateOne({ _id: this.key }, { $setOnInsert: { seq: 0, leases: {} } }, { upsert: true });
  }

  /**
   * Reserves `count` consecutive sequences under a lease. Concurrent calls in this process are
   * coalesced into one compare-and-set on the counter document.
   */
  allocate(count: number): Promise<Lease> {
    if (!Number.isInteger(count) || count < 1) throw new RangeError(`cannot allocate ${count} sequences`);
    return new Promise((resolve, reject) => {
      this.pending.push({ count, resolve, reject });
      void this.drainAllocations();
    });
  }

  /** The highest sequence below which every write has committed. */
  async horizon(): Promise<number> {
    const counter = await this.counters.findOne({ _id: this.key });
    if (!counter) return 0;
    const now = Date.now();
    let horizon = counter.seq;
    const expired: string[] = [];
    for (const [token, lease] of Object.entries(counter.leases ?? {})) {
      if (now - lease.at.getTime() > this.options.leaseTtlMs) expired.push(token);
      else horizon = Math.min(horizon, lease.lo - 1);
    }
    if (expired.length > 0) {
      const unset = Object.fromEntries(expired.map((t) => [`leases.${t}`, ''] as const)) as Record<string, ''>;
      await this.counters.updateOne({ _id: this.key }, { $unset: unset });
    }
    return horizon;
  }

  private async drainAllocations(): Promise<void> {
    if (this.allocating) return;
    this.allocating = true;
    try {
      while (this.pending.length > 0) {
        const batch = this.pending.splice(0);
        try {
          const leases = await this.compareAndSetAllocate(batch.map((p) => p.count));
          batch.forEach((p, i) => p.resolve(leases[i]!));
        } catch (error) {
          batch.forEach((p) => p.reject(error));
        }
      }
    } finally {
      this.allocating = false;
    }
  }

  private async compareAndSetAllocate(counts: number[]): Promise<Lease[]> {
    const total = counts.reduce((a, b) => a + b, 0);
    for (let attempt = 0; ; attempt++) {
      const counter = await this.counters.findOne({ _id: this.key }, { projection: { seq: 1 } });
      if (!counter) throw new Error(`sequence counter ${this.key} is missing; was init() called?`);
      const at = new Date();
      const set: Record<string, unknown> = { seq: counter.seq + total };
      const leases: Array<{ token: string; lo: number; hi: number }> = [];
      let next = counter.seq + 1;
      for (const count of counts) {
        const token = `l${randomBytes(8).toString('hex')}`;
        leases.push({ token, lo: next, hi: next + count - 1 });
        set[`leases.${token}`] = { lo: next, hi: next + count - 1, at };
        next += count;
      }
      const result = await this.counters.updateOne({ _id: this.key, seq: counter.seq }, { $set: set });
      if (result.matchedCount === 1) {
        return leases.map(({ token, lo, hi }) => ({ lo, hi, release: () => this.release(token) }));
      }
      // Another gateway instance allocated in between: back off a little and retry.
      await new Promise((r) => setTimeout(r, Math.min(50, 2 ** attempt) * Math.random()));
    }
  }

  private async release(token: string): Promise<boolean> {
    const result = await this.counters.updateOne({ _id: this.key }, { $unset: { [`leases.${token}`]: '' } });
    return result.modifiedCount === 1;
  }
}
