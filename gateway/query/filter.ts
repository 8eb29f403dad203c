// Compiles a checked filter (protocol/filter.ts) to the stored form, once: `id` becomes `_id`
// and DateTime operands become dates. The same compiled filter runs in MongoDB (reads,
// bootstraps) and in memory through mingo (live changes), so both agree on what matches.
//
// In memory, `$regex` never reaches JavaScript's RegExp: a backtracking engine spends time
// polynomial of high degree even on the literal-and-wildcard patterns the checker allows, and
// the gateway has one thread for every user. mingo gets a copy of the filter in which each
// pattern is a `$linearRegex` condition, run by re2js (RE2: linear time, and the semantics of
// the Go RE2 that FerretDB uses), in a mingo context where `$regex` itself refuses to run.
import { Context } from 'mingo';
import * as queryOperators from 'mingo/operators/query';
import { Query } from 'mingo/query';
import { ensureArray, flatten, resolve } from 'mingo/util';
import type { Filter as MongoFilter } from 'mongodb';
import { RE2JS } from 're2js';
import { checkFilter, isOperatorObject, rewriteFilter, simplifyPattern, type CheckFilterOptions, type Filter } from '../../protocol/filter.ts';
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
    // Less work for both engines (MongoDB's PCRE backtracks too), and the same matches.
    pattern: simplifyPattern,
  });
  // Compiled on first use: a session's permission filters cost memory per connection, and many
  // connections never see a change they must be matched against.
  let query: Query | undefined;
  return {
    stored: translated as MongoFilter<StoredDocument>,
    mongo: { $and: [translated, { '_sync.deleted': false }] } as MongoFilter<StoredDocument>,
    matches: (doc) => (query ??= new Query(forMingo(translated), MINGO_OPTIONS)).test(doc),
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

const LINEAR_REGEX = '$linearRegex';

interface LinearPattern {
  pattern: string;
  caseInsensitive: boolean;
}

/**
 * A pattern condition on the linear-time engine, with mingo's `$regex` semantics: the value at
 * the path (array elements included, one level of nested arrays too) has a string it matches.
 */
function linearRegex(selector: string, value: unknown): (doc: object) => boolean {
  const { pattern, caseInsensitive } = value as LinearPattern;
  const re = RE2JS.compile(pattern, caseInsensitive ? RE2JS.CASE_INSENSITIVE : 0);
  const matches = (v: unknown) => typeof v === 'string' && re.test(v);
  return (doc) => {
    const values = ensureArray(resolve(doc as Record<string, unknown>, selector, { unwrapArray: true }));
    return values.some(matches) || flatten(values, 1).some(matches);
  };
}

/** Every `$regex` is rewritten by forMingo; one that is not must fail loudly, never backtrack. */
function refuseRegex(): never {
  throw new Error('$regex reached mingo: patterns must run on the linear-time engine (gateway/query/filter.ts)');
}

const MINGO_OPTIONS = {
  context: Context.init({ query: { ...queryOperators, $regex: refuseRegex, [LINEAR_REGEX]: linearRegex } as never }),
  scriptEnabled: false,
};

/** The stored-form filter with each `$regex` (and its `$options`) as a `$linearRegex` condition. */
function forMingo(filter: Filter): Filter {
  return Object.fromEntries(Object.entries(filter).map(([key, value]) => [key, key.startsWith('$') ? (value as Filter[]).map(forMingo) : forMingoCondition(value)]));
}

function forMingoCondition(condition: unknown): unknown {
  if (!isOperatorObject(condition)) return condition;
  return Object.fromEntries(
    Object.entries(condition).flatMap(([op, value]): Array<[string, unknown]> => {
      if (op === '$not') return [[op, forMingoCondition(value)]];
      if (op === '$regex') return [[LINEAR_REGEX, { pattern: value as string, caseInsensitive: condition.$options === 'i' } satisfies LinearPattern]];
      if (op === '$options') return [];
      return [[op, value]];
    }),
  );
}
