// Pull: the documents changed after a checkpoint, in commit order, up to the commit horizon.
import type { Checkpoint, PullBulk } from '../../protocol/messages.ts';
import type { CollectionStore } from '../store/collection-store.ts';

export async function pull(store: CollectionStore, checkpoint: Checkpoint | null, limit: number): Promise<PullBulk> {
  const after = checkpoint?.seq ?? 0;
  const horizon = await store.sequencer.horizon();
  if (after >= horizon) return { documents: [], checkpoint: { seq: after } };
  const stored = await store.readChanges(after, horizon, limit);
  // A short page means everything up to the horizon was read: the client may jump there.
  const checkpoint_ = stored.length === limit ? { seq: stored[stored.length - 1]!._sync.seq } : { seq: horizon };
  return { documents: stored.map((d) => store.toWire(d)), checkpoint: checkpoint_ };
}
