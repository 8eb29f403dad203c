// Compiles a checked filter (protocol/filter.ts) to the stored form, once: `id` becomes `_id`,
// and operands of typed fields become their BSON values (DateTime a date, ObjectId an ObjectId,
// UUID a binary, Long an Int64, Decimal a Decimal128: protocol/bson-values.ts). The same filter
// runs in MongoDB (reads, bootstraps) and in memory through mingo (live changes), so both agree
// on what matches. mingo cannot compare BSON values (it compares objects by their toString(), so
// Long 10 < Long 9), so in memory both the documents and the operands are in their "match form"
// (protocol/match-form.ts): strings and numbers that mingo orders as MongoDB orders the values.
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
import { BsonValueError, storedValue } from '../../protocol/bson-values.ts';
import { checkFilter, isOperatorObject, normalizeOperand, QueryError, rewriteFilter, simplifyPattern, type CheckFilterOptions, type Filter } from '../../protocol/filter.ts';
import { collectionNeedsMatchForm, matchForm, matchValue } from '../../protocol/match-form.ts';
import { PRIMARY_KEY, type CollectionModel, type ScalarName } from '../../protocol/model.ts';
import type { StoredDocument } from '../store/collection-store.ts';

export interface CompiledFilter {
  /** In stored form: for MongoDB reads of the documents (tombstones are kept beside them). */
  stored: MongoFilter<StoredDocument>;
  /** The same filter over stored documents in memory. */
  matches(doc: StoredDocument): boolean;
  /** A union of no filters: nothing can match. */
  matchesNothing?: boolean;
}

export function compileFilter(collection: CollectionModel, filter: unknown, options: CheckFilterOptions = { queryableOnly: false }): CompiledFilter {
  const checked = checkFilter(collection, filter, options);
  const field = (name: string) => (name === PRIMARY_KEY ? '_id' : name);
  // Less work for both engines (MongoDB's PCRE backtracks too), and the same matches.
  const translated = rewriteFilter(collection, checked, { field, operand: storedOperand, pattern: simplifyPattern });
  const typed = collectionNeedsMatchForm(collection);
  const forMatching = typed ? rewriteFilter(collection, checked, { field, operand: matchOperand, pattern: simplifyPattern }) : translated;
  // Compiled on first use: a session's permission filters cost memory per connection, and many
  // connections never see a change they must be matched against.
  let query: Query | undefined;
  return {
    stored: translated as MongoFilter<StoredDocument>,
    matches: (doc) => (query ??= new Query(forMingo(forMatching), MINGO_OPTIONS)).test(typed ? matchFormOf(collection, doc) : doc),
  };
}

/** An operand as MongoDB compares it: the BSON value of its field's type. */
function storedOperand(type: ScalarName, value: unknown): unknown {
  switch (type) {
    case 'DateTime':
      return typeof value === 'string' ? new Date(value) : value;
    case 'ObjectId':
    case 'UUID':
    case 'Long':
    case 'Decimal':
      try {
        return storedValue({ kind: 'scalar', name: type }, normalizeOperand(type, value), 'a filter value');
      } catch (error) {
        // A Decimal past 34 digits, or one the store cannot hold (bson-values.ts, BsonSupport).
        if (error instanceof BsonValueError) throw new QueryError(error.message);
        throw error;
      }
    default:
      return value;
  }
}

/** An operand in match form (dates stay dates, as stored documents hold them). */
function matchOperand(type: ScalarName, value: unknown): unknown {
  if (type === 'DateTime') return typeof value === 'string' ? new Date(value) : value;
  return matchValue(type, value, 'wire');
}

/**
 * Documents in match form, once each however many filters they meet (a change is matched
 * against every subscriber's view and permissions). Stored documents are not changed once read.
 */
const matchForms = new WeakMap<object, Record<string, unknown>>();

function matchFormOf(collection: CollectionModel, doc: StoredDocument): Record<string, unknown> {
  let form = matchForms.get(doc);
  if (!form) {
    form = matchForm(collection, doc, 'stored');
    matchForms.set(doc, form);
  }
  return form;
}

/** A document matches the union when any filter matches. */
export function compileUnion(collection: CollectionModel, filters: unknown[], options: CheckFilterOptions): CompiledFilter {
  if (filters.length === 1) return compileFilter(collection, filters[0], options);
  const compiled = filters.map((f) => compileFilter(collection, f, options));
  const stored = (compiled.length === 0 ? { $nor: [{}] } : { $or: compiled.map((c) => c.stored) }) as MongoFilter<StoredDocument>;
  return {
    stored,
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
