// Compiles a checked filter (protocol/filter.ts) to the stored form, once: `id` becomes `_id`
// and DateTime operands become dates. The same compiled filter runs in MongoDB (reads,
// bootstraps) and in memory through mingo (live changes), so both agree on what matches.
import { Query } from 'mingo';
import type { Filter as MongoFilter } from 'mongodb';
import { checkFilter, rewriteFilter, type CheckFilterOptions } from '../../protocol/filter.ts';
import { PRIMARY_KEY, type CollectionModel } from '../../protocol/model.ts';
import type { StoredDocument } from '../store/collection-store.ts';

export interface CompiledFilter {
  /** In stored form, tombstones included. */
  stored: MongoFilter<StoredDocument>;
  /** For MongoDB reads of live documents (tombstones excluded). */
  mongo: MongoFilter<StoredDocument>;
  /** The same filter over stored documents in memory. */
  matches(doc: StoredDocument): boolean;
  /** A union of no filters: nothing can match. */
  matchesNothing?: boolean;
}

export function compileFilter(collection: CollectionModel, filter: unknown, options: CheckFilterOptions = { queryableOnly: false }): CompiledFilter {
  const translated = rewriteFilter(collection, checkFilter(collection, filter, options), {
    field: (name) => (name === PRIMARY_KEY ? '_id' : name),
    dateOperand: (value) => (typeof value === 'string' ? new Date(value) : value),
  });
  // Compiled on first use: a session's permission filters cost memory per connection, and many
  // connections never see a change they must be matched against.
  let query: Query | undefined;
  return {
    stored: translated as MongoFilter<StoredDocument>,
    mongo: { $and: [translated, { '_sync.deleted': false }] } as MongoFilter<StoredDocument>,
    matches: (doc) => (query ??= new Query(translated)).test(doc),
  };
}

/** A document matches the union when any filter matches. */
export function compileUnion(collection: CollectionModel, filters: unknown[], options: CheckFilterOptions): CompiledFilter {
  if (filters.length === 1) return compileFilter(collection, filters[0], options);
  const compiled = filters.map((f) => compileFilter(collection, f, options));
  const stored = (compiled.length === 0 ? { $nor: [{}] } : { $or: compiled.map((c) => c.stored) }) as MongoFilter<StoredDocument>;
  return {
    stored,
    mongo: { $and: [stored, { '_sync.deleted': false }] } as MongoFilter<StoredDocument>,
    matches: (doc) => compiled.some((c) => c.matches(doc)),
    matchesNothing: compiled.length === 0,
  };
}
