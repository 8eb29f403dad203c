// Tombstone retention (TRIBUTARY_TOMBSTONE_RETENTION): a delete is kept as a tombstone in the
// side collection so that clients that were offline still learn of it; after the retention
// period it is trimmed, in the background, in batches. A client whose checkpoint is older than
// a trimmed tombstone would miss that delete, so before a batch is removed the collection's
// `trimmedThrough` is raised to the batch's highest sequence (sync/client-reset.ts): such a
// client gets a client reset instead.
//
// An id whose tombstone was trimmed is free again: a document written with it later is a new
// document (PROTOCOL.md, "Client reset").
import type { Logger } from 'pino';
import type { Filter } from 'mongodb';
import type { ClientResets } from '../sync/client-reset.ts';
import type { CollectionStore, MetaDocument } from './collection-store.ts';

export interface RetentionOptions {
  /** How long a tombstone is kept. */
  retentionMs: number;
  /** Tombstones removed per batch (one read and one delete each). */
  batchSize: number;
  log: Logger;
  /** Server time, for tests. */
  now?: () => number;
}

export class TombstoneRetention {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;

  constructor(
    private readonly stores: CollectionStore[],
    private readonly resets: ClientResets,
    private readonly options: RetentionOptions,
  ) {}

  /** Trims now and then every quarter of the retention period (at most hourly). */
  start(): void {
    const interval = Math.max(1_000, Math.min(this.options.retentionMs / 4, 3_600_000));
    const run = () => {
      this.running ??= this.trim()
        .then(() => {})
        .catch((error) => this.options.log.warn({ err: error }, 'tombstone retention: a pass failed; the next one retries'))
        .finally(() => (this.running = null));
    };
    run();
    this.timer = setInterval(run, interval);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  /** One pass over every collection; returns how many tombstones were removed. */
  async trim(): Promise<number> {
    let removed = 0;
    for (const store of this.stores) removed += await this.trimCollection(store);
    return removed;
  }

  private async trimCollection(store: CollectionStore): Promise<number> {
    const cutoff = new Date((this.options.now ?? Date.now)() - this.options.retentionMs);
    const expired = { deleted: true, updatedAt: { $lt: cutoff } } as Filter<MetaDocument>;
    let removed = 0;
    for (;;) {
      const batch = await store.meta.find(expired, { projection: { _id: 1, seq: 1 } }).limit(this.options.batchSize).toArray();
      if (batch.length === 0) break;
      // Clients that have not seen these deletes must reset before the deletes disappear.
      await this.resets.trimThrough(store.model.name, Math.max(...batch.map((m) => m.seq)));
      // Only tombstones: a document written again with the id since is not touched.
      const result = await store.meta.deleteMany({ ...expired, _id: { $in: batch.map((m) => m._id) } } as Filter<MetaDocument>);
      removed += result.deletedCount;
      if (batch.length < this.options.batchSize) break;
    }
    if (removed > 0) this.options.log.info({ collection: store.model.name, removed }, 'tombstone retention: trimmed tombstones');
    return removed;
  }
}

/** `30d`, `12h`, `90m`, `45s`, `500ms`, or milliseconds. */
export function parseDuration(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(text);
  if (!match) throw new Error(`not a duration: ${JSON.stringify(text)} (say 30d, 12h, 90m, 45s or 500ms)`);
  const unit = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] ?? 'ms']!;
  return Math.round(Number(match[1]) * unit);
}
