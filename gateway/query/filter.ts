// Compiles a checked filter (protocol/filter.ts) to the stored form, once: `id` becomes `_id`
// and DateTime operands become dates. The same compiled filter runs in MongoDB (reads,
// bootstraps) and in memory through mingo (live changes), so both agree on what matches.
import { Query } from 'mingo';
import type { Filter as MongoFilter } from 'mongodb';
import { checkFilter, isOperatorObject, type CheckFilterOptions, type Filter } from '../../protocol/filter.ts';
import { PRIMARY_KEY, type CollectionModel, type FieldModel, type FieldType } from '../../protocol/model.ts';
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
  const translated = translate(collection.fields, checkFilter(collection, filter, options));
  const query = new Query(translated);
  return {
    stored: translated as MongoFilter<StoredDocument>,
    mongo: { $and: [translated, { '_sync.deleted': false }] } as MongoFilter<StoredDocument>,
    matches: (doc) => query.test(doc),
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

function translate(fields: FieldModel[], filter: Filter): Filter {
  const out: Filter = {};
  for (const [key, value] of Object.entries(filter)) {
    if (key.startsWith('$')) {
      out[key] = (value as Filter[]).map((v) => translate(fields, v));
    } else {
      out[key === PRIMARY_KEY ? '_id' : key] = translateCondition(typeAt(fields, key), value);
    }
  }
  return out;
}

function translateCondition(type: FieldType, condition: unknown): unknown {
  if (!isOperatorObject(condition)) return operand(type, condition);
  const out: Record<string, unknown> = {};
  for (const [op, value] of Object.entries(condition)) {
    if (op === '$not') out[op] = translateCondition(type, value);
    else if (op === '$in' || op === '$nin') out[op] = (value as unknown[]).map((v) => operand(type, v));
    else if (op === '$exists' || op === '$regex' || op === '$options') out[op] = value;
    else out[op] = operand(type, value);
  }
  return out;
}

function operand(type: FieldType, value: unknown): unknown {
  const scalar = type.kind === 'list' ? type.of : type;
  return scalar.kind === 'scalar' && scalar.name === 'DateTime' && typeof value === 'string' ? new Date(value) : value;
}

function typeAt(fields: FieldModel[], path: string): FieldType {
  let type: FieldType | undefined;
  let current = fields;
  for (const part of path.split('.')) {
    type = current.find((f) => f.name === part)!.type;
    const inner = type.kind === 'list' ? type.of : type;
    current = inner.kind === 'object' ? inner.fields : [];
  }
  return type!;
}
