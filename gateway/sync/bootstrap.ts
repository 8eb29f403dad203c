// Bootstrap: the documents a newly added subscription query selects, as of one snapshot
// sequence, in pages ordered by id, with an estimate of the total for progress. Documents the
// client already receives through its other queries are excluded, so changing a subscription
// set re-sends nothing the client holds. Changes after the snapshot reach the client through
// pull and stream, which already use the new view.
import type { Filter } from 'mongodb';
import type { BootstrapPage } from '../../protocol/messages.ts';
import type { CompiledFilter } from '../query/filter.ts';
import type { CollectionStore, StoredDocument } from '../store/collection-store.ts';

export interface BootstrapRequest {
  query: CompiledFilter;
  /** The client's other queries on this collection (their documents it has already). */
  exclude: CompiledFilter | null;
  after: string | null;
  /** From the first page's answer; null on the first page. */
  snapshot: number | null;
  limit: number;
}

export async function bootstrap(store: CollectionStore, request: BootstrapRequest): Promise<BootstrapPage> {
  const horizon = await store.sequencer.horizon();
  const snapshot = request.snapshot === null ? horizon : Math.min(request.snapshot, horizon);
  const selection: Filter<StoredDocument>[] = [request.query.stored, { '_sync.deleted': false }, { '_sync.seq': { $lte: snapshot } }];
  if (request.exclude) selection.push({ $nor: [request.exclude.stored] });
  const all = { $and: selection } as Filter<StoredDocument>;
  const page = request.after === null ? all : ({ $and: [...selection, { _id: { $gt: request.after } }] } as Filter<StoredDocument>);

  const [found, estimatedTotal] = await Promise.all([
    store.documents.find(page).sort({ _id: 1 }).limit(request.limit).toArray(),
    request.after === null ? store.documents.countDocuments(all) : Promise.resolve(null),
  ]);
  return {
    documents: found.map((d) => store.toWire(d)),
    snapshot,
    next: found.length === request.limit ? found[found.length - 1]!._id : null,
    estimatedTotal,
  };
}
