// Filters in MongoDB query syntax, as clients send them (Flexible Sync subscriptions, plain
// GraphQL lists and watches). One checker for both ends: the SDK checks a subscription before
// sending it, the gateway checks everything it receives.
import { UNQUERYABLE_SCALARS, type CollectionModel, type FieldModel, type FieldType, type ScalarName } from './model.ts';
import { decimalText, normalizeLong, normalizeObjectId, normalizeUuid } from './wire-values.ts';
import { isObject } from './paths.ts';

export type Filter = Record<string, unknown>;

const COMPARISONS = new Set(['$eq', '$ne', '$gt', '$gte', '$lt', '$lte']);
const FIELD_OPERATORS = new Set([...COMPARISONS, '$in', '$nin', '$exists', '$not', '$regex', '$options']);
const LOGICAL_OPERATORS = new Set(['$and', '$or', '$nor']);
/** Literal text, `.` and `.*` only (what BEGINSWITH / CONTAINS / LIKE produce). */
const SAFE_PATTERN = /^\^?(?:\\[\\^$.*+?()[\]{}|/-]|\.\*|\.|[^\\^$.*+?()[\]{}|])*\$?$/;
/** Keys that would reach an object's prototype where a path is looked up or an object built. */
const UNSAFE_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

// What one filter may cost. The gateway matches filters in memory, on its one thread, against
// every change a pull, stream or watch sees, so each bound caps work done per document for
// every user. The SDK checks subscriptions with the same bounds.
/** Conditions, operators and operands (each `$in` value counts) in one filter. */
export const MAX_FILTER_NODES = 1_000;
/** How deep `$and`, `$or`, `$nor` and `$not` may nest. */
export const MAX_FILTER_DEPTH = 10;
/** Values in one `$in` or `$nin`. */
export const MAX_IN_VALUES = 500;
/** Characters of one string operand. */
export const MAX_OPERAND_LENGTH = 1_024;
/** `$regex` conditions in one filter: each reads the whole of every string it is run on. */
export const MAX_FILTER_PATTERNS = 16;
/** Characters of one `$regex` pattern. */
export const MAX_PATTERN_LENGTH = 256;
/** `.*` wildcards in one pattern. */
export const MAX_PATTERN_WILDCARDS = 8;
/**
 * `.` wildcards in one pattern. The in-memory engine runs in linear time on a lazily built DFA
 * whose states grow with 2^dots; past its cache it falls back to a simulation that costs the
 * pattern's length per character of input.
 */
export const MAX_PATTERN_DOTS = 8;

/** Realm's error code for a query the server cannot serve. */
export const BAD_QUERY_CODE = 226;

export class QueryError extends Error {
  override name = 'QueryError';
  readonly code = 'BAD_QUERY';
  readonly realmCode = BAD_QUERY_CODE;
}

export interface CheckFilterOptions {
  /** Only fields marked @queryable may be used (subscriptions, rules). */
  queryableOnly: boolean;
  /**
   * The top-level fields the asking user may read: a filter on any other would tell it what the
   * field holds (gateway/rules/permissions.ts). Absent: all fields.
   */
  readableField?: (field: string) => boolean;
  /**
   * The filter is a Flexible Sync subscription: it may not reach through embedded objects or
   * links, and, when the collection has an @indexedQueryable field, it must constrain that
   * field at the top level with equality or `$in`.
   */
  subscription?: boolean;
}

/** Throws QueryError unless `filter` only uses allowed operators on fields of `collection`, within the limits above. */
export function checkFilter(collection: CollectionModel, filter: unknown, options: CheckFilterOptions): Filter {
  if (filter === undefined || filter === null) {
    if (options.subscription) checkIndexedQueryable(collection, {});
    return {};
  }
  checkExpression(collection, filter, '', options, { nodes: 0, patterns: 0 }, 0);
  if (options.subscription) checkIndexedQueryable(collection, filter as Filter);
  return filter as Filter;
}

/**
 * Realm's indexed queryable field: a subscription must say which values of it it wants, with
 * `field == v` or `field IN {…}` at the top level, alone or ANDed with anything else.
 */
