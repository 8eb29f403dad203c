// What a client receives of a stored document: the intersection of its view (the union of its
// subscriptions' queries on the collection, or everything for a client without subscriptions
// such as RxDB's stock plugin) and what its permissions let it read, with the fields it may not
// read removed. Either the document, a removal (id only), or nothing.
import { createHash } from 'node:crypto';
import type { Filter } from 'mongodb';
import { QueryError } from '../../protocol/filter.ts';
import type { SyncDocument } from '../../protocol/messages.ts';
import type { CollectionModel } from '../../protocol/model.ts';
import { compileUnion, type CompiledFilter } from '../query/filter.ts';
import { inSet, type CollectionPermissions } from '../rules/permissions.ts';
import { withoutStamps, type CollectionStore, type PlainDocument, type StoredDocument } from '../store/collection-store.ts';

/** Subscription queries on one collection that a view (or a bootstrap's exclude) may hold. */
export const MAX_VIEW_QUERIES = 100;

export interface View {
  /** The subscriptions' union; null: everything readable. */
  readonly filter: CompiledFilter | null;
  readonly permissions: CollectionPermissions;
  /** The client stamps its changes and wants the stamps (`_stamps`) with documents. */
  readonly stamps: boolean;
  /**
   * Equal for views that select and shape the same documents: the queries as sent, stamps, and
   * the permissions' readKey. Live streams share their work per key (sync/stream.ts).
   */
  readonly key: string;
}

/** null/undefined queries: everything; []: nothing; else their union. Throws QueryError. */
export function compileView(collection: CollectionModel, queries: unknown[] | null | undefined, permissions: CollectionPermissions, stamps = false): View {
  if (queries !== null && queries !== undefined) {
    if (!Array.isArray(queries)) throw new QueryError('view must be a list of queries');
    if (queries.length > MAX_VIEW_QUERIES) throw new QueryError(`a view holds at most ${MAX_VIEW_QUERIES} queries (MAX_VIEW_QUERIES)`);
  }
  // Subscription queries: top-level @queryable fields only, and the indexed queryable field
  // constrained if the collection has one (protocol/filter.ts).
  const filter = queries === null || queries === undefined ? null : compileUnion(collection, queries, { queryableOnly: true, subscription: true, readableField: (f) => permissions.readableField(f) });
  return new CompiledView(filter, permissions, stamps, queries ?? null);
}

/** A class, not an object literal with a getter: one is held per live subscription (memory). */
class CompiledView implements View {
  private hashed: string | undefined;

  constructor(
    readonly filter: CompiledFilter | null,
    readonly permissions: CollectionPermissions,
    readonly stamps: boolean,
    private readonly queries: unknown[] | null,
  ) {}

  // Hashed on first use, once the queries are known good: only live streams ask.
  get key(): string {
    return (this.hashed ??= createHash('sha256')
      .update(JSON.stringify([this.queries, this.stamps, this.permissions.readKey]))
      .digest('base64url'));
  }
}

/** A document as this client may receive it: readable fields only, stamps if it wants them. */
export function shape(view: View, doc: SyncDocument): SyncDocument {
  const projected = view.permissions.project(doc);
  return view.stamps ? projected : withoutStamps(projected);
}

/** Nothing can be in this view: an empty subscription set, or no read access. */
export function viewIsEmpty(view: View): boolean {
  return view.filter?.matchesNothing === true || view.permissions.read === 'none';
}

export function inView(view: View, stored: StoredDocument): boolean {
  return !stored._sync.deleted && (view.filter?.matches(stored) ?? true) && inSet(view.permissions.read, stored);
}

/** Whether the version before this one was in the view (known from `_sync.prev`). */
export function wasInView(view: View, stored: StoredDocument): boolean {
  const prev = stored._sync.prev;
  if (prev === null || prev === undefined) return false;
  const before = { ...prev, _sync: stored._sync } as StoredDocument;
  return (view.filter?.matches(before) ?? true) && inSet(view.permissions.read, before);
}

/**
 * Whether the user may read this document now or could in one of its recent states
 * (`_sync.prev`, `_sync.past`). Only then may it learn of the document at all, even as a
 * removal: the id of a document a user never could read does not leave the gateway.
 */
function mayKnowOf(view: View, stored: StoredDocument): boolean {
  const { read } = view.permissions;
  if (read === 'all') return true;
  if (read === 'none') return false;
  if (read.matches(stored)) return true;
  const states = [...(stored._sync.past ?? []), ...(stored._sync.prev ? [stored._sync.prev] : []), ...(stored._sync.state ? [stored._sync.state] : [])];
  return states.some((state) => read.matches({ ...state, _sync: stored._sync } as StoredDocument));
}

/** An unrestricted client without subscriptions gets every change whole, tombstones included. */
function seesEverything(view: View): boolean {
  return view.filter === null && view.permissions.unrestricted;
}

/**
 * For catch-up reads (pull): the document if in view, else a removal. A pull cannot know what
 * the client holds, so every change out of view that the user may know of becomes a removal;
 * the SDK drops removals of documents it does not have. Null: nothing for this user.
 */
export function forPull(store: CollectionStore, view: View, stored: StoredDocument, wire?: SyncDocument): SyncDocument | null {
  if (seesEverything(view) || inView(view, stored)) return shape(view, wire ?? store.toWire(stored, view.stamps));
  return mayKnowOf(view, stored) ? store.removal(stored) : null;
}

/**
 * For the live stream, which has delivered every earlier version: the document if in view, a
 * removal if it just left the view, nothing otherwise.
 */
export function forStream(store: CollectionStore, view: View, stored: StoredDocument, wire: SyncDocument): SyncDocument | null {
  if (seesEverything(view) || inView(view, stored)) return shape(view, wire);
  return wasInView(view, stored) ? store.removal(stored) : null;
}

/** The view as one MongoDB filter over stored documents (tombstones included), or 'none'. */
export function viewSelection(view: View): Filter<StoredDocument> | 'none' {
  if (viewIsEmpty(view)) return 'none';
  const parts: Filter<StoredDocument>[] = [];
  if (view.filter) parts.push(view.filter.stored);
  if (view.permissions.read !== 'all' && view.permissions.read !== 'none') parts.push(view.permissions.read.stored);
  return parts.length === 0 ? {} : ({ $and: parts } as Filter<StoredDocument>);
}

/**
 * What a client must receive when its permissions change under an open stream (rules reloaded,
 * custom data changed): removals of what it may no longer see, and what it may now see.
 */
export async function viewDifference(store: CollectionStore, before: View, after: View): Promise<SyncDocument[]> {
  const was = viewSelection(before);
  const is = viewSelection(after);
  const only = (a: Filter<StoredDocument>, b: Filter<StoredDocument> | 'none') => ({ $and: [a, ...(b === 'none' ? [] : [{ $nor: [b] }])] }) as Filter<PlainDocument>;
  const all = async (filter: Filter<PlainDocument>) => {
    const cursor = store.versionsCursor(filter);
    const found: StoredDocument[] = [];
    for (let doc = await cursor.next(); doc !== null; doc = await cursor.next()) found.push(doc);
    return found;
  };
  const [lost, gained] = await Promise.all([was === 'none' ? [] : all(only(was, is)), is === 'none' ? [] : all(only(is, was))]);
  return [...lost.map((d) => store.removal(d)), ...gained.map((d) => shape(after, store.toWire(d, after.stamps)))];
}
