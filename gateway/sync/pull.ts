// Pull: the documents changed after a checkpoint, in commit order, up to the commit horizon,
// as seen through the client's view. A first sync reads many pages in a row; the cursor stays
// open between them (store/cursor-cache.ts), keyed by the checkpoint the next page starts at.
//
// A page that is not full covers everything committed before the request arrived (PROTOCOL.md,
// section 4): clients drop the stream events they received before asking (RxDB does). A cursor
// kept from an earlier page only reads up to the horizon of that page, so once it runs out,
// the page reads on up to the horizon as it is now.
//
// A page also ends once the documents it sends reach `maxBytes`: it then answers hasMore with
// the checkpoint after the last document read, like a full page, and its cursor is kept likewise.
// Changes the client may not know of are read past and count for neither bound.
import type { Checkpoint, PullBulk } from '../../protocol/messages.ts';
import { readPage, storedSize } from '../store/cursor-cache.ts';
import type { CollectionStore } from '../store/collection-store.ts';
import { forPull, viewIsEmpty, type View } from './view.ts';

export async function pull(store: CollectionStore, checkpoint: Checkpoint | null, limit: number, view: View, maxBytes: number): Promise<PullBulk> {
  const after = checkpoint?.seq ?? 0;
  // Bound to the user and its permissions: another user's cursor is never continued.
  const cacheKey = (seq: number) => `pull:${view.permissions.fingerprint}:${seq}`;
  const kept = store.cursors.take(cacheKey(after));
  let cursor = kept?.cursor;
  let horizon = kept?.context ?? 0;
  /** Whether `horizon` was read during this request (else it is an earlier page's). */
  let current = !kept;
  if (!cursor) {
    horizon = await store.sequencer.horizon();
    if (after >= horizon) return { documents: [], checkpoint: { seq: after }, hasMore: false };
    // Nothing is in an empty view; the client purges what it held when it emptied it.
    if (viewIsEmpty(view)) return { documents: [], checkpoint: { seq: horizon }, hasMore: false };
    cursor = store.changesCursor(after, horizon, limit);
  }
  // A page is full when it holds `limit` documents for this client (changes it may not know of
  // are read past, not counted: RxDB's stock replication takes a short page for "up to date").
  const documents: PullBulk['documents'] = [];
  let bytes = 0;
  let last = after;
  for (;;) {
    // What is left of the budget: reading on past a kept cursor's horizon shares it.
    const page = await readPage(cursor, limit - documents.length, maxBytes - bytes);
    for (const doc of page.documents) {
      const sent = forPull(store, view, doc);
      if (!sent) continue;
      documents.push(sent);
      bytes += sent._deleted ? 0 : storedSize(doc); // what the answer holds; removals are ids
    }
    if (page.documents.length > 0) last = page.documents[page.documents.length - 1]!._sync.seq;
    if (!page.exhausted) {
      if (documents.length < limit && bytes < maxBytes) continue;
      store.cursors.put(cacheKey(last), cursor, horizon);
      return { documents, checkpoint: { seq: last }, hasMore: true };
    }
    await cursor.close();
    if (current) break;
    const now = await store.sequencer.horizon();
    current = true;
    if (now <= horizon) break;
    cursor = store.changesCursor(horizon, now, limit);
    horizon = now;
  }
  // Everything up to the horizon was read: the client may jump there.
  return { documents, checkpoint: { seq: horizon }, hasMore: false };
}
