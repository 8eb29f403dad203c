// The live path: one reader per collection per gateway follows the update sequence up to the
// commit horizon and hands each batch to every listener. The store is read once per change,
// however many clients are subscribed, and each batch's wire form is built once and shared.
//
// It wakes immediately when this gateway commits a write, and polls every `pollIntervalMs`
// while anyone listens, which picks up writes made through other gateway instances.
//
// A batch is bounded in stored bytes as well as in documents (readPage), so one event holds at
// most `maxBatchBytes` plus one document, whatever size the documents written are.
import type { Logger } from 'pino';
import type { Checkpoint, SyncDocument } from '../../protocol/messages.ts';
import type { CollectionStore, StoredDocument } from './collection-store.ts';
import { readPage, storedSize } from './cursor-cache.ts';

export interface ChangeBatch {
  /** Stored form, for matching filters against. */
  stored: StoredDocument[];
  /** Wire form, index-aligned with `stored`. */
  documents: SyncDocument[];
  checkpoint: Checkpoint;
  /** About the size of `documents[i]` (cursor-cache.ts storedSize: measured once, whoever asks). */
  bytes(i: number): number;
  /** When the batch's earliest change was committed (or, an outside write, taken in), ms since epoch. */
  committedAt: number;
}

/** What happens to the feed's batches, for metrics (gateway/ops/). */
export interface FeedObserver {
  /** A listener's event holding changes committed at `committedAt` was written to its socket. */
  delivered(committedAt: number): void;
  /** A listener fell too far behind: its queue became one resync, or (a plain watch) it ended. */
  overflowed(ended: boolean): void;
  /** A sync stream payload was rendered for graphql-ws subscribers (sync/stream.ts: once per view, operation and event). */
  rendered(): void;
  /** Reading the store failed; the next wake or poll retries. */
  readFailed(error: unknown): void;
}

export type ChangeListener = (batch: ChangeBatch) => void;

export interface ChangeFeedOptions {
  pollIntervalMs: number;
  readBatchSize: number;
  /** Stored bytes after which a batch ends (TRIBUTARY_MAX_PAGE_BYTES by default). */
  maxBatchBytes: number;
  observer?: FeedObserver;
}

export class ChangeFeed {
  private position = 0;
  private listeners = new Set<ChangeListener>();
  private draining: Promise<void> | null = null;
  private dirty = false;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  constructor(
    private readonly store: CollectionStore,
    private readonly options: ChangeFeedOptions,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    this.position = await this.store.sequencer.horizon();
    this.timer = setInterval(() => {
      if (this.listeners.size > 0) this.wake();
    }, this.options.pollIntervalMs);
    this.timer.unref();
  }

  /** Current position: every change at or below it has been handed to listeners. */
  get checkpoint(): Checkpoint {
    return { seq: this.position };
  }

  /** Listeners now: one per open live stream (sync/stream.ts). */
  get listenerCount(): number {
    return this.listeners.size;
  }

  get observer(): FeedObserver | undefined {
    return this.options.observer;
  }

  subscribe(listener: ChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Something may have committed: read up to the horizon (coalesced with a running read). */
  wake(): void {
    this.dirty = true;
    if (!this.draining && !this.stopped) {
      this.draining = this.drain().finally(() => {
        this.draining = null;
      });
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.draining;
    this.listeners.clear();
  }

  private async drain(): Promise<void> {
    while (this.dirty && !this.stopped) {
      this.dirty = false;
      try {
        const horizon = await this.store.sequencer.horizon();
        if (this.position >= horizon) continue;
        // One cursor per catch-up: a store without a usable index sorts once, not per batch.
        const cursor = this.store.changesCursor(this.position, horizon, this.options.readBatchSize);
        try {
          for (;;) {
            const { documents, exhausted } = await readPage(cursor, this.options.readBatchSize, this.options.maxBatchBytes);
            if (exhausted) this.position = horizon;
            else this.position = documents[documents.length - 1]!._sync.seq;
            if (documents.length > 0) this.emit(documents);
            if (exhausted || this.stopped) break;
          }
        } finally {
          await cursor.close();
        }
      } catch (error) {
        // Store unreachable: keep the position; the next wake or poll retries.
        this.log.warn({ err: error, collection: this.store.model.name }, 'change feed read failed');
        this.options.observer?.readFailed(error);
        return;
      }
    }
  }

  private emit(stored: StoredDocument[]): void {
    const documents = stored.map((d) => this.store.toWire(d));
    const batch: ChangeBatch = {
      stored,
      documents,
      checkpoint: { seq: this.position },
      bytes: (i) => storedSize(stored[i]!),
      committedAt: stored.reduce((earliest, d) => Math.min(earliest, d._sync.updatedAt?.getTime() ?? earliest), Date.now()),
    };
    for (const listener of this.listeners) {
      try {
        listener(batch);
      } catch (error) {
        this.log.error({ err: error }, 'change listener failed');
      }
    }
  }
}
