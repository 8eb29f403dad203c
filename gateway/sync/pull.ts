// Pull: the documents changed after a checkpoint, in commit order, up to the commit horizon,
// as seen through the client's view. A first sync reads many pages in a row; the cursor stays
// open between them (store/cursor-cache.ts), keyed by the checkpoint the next page starts at.
import type { Checkpoint, PullBulk } from '../../protocol/messages.ts';
import { readPage } from '../store/cursor-cache.ts';
import type { CollectionStore } from '../store/collection-store.ts';
import { forPull, viewIsEmpty, type View } from './view.ts';

export async function pull(store: CollectionStore, checkpoint: Checkpoint | null, limit: number, view: View): Promise<PullBulk> {
  const after = checkpoint?.seq ?? 0;
  let open = store.cursors.take(`pull:${after}`);
  if (!open) {
    const horizon = await store.sequencer.horizon();
    if (after >= horizon) return { documents: [], checkpoint: { seq: after }, hasMore: false };
    // Nothing is in an empty view; the client purges what it held when it emptied it.
    if (viewIsEmpty(view)) return { documents: [], checkpoint: { seq: horizon }, hasMore: false };
    open = { cursor: store.changesCursor(after, horizon, limit), context: horizon };
  }
  const horizon = open.context;
  const { documents: stored, exhausted } = await readPage(open.cursor, limit);
  let next: Checkpoint;
  if (exhausted) {
    // Everything up to the horizon was read: the client may jump there.
    await open.cursor.close();
    next = { seq: horizon };
  } else {
    next = { seq: stored[stored.length - 1]!._sync.seq };
    store.cursors.put(`pull:${next.seq}`, open.cursor, horizon);
  }
  return { documents: stored.map((d) => forPull(store, view, d)), checkpoint: next, hasMore: !exhausted };
}
