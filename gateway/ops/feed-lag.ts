// How far a collection's change feed is behind what has committed. The feed hands changes to
// live streams up to the commit horizon (store/sequencer.ts); what is committed above its
// position has not reached any socket yet. A feed is woken by this instance's writes and, while
// anyone listens, polls for other instances' writes: with no listener, other instances' writes
// show here until someone subscribes.
import type { CollectionRuntime } from '../graphql/schema.ts';
import type { MetaDocument } from '../store/collection-store.ts';
import type { Filter } from 'mongodb';

export interface FeedLag {
  /** Sequence the feed has handed out up to. */
  position: number;
  /** Everything at or below it has committed. */
  horizon: number;
  /** Committed changes not yet handed out. */
  sequences: number;
  /** Age of the oldest of them (0 when caught up). */
  seconds: number;
}

export async function feedLag({ feed, store }: CollectionRuntime): Promise<FeedLag> {
  const position = feed.checkpoint.seq;
  const horizon = await store.sequencer.horizon();
  const sequences = Math.max(0, horizon - position);
  if (sequences === 0) return { position, horizon, sequences, seconds: 0 };
  // Only read when behind: the sort by seq is a scan on stores without a usable index.
  const oldest = await store.meta.findOne({ seq: { $gt: position, $lte: horizon } } as Filter<MetaDocument>, { sort: { seq: 1 }, projection: { updatedAt: 1 } });
  const at = oldest?.updatedAt instanceof Date ? oldest.updatedAt.getTime() : Date.now();
  return { position, horizon, sequences, seconds: Math.max(0, Date.now() - at) / 1000 };
}
