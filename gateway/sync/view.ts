// A client's view of a collection: the union of its subscriptions' queries on it (or, for a
// client without subscriptions such as RxDB's stock plugin, everything). Decides what of a
// stored document a client receives: the document, a removal (id only), or nothing.
import { QueryError } from '../../protocol/filter.ts';
import type { SyncDocument } from '../../protocol/messages.ts';
import type { CollectionModel } from '../../protocol/model.ts';
import { compileUnion, type CompiledFilter } from '../query/filter.ts';
import type { CollectionStore, StoredDocument } from '../store/collection-store.ts';

export type View = CompiledFilter | null;

/** null/undefined: everything; []: nothing; else the union. Throws QueryError. */
export function compileView(collection: CollectionModel, queries: unknown[] | null | undefined): View {
  if (queries === null || queries === undefined) return null;
  if (!Array.isArray(queries)) throw new QueryError('view must be a list of queries');
  return compileUnion(collection, queries, { queryableOnly: true });
}

export function inView(view: View, stored: StoredDocument): boolean {
  return view === null || (!stored._sync.deleted && view.matches(stored));
}

/** Whether the version before this one was in the view (known from `_sync.prev`). */
export function wasInView(view: View, stored: StoredDocument): boolean {
  if (view === null) return true;
  const prev = stored._sync.prev;
  return prev !== null && prev !== undefined && view.matches({ ...prev, _sync: stored._sync } as StoredDocument);
}

/**
 * For catch-up reads (pull): the document if in view, else a removal. A pull cannot know what
 * the client holds, so every change out of view becomes a removal; the SDK drops removals of
 * documents it does not have. Without a view, tombstones go out whole (RxDB's stock plugin).
 */
export function forPull(store: CollectionStore, view: View, stored: StoredDocument, wire?: SyncDocument): SyncDocument {
  if (view === null) return wire ?? store.toWire(stored);
  return inView(view, stored) ? (wire ?? store.toWire(stored)) : store.removal(stored);
}

/**
 * For the live stream, which has delivered every earlier version: the document if in view, a
 * removal if it just left the view, nothing otherwise.
 */
export function forStream(store: CollectionStore, view: View, stored: StoredDocument, wire: SyncDocument): SyncDocument | null {
  if (view === null || inView(view, stored)) return wire;
  return wasInView(view, stored) ? store.removal(stored) : null;
}
