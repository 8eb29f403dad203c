// Pull: the documents changed after a checkpoint, in commit order, up to the commit horizon,
// as seen through the client's view.
import type { Checkpoint, PullBulk } from '../../protocol/messages.ts';
import type { CollectionStore } from '../store/collection-store.ts';
import { forPull, type View } from './view.ts';

export async function pull(store: CollectionStore, checkpoint: Checkpoint | null, limit: number, view: View = null): Promise<PullBulk> {
  const after = checkpoint?.seq ?? 0;
  const horizon = await store.sequencer.horizon();
  if (after >= horizon) return { documents: [], checkpoint: { seq: after }, hasMore: false };
  // Nothing is in an empty view; the client purges what it held when it emptied it.
  if (view?.matchesNothing) return { documents: [], checkpoint: { seq: horizon }, hasMore: false };
  const stored = await store.readChanges(after, horizon, limit);
  const hasMore = stored.length === limit;
  // A short page means everything up to the horizon was read: the client may jump there.
  const next = hasMore ? { seq: stored[stored.length - 1]!._sync.seq } : { seq: horizon };
  return { documents: stored.map((d) => forPull(store, view, d)), checkpoint: next, hasMore };
}