function checkIndexedQueryable(collection: CollectionModel, filter: Filter): void {
  const field = collection.indexedQueryable;
  if (field === undefined || constrainsByEquality(filter, field)) return;
  throw new QueryError(
    `${collection.typeName}.${field} is the indexed queryable field: every Flexible Sync subscription on ${collection.typeName} must constrain it ` +
      `at the top level with == or IN, ANDed with anything else (such as "${field} == $0 AND …"); ` +
      `this query does not (a comparison inside OR or NOT, or with another operator, does not count)`,
  );
}

function constrainsByEquality(filter: Filter, field: string): boolean {
  return Object.entries(filter).some(([key, value]) => {
    if (key === '$and') return Array.isArray(value) && value.some((part) => isObject(part) && constrainsByEquality(part, field));
    if (key !== field) return false;
    if (!isOperatorObject(value)) return true; // {field: v}
    return Object.hasOwn(value, '$eq') || Object.hasOwn(value, '$in');
  });
}

/** What the filter checked so far holds. */
interface Tally {
  nodes: number;
  patterns: number;
}

/** One more condition, operator or operand. */
function count(tally: Tally): void {
  if (++tally.nodes > MAX_FILTER_NODES) throw new QueryError(`filter has more than ${MAX_FILTER_NODES} conditions and operands (MAX_FILTER_NODES)`);
}

/** Refused before going deeper, so no input can exhaust the stack. */
function nest(depth: number): number {
  if (depth + 1 > MAX_FILTER_DEPTH) throw new QueryError(`filter nests $and, $or, $nor and $not more than ${MAX_FILTER_DEPTH} deep (MAX_FILTER_DEPTH)`);
  return depth + 1;
}

function checkExpression(collection: CollectionModel, filter: unknown, at: string, options: CheckFilterOptions, tally: Tally, depth: number): void {
  if (typeof filter !== 'object' || filter === null || Array.isArray(filter)) throw new QueryError(`${at || 'filter'} must be an object`);
  for (const [key, value] of Object.entries(filter)) {
    count(tally);
    if (key.startsWith('$')) {
      if (!LOGICAL_OPERATORS.has(key)) throw new QueryError(`unsupported operator ${key}`);
      if (!Array.isArray(value) || value.length === 0) throw new QueryError(`${key} needs a non-empty array`);
      const inner = nest(depth);
      value.forEach((v, i) => checkExpression(collection, v, `${key}[${i}]`, options, tally, inner));
      continue;
    }
    if (isListPosition(collection, key, options)) {
      if (!isOperatorObject(value) || Object.keys(value).length !== 1 || typeof value.$exists !== 'boolean') {
        throw new QueryError(`${key}: a position in a list takes only {$exists: true|false} (its length)`);
      }
      count(tally);
      continue;
    }
    const field = resolvePath(collection, key, options);
    const scalar = field.kind === 'list' ? field.of : field;
    if (scalar.kind === 'scalar' && UNQUERYABLE_SCALARS.includes(scalar.name)) throw new QueryError(`${key} is a ${scalar.name} field, which filters cannot use`);
    checkCondition(field, { collection, path: key }, value, tally, depth);
  }
}

/** Where an operand is compared: a field path of a collection, for messages. */
interface Place {
  collection: CollectionModel;
  path: string;
}

function checkCondition(type: FieldType, place: Place, condition: unknown, tally: Tally, depth: number): void {
  const { path } = place;
  if (!isOperatorObject(condition)) return checkOperand(type, place, condition, tally);
  for (const [op, value] of Object.entries(condition)) {
    if (!FIELD_OPERATORS.has(op)) throw new QueryError(`unsupported operator ${op} on ${path}`);
    count(tally);
    if (op === '$exists') {
      if (typeof value !== 'boolean') throw new QueryError(`$exists on ${path} needs true or false`);
      count(tally);
    } else if (op === '$not') {
      if (!isOperatorObject(value)) throw new QueryError(`$not on ${path} needs an operator object`);
      checkCondition(type, place, value, tally, nest(depth));
    } else if (op === '$in' || op === '$nin') {
      if (!Array.isArray(value)) throw new QueryError(`${op} on ${path} needs an array`);
      if (value.length > MAX_IN_VALUES) throw new QueryError(`${op} on ${path} has more than ${MAX_IN_VALUES} values (MAX_IN_VALUES)`);
      value.forEach((v) => checkOperand(type, place, v, tally));
    } else if (op === '$regex') {
      if (++tally.patterns > MAX_FILTER_PATTERNS) throw new QueryError(`filter has more than ${MAX_FILTER_PATTERNS} $regex conditions (MAX_FILTER_PATTERNS)`);
      // Stored as BSON values, not strings: a pattern would match their spelling in memory only.
      const scalar = type.kind === 'list' ? type.of : type;
      if (scalar.kind === 'scalar' && NOT_TEXT.has(scalar.name)) {
        throw new QueryError(`$regex on ${place.collection.typeName}.${path}: ${scalar.name} values are not text (BEGINSWITH, CONTAINS, ENDSWITH, LIKE and [c] apply to strings)`);
      }
      checkPattern(path, value);
      count(tally);
    } else if (op === '$options') {
      if (value !== 'i' && value !== '') throw new QueryError(`$options on ${path} may only be "i"`);
      if (!Object.hasOwn(condition, '$regex')) throw new QueryError(`$options on ${path} needs $regex`);
      count(tally);
    } else {
      checkOperand(type, place, value, tally);
    }
  }
}

