// Open read cursors kept between the pages of a long read (a first sync, a bootstrap), keyed by
// where the next page starts. A page request that finds its cursor continues it; one that does
// not (another gateway instance, a restart, an expired entry) opens a new cursor from the same
// position. So this only saves work, it never changes a result: stores that sort without an
// index (FerretDB) sort once per read instead of once per page.
//
// A page is bounded in bytes as well as in documents (readPage): a user can store documents near
// the payload limit, and a thousand of them in one answer would be gigabytes in the gateway.
import type { DocumentCursor, StoredDocument } from './collection-store.ts';

interface Entry {
  cursor: DocumentCursor;
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

  take(key: string): { cursor: DocumentCursor; context: number } | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    this.entries.delete(key);
    return entry;
  }

  put(key: string, cursor: DocumentCursor, context: number): void {
    if (this.entries.size >= this.maxEntries) {
      const [oldestKey, oldest] = this.entries.entries().next().value as [string, Entry];
      this.entries.delete(oldestKey);
      void oldest.cursor.close();
    }
    this.entries.set(key, { cursor, context, expires: Date.now() + this.idleMs });
    // The next page is likely asked for as soon as this one arrives: the store reads it meanwhile.
    cursor.prefetch();
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

export interface Page {
  documents: StoredDocument[];
  /** The cursor has no more documents. */
  exhausted: boolean;
  /** About the stored size of `documents` (sizeOf). */
  bytes: number;
}

/**
 * Reads up to `limit` documents from the cursor, and stops early once they reach `maxBytes`
 * (about their stored size, sizeOf): a page holds at most `maxBytes` plus one document, and
 * always at least one, so a reader that pages on always progresses. Nothing past the last
 * document returned is read, so the cursor continues right after it. `exhausted` when the
 * cursor has no more.
 */
export async function readPage(cursor: DocumentCursor, limit: number, maxBytes: number): Promise<Page> {
  const documents: StoredDocument[] = [];
  let bytes = 0;
  while (documents.length < limit && (bytes < maxBytes || documents.length === 0)) {
    const doc = await cursor.next();
    if (doc === null) return { documents, exhausted: true, bytes };
    documents.push(doc);
    bytes += storedSize(doc);
  }
  // A full page that happens to end the read says so: no request for an empty page after it.
  return { documents, exhausted: cursor.drained(), bytes };
}

const storedSizes = new WeakMap<object, number>();

/**
 * sizeOf a document read from the store, measured once however often it is weighed (a read page,
 * a pull's answer, every subscriber's stream queue); `known` records a size the reader already
 * has (the BSON length of a stored version), so that it is not walked at all.
 */
export function storedSize(doc: object, known?: number): number {
  if (known !== undefined) storedSizes.set(doc, known);
  let size = storedSizes.get(doc);
  if (size === undefined) storedSizes.set(doc, (size = sizeOf(doc)));
  return size;
}

/**
 * About a value's BSON size: strings count their length (UTF-16 units),
 * other scalars 8 bytes, plus a little per key and element. One walk without allocation, about
 * a microsecond for a typical document: BSON.calculateObjectSize measures exactly but costs ten
 * times as much, most of decoding the document again, and every pulled document pays it.
 */
export function sizeOf(value: unknown): number {
  if (typeof value === 'string') return value.length + 5;
  if (typeof value !== 'object' || value === null) return 8;
  if (ArrayBuffer.isView(value)) return value.byteLength + 5;
  let bytes = 5;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) bytes += 4 + sizeOf(value[i]);
    return bytes;
  }
  for (const key in value) bytes += key.length + 2 + sizeOf((value as Record<string, unknown>)[key]);
  return bytes;
}
