// Tombstone retention (TRIBUTARY_TOMBSTONE_RETENTION): a delete is kept as a tombstone in the
// side collection so that clients that were offline still learn of it; after the retention
// period it is trimmed, in the background, in batches. A client whose checkpoint is older than
// a trimmed tombstone would miss that delete, so before a batch is removed the collection's
// `trimmedThrough` is raised to the batch's highest sequence (sync/client-reset.ts): such a
// client gets a client reset instead.
//
// An id whose tombstone was trimmed is free again: a document written with it later is a new
// document (PROTOCOL.md, "Client reset").
//
// Add-wins sets keep the elements they removed in their state (protocol/field-state.ts), so that
// an add a removal saw cannot bring an element back. In a document last written before the
// retention period, those elements are dropped the same way: `trimmedThrough` is raised to the
// document's sequence first (a device that has not seen the removals resets), and the metadata
// is rewritten under the document's lock, only if no write came in between. Each pass reads the
// metadata of every document older than the period in collections that have such sets.
import type { Logger } from 'pino';
import type { Filter } from 'mongodb';
import { mergedFields, withoutRemovedElements, type MergedFields, type Stamps } from '../../protocol/field-state.ts';
import { RESETS_CACHE_MS, type ClientResets } from '../sync/client-reset.ts';
import type { CollectionWriter } from '../sync/push.ts';
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
  private stopped = false;

  constructor(
    private readonly collections: Array<{ store: CollectionStore; writer: CollectionWriter }>,
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
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  /** One pass over every collection; returns how many tombstones were removed. */
  async trim(): Promise<number> {
    let removed = 0;
    for (const { store, writer } of this.collections) {
      removed += await this.trimCollection(store);
      const fields = mergedFields(store.model);
      if (Object.values(fields).includes('add-wins-set')) removed += await this.trimSets(store, writer, fields);
    }
    return removed;
  }

  private async trimCollection(store: CollectionStore): Promise<number> {
    const cutoff = new Date((this.options.now ?? Date.now)() - this.options.retentionMs);
    const expired = { deleted: true, updatedAt: { $lt: cutoff } } as Filter<MetaDocument>;
    let removed = 0;
    for (;;) {
      const batch = await store.meta.find(expired, { projection: { _id: 1, seq: 1 } }).limit(this.options.batchSize).toArray();
      if (batch.length === 0) break;
      // Clients that have not seen these deletes must reset before the deletes disappear (and
      // every instance must know it: they read reset documents at most RESETS_CACHE_MS old).
      await this.resets.trimThrough(store.model.name, Math.max(...batch.map((m) => m.seq)));
      await sleep(RESETS_CACHE_MS);
      // Only tombstones: a document written again with the id since is not touched.
      const result = await store.meta.deleteMany({ ...expired, _id: { $in: batch.map((m) => m._id) } } as Filter<MetaDocument>);
      removed += result.deletedCount;
      if (batch.length < this.options.batchSize || this.stopped) break;
    }
    if (removed > 0) this.options.log.info({ collection: store.model.name, removed }, 'tombstone retention: trimmed tombstones');
    return removed;
  }

  /** Drops removed set elements from documents last written before the period; returns how many documents changed. */
  private async trimSets(store: CollectionStore, writer: CollectionWriter, fields: MergedFields): Promise<number> {
    const cutoff = new Date((this.options.now ?? Date.now)() - this.options.retentionMs);
    let changed = 0;
    let after: MetaDocument['_id'] | null = null;
    for (;;) {
      const filter = { deleted: false, updatedAt: { $lt: cutoff }, stamps: { $exists: true }, ...(after === null ? {} : { _id: { $gt: after } }) } as Filter<MetaDocument>;
      const batch = await store.meta.find(filter, { projection: { _id: 1, seq: 1, stamps: 1 } }).sort({ _id: 1 }).limit(this.options.batchSize).toArray();
      if (batch.length === 0) break;
      after = batch[batch.length - 1]!._id;
      const trimmed = batch.flatMap((meta) => {
        const stamps = withoutRemovedElements(fields, JSON.parse(meta.stamps!) as Stamps);
        return stamps ? [{ meta, stamps }] : [];
      });
      if (trimmed.length > 0) {
        await this.resets.trimThrough(store.model.name, Math.max(...trimmed.map((t) => t.meta.seq)));
        await sleep(RESETS_CACHE_MS);
        await writer.locked(
          trimmed.map((t) => t.meta._id),
          async () => {
            for (const { meta, stamps } of trimmed) {
              const result = await store.meta.updateOne({ _id: meta._id, seq: meta.seq } as Filter<MetaDocument>, { $set: { stamps: JSON.stringify(stamps) } });
              changed += result.modifiedCount;
            }
          },
        );
      }
      if (batch.length < this.options.batchSize || this.stopped) break;
    }
    if (changed > 0) this.options.log.info({ collection: store.model.name, documents: changed }, 'tombstone retention: trimmed removed set elements');
    return changed;
  }
}

/** `30d`, `12h`, `90m`, `45s`, `500ms`, or milliseconds. */
export function parseDuration(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(text);
  if (!match) throw new Error(`not a duration: ${JSON.stringify(text)} (say 30d, 12h, 90m, 45s or 500ms)`);
  const unit = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] ?? 'ms']!;
  return Math.round(Number(match[1]) * unit);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
