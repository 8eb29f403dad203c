// Open read cursors kept between the pages of a long read (a first sync, a bootstrap), keyed by
// where the next page starts. A page request that finds its cursor continues it; one that does
// not (another gateway instance, a restart, an expired entry) opens a new cursor from the same
// position. So this only saves work, it never changes a result: stores that sort without an
// index (FerretDB) sort once per read instead of once per page.
import type { FindCursor } from 'mongodb';
import type { StoredDocument } from './collection-store.ts';

interface Entry {
  cursor: FindCursor<StoredDocument>;
  /** Whatever the reader needs to continue (e.g. the horizon the cursor reads up to). */
  context: number;
  expires: number;
}

export class CursorCache {
  private entries = new Map<string, Entry>();
  private timer: NodeJS.Timeout;

  constructor(
    private readonly idleMs = 30_000,
    private readonly maxEntries = 200,
  ) {
    this.timer = setInterval(() => this.sweep(Date.now()), Math.min(idleMs, 10_000));
    this.timer.unref();
  }

  take(key: string): { cursor: FindCursor<StoredDocument>; context: number } | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    this.entries.delete(key);
    return entry;
  }

  put(key: string, cursor: FindCursor<StoredDocument>, context: number): void {
    if (this.entries.size >= this.maxEntries) {
      const [oldestKey, oldest] = this.entries.entries().next().value as [string, Entry];
      this.entries.delete(oldestKey);
      void oldest.cursor.close();
    }
    this.entries.set(key, { cursor, context, expires: Date.now() + this.idleMs });
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    const entries = [...this.entries.values()];
    this.entries.clear();
    await Promise.all(entries.map((e) => e.cursor.close().catch(() => {})));
  }

  private sweep(now: number): void {
    for (const [key, entry] of this.entries) {
      if (entry.expires > now) continue;
      this.entries.delete(key);
      void entry.cursor.close().catch(() => {});
    }
  }
}

/** Reads up to `limit` documents from the cursor; `exhausted` when it has no more. */
export async function readPage(cursor: FindCursor<StoredDocument>, limit: number): Promise<{ documents: StoredDocument[]; exhausted: boolean }> {
  const documents: StoredDocument[] = [];
  while (documents.length < limit) {
    const doc = await cursor.next();
    if (doc === null) return { documents, exhausted: true };
    documents.push(doc);
  }
  return { documents, exhausted: false };
}