/** Scalars a pattern (BEGINSWITH, CONTAINS, LIKE, ==[c]) cannot apply to. */
const NOT_TEXT = new Set<ScalarName>(['Int', 'Float', 'Boolean', 'ObjectId', 'UUID', 'Long', 'Decimal']);

function checkPattern(path: string, pattern: unknown): void {
  if (typeof pattern !== 'string') throw new QueryError(`$regex on ${path} needs a string`);
  if (pattern.length > MAX_PATTERN_LENGTH) throw new QueryError(`$regex on ${path} is longer than ${MAX_PATTERN_LENGTH} characters (MAX_PATTERN_LENGTH)`);
  if (!SAFE_PATTERN.test(pattern)) {
    throw new QueryError(`$regex on ${path} may only hold literal text and the wildcards . and .* (as BEGINSWITH, CONTAINS, ENDSWITH and LIKE produce)`);
  }
  const { dots, stars } = wildcards(pattern);
  if (stars > MAX_PATTERN_WILDCARDS) throw new QueryError(`$regex on ${path} has more than ${MAX_PATTERN_WILDCARDS} .* wildcards (MAX_PATTERN_WILDCARDS)`);
  if (dots > MAX_PATTERN_DOTS) throw new QueryError(`$regex on ${path} has more than ${MAX_PATTERN_DOTS} . wildcards (MAX_PATTERN_DOTS)`);
}

/** The wildcards of a pattern SAFE_PATTERN accepts (an escaped `\.` is literal text). */
function wildcards(pattern: string): { dots: number; stars: number } {
  let dots = 0;
  let stars = 0;
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] === '\\') {
      i++;
    } else if (pattern[i] === '.' && pattern[i + 1] === '*') {
      stars++;
      i++;
    } else if (pattern[i] === '.') {
      dots++;
    }
  }
  return { dots, stars };
}

/**
 * The same pattern with each run of wildcards written as its dots and then at most one `.*`:
 * `.*.*.*` and `.*.` match what `.*` and `..*` do, in every engine, with less work.
 * For patterns SAFE_PATTERN accepts.
 */
export function simplifyPattern(pattern: string): string {
  let out = '';
  let dots = 0;
  let star = false;
  const flush = () => {
    out += '.'.repeat(dots) + (star ? '.*' : '');
    dots = 0;
    star = false;
  };
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] === '.' && pattern[i + 1] === '*') {
      star = true;
      i++;
    } else if (pattern[i] === '.') {
      dots++;
    } else if (pattern[i] === '\\') {
      // An escape is one character of literal text: kept whole.
      flush();
      out += pattern.slice(i, i + 2);
      i++;
    } else {
      flush();
      out += pattern[i];
    }
  }
  flush();
  return out;
}

export function isOperatorObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date) && Object.keys(v).some((k) => k.startsWith('$'));
}

