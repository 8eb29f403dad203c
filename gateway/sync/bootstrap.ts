// Bootstrap: the documents a newly added subscription query selects, as of one snapshot
// sequence (their versions in the side collection: collection-store.ts), in pages ordered by id, with an estimate of the total for progress. Documents the
// client already receives through its other queries are excluded, so changing a subscription
// set re-sends nothing the client holds (and a query they cover is answered without a read:
// query/containment.ts). Changes after the snapshot reach the client through
// pull and stream, which already use the new view. A page ends early once its documents reach
// `maxBytes` (readPage); `next` is then its last document's id, as for a full page.
import { createHash } from 'node:crypto';
import type { Filter } from 'mongodb';
import type { BootstrapPage } from '../../protocol/messages.ts';
import { coveredBy } from '../query/containment.ts';
import type { CompiledFilter } from '../query/filter.ts';
import { shape, type View } from './view.ts';
import type { CollectionStore, MetaDocument, PlainDocument, StoredDocument } from '../store/collection-store.ts';
import { readPage } from '../store/cursor-cache.ts';
import { inSet } from '../rules/permissions.ts';

export interface BootstrapRequest {
  query: CompiledFilter;
  /** The client's other queries on this collection (their documents it has already). */
  exclude: CompiledFilter | null;
  after: string | null;
  /** From the first page's answer; null on the first page. */
  snapshot: number | null;
  limit: number;
  /** Identifies the bootstrap across its pages (to continue its cursor). */
  key: string;
  /** What the client may see, and whether it wants stamps. */
  view: View;
  /** How long the store may spend on the client's query. */
  maxTimeMs: number;
  /** Stored bytes after which the page ends (TRIBUTARY_MAX_PAGE_BYTES). */
  maxBytes: number;
}

/** A key for the cursor cache from what identifies a bootstrap. */
export function bootstrapKey(...parts: unknown[]): string {
  return createHash('sha1').update(JSON.stringify(parts)).digest('base64url');
}

export async function bootstrap(store: CollectionStore, request: BootstrapRequest): Promise<BootstrapPage> {
  const horizon = await store.sequencer.horizon();
  const snapshot = request.snapshot === null ? horizon : Math.min(request.snapshot, horizon);
  // Everything the query selects is in what the client already holds: nothing to read.
  if (request.exclude && coveredBy(request.query.stored, request.exclude.stored)) return { documents: [], snapshot, next: null, estimatedTotal: 0 };
  const selection: Filter<StoredDocument>[] = [request.query.stored];
  if (request.exclude) selection.push({ $nor: [request.exclude.stored] });
  const { read } = request.view.permissions;
  if (read === 'none') return { documents: [], snapshot, next: null, estimatedTotal: 0 };
  if (read !== 'all') selection.push(read.stored);
  const all = { $and: selection } as Filter<PlainDocument>;
  // The versions as of the snapshot: later ones reach the client by pull and stream.
  const asOf = { seq: { $lte: snapshot } } as Filter<MetaDocument>;
  const page = request.after === null ? asOf : ({ $and: [asOf, { _id: { $gt: store.storedId(request.after) } }] } as Filter<MetaDocument>);

  // The cursor's query holds this user's read filter: only the same user with the same
  // permissions may continue it.
  const cacheKey = (after: string | null) => `bootstrap:${request.view.permissions.fingerprint}:${request.key}:${snapshot}:${after ?? ''}`;
  const cursor = store.cursors.take(cacheKey(request.after))?.cursor ?? store.versionsCursor(all, page, { batchSize: request.limit, maxTimeMs: request.maxTimeMs });
  // The total for progress, on the first page, counted beside it; not waited for when the page
  // is all there is (its length is the total).
  const counting = request.after === null ? store.countVersions(all, asOf, request.maxTimeMs) : null;
  counting?.catch(() => {}); // (waited for below, or not needed)
  const { documents: found, exhausted } = await readPage(cursor, request.limit, request.maxBytes);
  const next = exhausted ? null : store.toWire(found[found.length - 1]!).id;
  if (next === null) await cursor.close();
  else store.cursors.put(cacheKey(next), cursor, snapshot); // its next page is read meanwhile
  const estimatedTotal = counting === null ? null : exhausted ? found.length : await counting;
  // Checked again as they leave: what this user may read now, whatever the cursor was opened with.
  const readable = found.filter((d) => !d._sync.deleted && inSet(read, d));
  return { documents: readable.map((d) => shape(request.view, store.toWire(d, request.view.stamps))), snapshot, next, estimatedTotal };
}