function checkOperand(type: FieldType, place: Place, value: unknown, tally: Tally): void {
  const { path } = place;
  count(tally);
  if (value !== null && typeof value === 'object' && !(value instanceof Date)) throw new QueryError('filter values must be scalars');
  if (typeof value === 'string' && value.length > MAX_OPERAND_LENGTH) {
    throw new QueryError(`a value for ${path} is longer than ${MAX_OPERAND_LENGTH} characters (MAX_OPERAND_LENGTH)`);
  }
  // null: the field is missing or null (RQL's nil), whatever its type.
  if (value === null) return;
  // A list's operand is compared with its elements (lists of lists there are none).
  const scalar = (type.kind === 'list' ? type.of : type) as Exclude<FieldType, { kind: 'list' }>;
  const typeName = type.kind === 'list' ? `[${scalar.name}]` : scalar.name;
  if (scalar.kind === 'object') throw mismatch(place, typeName, value, 'an embedded object is compared through its fields');
  if (scalar.kind === 'enum') {
    if (typeof value !== 'string') throw mismatch(place, typeName, value);
  } else {
    checkTypedOperand(scalar.name, typeName, place, value);
  }
}

/** Scalars whose operands arrive in their wire form and are compared as BSON values. */
const TYPED_OPERANDS = new Set<ScalarName>(['DateTime', 'ObjectId', 'UUID', 'Long', 'Decimal']);

/** What a filter value is, as messages name it. */
function kindOf(value: unknown): string {
  if (value instanceof Date) return 'a date';
  if (typeof value === 'string') return 'a string';
  if (typeof value === 'number') return 'a number';
  if (typeof value === 'boolean') return 'a boolean';
  return `a ${typeof value}`;
}

function describe(value: unknown): string {
  return value instanceof Date ? (Number.isNaN(value.getTime()) ? 'an invalid date' : value.toISOString()) : (JSON.stringify(value) ?? String(value));
}

/** `cannot compare Task.priority (Int) with "high" (a string)`, and why, if more is to be said. */
function mismatch(place: Place, typeName: string, value: unknown, why?: string): QueryError {
  const field = `${place.collection.typeName}.${place.path}`;
  return new QueryError(`cannot compare ${field} (${typeName}) with ${describe(value)} (${kindOf(value)})${why ? `: ${why}` : ''}`);
}

/**
 * An operand must be a value of its field's type, in its wire form: a comparison between other
 * types would select nothing in MongoDB (which compares values of one type only), so it is a
 * BAD_QUERY, as in Realm. Typed scalars arrive as the gateway turns them into BSON values (Long
 * also takes a safe integer, Decimal a number: RQL writes numbers so; DateTime a Date or an ISO
 * string). Precision and range of a Decimal are checked where it is converted
 * (gateway/query/filter.ts).
 */
function checkTypedOperand(name: ScalarName, typeName: string, place: Place, value: unknown): void {
  const bad = (what: string) => mismatch(place, typeName, value, `${describe(value)} is not ${what}`);
  switch (name) {
    case 'ID':
    case 'String':
      if (typeof value !== 'string') throw mismatch(place, typeName, value);
      return;
    case 'Int':
    case 'Float':
      if (typeof value !== 'number') throw mismatch(place, typeName, value);
      return;
    case 'Boolean':
      if (typeof value !== 'boolean') throw mismatch(place, typeName, value);
      return;
    case 'DateTime': {
      if (!(value instanceof Date) && typeof value !== 'string') throw mismatch(place, typeName, value);
      const date = value instanceof Date ? value : new Date(value);
      if (Number.isNaN(date.getTime())) throw bad('a date');
      return;
    }
    case 'ObjectId':
      if (typeof value !== 'string') throw mismatch(place, typeName, value);
      if (normalizeObjectId(value) === null) throw bad('an ObjectId (24 hex digits)');
      return;
    case 'UUID':
      if (typeof value !== 'string') throw mismatch(place, typeName, value);
      if (normalizeUuid(value) === null) throw bad('a UUID (8-4-4-4-12 hex digits)');
      return;
    case 'Long':
      if (typeof value !== 'string' && typeof value !== 'number') throw mismatch(place, typeName, value);
      if (normalizeLong(value) === null) throw bad('a 64-bit integer (a decimal string or a safe integer)');
      return;
    case 'Decimal':
      if (typeof value !== 'string' && typeof value !== 'number') throw mismatch(place, typeName, value);
      if (decimalText(value) === null) throw bad('a decimal number (a string such as "1.10", or a number)');
      return;
    default:
      return;
  }
}

/** The wire form of a typed operand, normalized (lowercase hex, canonical integers, decimal text). */
export function normalizeOperand(name: ScalarName, value: unknown): unknown {
  switch (name) {
    case 'ObjectId':
      return normalizeObjectId(value) ?? value;
    case 'UUID':
      return normalizeUuid(value) ?? value;
    case 'Long':
      return normalizeLong(value) ?? value;
    case 'Decimal':
      return decimalText(value) ?? value;
    default:
      return value;
  }
}

/**
 * Whether `path` is a position in a list field (`tags.2`): with `$exists` alone, a list's length
 * (RQL's `list.@count`, protocol/rql.ts). Positions stop at six digits.
 */
function isListPosition(collection: CollectionModel, path: string, options: CheckFilterOptions): boolean {
  const indexed = /^(.+)\.(\d{1,6})$/.exec(path);
  return indexed !== null && resolvePath(collection, indexed[1]!, options).kind === 'list';
}

function resolvePath(collection: CollectionModel, path: string, options: CheckFilterOptions): FieldType {
  let fields: FieldModel[] = collection.fields;
  let type: FieldType | undefined;
  const parts = path.split('.');
  for (const [i, part] of parts.entries()) {
    if (UNSAFE_KEYS.has(part)) throw new QueryError(`field path ${path} names ${part}, which no filter may use`);
    const field = fields.find((f) => f.name === part);
    if (!field || (i === 0 && options.readableField && !options.readableField(part))) throw new QueryError(`unknown field ${path} in ${collection.typeName}`);
    if (i === 0 && options.subscription && parts.length > 1) {
      throw new QueryError(`${collection.typeName}.${path}: Flexible Sync subscriptions cannot query through embedded objects or links, only top-level @queryable fields`);
    }
    if (i === 0 && options.queryableOnly && !field.queryable) {
      // Realm's text first; the rest says what to do about it.
      throw new QueryError(`"${part}" is not a queryable field (${collection.typeName}.${part} is not queryable: mark it @queryable in schema.graphql to use it in subscriptions and rules)`);
    }
    type = field.type;
    const inner = type.kind === 'list' ? type.of : type;
    fields = inner.kind === 'object' ? inner.fields : [];
  }
  return type!;
}

export interface FilterRewrite {
  /** New name for a top-level field (the gateway stores `id` as `_id`). */
  field?: (name: string) => string;
  /** New value for an operand of a DateTime field. */
  dateOperand?: (value: unknown) => unknown;
  /**
   * New value for a (non-null) operand of a field of scalar type `type`, whatever the type (for
   * DateTime it takes the place of dateOperand).
   */
  operand?: (type: ScalarName, value: unknown) => unknown;
  /** New text for a `$regex` pattern. */
  pattern?: (pattern: string) => string;
}

/**
 * A copy of a checked filter with field names, DateTime operands and patterns rewritten. Built
 * with Object.fromEntries: a key is always an own property, never a prototype setter.
 */
export function rewriteFilter(collection: CollectionModel, filter: Filter, rewrite: FilterRewrite): Filter {
  return Object.fromEntries(
    Object.entries(filter).map(([key, value]) => {
      if (key.startsWith('$')) return [key, (value as Filter[]).map((v) => rewriteFilter(collection, v, rewrite))];
      const [head, ...rest] = key.split('.');
      const name = [rewrite.field ? rewrite.field(head!) : head, ...rest].join('.');
      if (isListPosition(collection, key, { queryableOnly: false })) return [name, value]; // {$exists} alone
      return [name, rewriteCondition(resolvePath(collection, key, { queryableOnly: false }), value, rewrite)];
    }),
  );
}

function rewriteCondition(type: FieldType, condition: unknown, rewrite: FilterRewrite): unknown {
  const scalar = type.kind === 'list' ? type.of : type;
  const name = scalar.kind === 'scalar' ? scalar.name : null;
  const convert = name === null ? undefined : rewrite.operand ? (v: unknown) => rewrite.operand!(name, v) : name === 'DateTime' ? rewrite.dateOperand : undefined;
  const operand = (v: unknown) => (convert && v !== null ? convert(v) : v);
  if (!isOperatorObject(condition)) return operand(condition);
  return Object.fromEntries(
    Object.entries(condition).map(([op, value]) => {
      if (op === '$not') return [op, rewriteCondition(type, value, rewrite)];
      if (op === '$in' || op === '$nin') return [op, (value as unknown[]).map(operand)];
      if (op === '$regex') return [op, rewrite.pattern ? rewrite.pattern(value as string) : value];
      if (op === '$exists' || op === '$options') return [op, value];
      return [op, operand(value)];
    }),
  );
}
