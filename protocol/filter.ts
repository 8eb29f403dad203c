// Filters in MongoDB query syntax, as clients send them (Flexible Sync subscriptions, plain
// GraphQL lists and watches). One checker for both ends: the SDK checks a subscription before
// sending it, the gateway checks everything it receives.
import { type CollectionModel, type FieldModel, type FieldType } from './model.ts';

export type Filter = Record<string, unknown>;

const COMPARISONS = new Set(['$eq', '$ne', '$gt', '$gte', '$lt', '$lte']);
const FIELD_OPERATORS = new Set([...COMPARISONS, '$in', '$nin', '$exists', '$not', '$regex', '$options']);
const LOGICAL_OPERATORS = new Set(['$and', '$or', '$nor']);
/** Literal text, `.` and `.*` only (what BEGINSWITH / CONTAINS / LIKE produce): no backtracking blow-ups. */
const SAFE_PATTERN = /^\^?(?:\\[\\^$.*+?()[\]{}|/-]|\.\*|\.|[^\\^$.*+?()[\]{}|])*\$?$/;
const MAX_PATTERN_LENGTH = 256;
const MAX_WILDCARDS = 8;

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
}

/** Throws QueryError unless `filter` only uses allowed operators on fields of `collection`. */
export function checkFilter(collection: CollectionModel, filter: unknown, options: CheckFilterOptions): Filter {
  if (filter === undefined || filter === null) return {};
  checkExpression(collection, filter, '', options);
  return filter as Filter;
}

function checkExpression(collection: CollectionModel, filter: unknown, at: string, options: CheckFilterOptions): void {
  if (typeof filter !== 'object' || filter === null || Array.isArray(filter)) throw new QueryError(`${at || 'filter'} must be an object`);
  for (const [key, value] of Object.entries(filter)) {
    if (key.startsWith('$')) {
      if (!LOGICAL_OPERATORS.has(key)) throw new QueryError(`unsupported operator ${key}`);
      if (!Array.isArray(value) || value.length === 0) throw new QueryError(`${key} needs a non-empty array`);
      value.forEach((v, i) => checkExpression(collection, v, `${key}[${i}]`, options));
      continue;
    }
    const field = resolvePath(collection, key, options);
    checkCondition(field, key, value);
  }
}

function checkCondition(type: FieldType, path: string, condition: unknown): void {
  if (!isOperatorObject(condition)) return checkOperand(type, condition);
  for (const [op, value] of Object.entries(condition)) {
    if (!FIELD_OPERATORS.has(op)) throw new QueryError(`unsupported operator ${op} on ${path}`);
    if (op === '$exists') {
      if (typeof value !== 'boolean') throw new QueryError(`$exists on ${path} needs true or false`);
    } else if (op === '$not') {
      if (!isOperatorObject(value)) throw new QueryError(`$not on ${path} needs an operator object`);
      checkCondition(type, path, value);
    } else if (op === '$in' || op === '$nin') {
      if (!Array.isArray(value)) throw new QueryError(`${op} on ${path} needs an array`);
      value.forEach((v) => checkOperand(type, v));
    } else if (op === '$regex') {
      checkPattern(path, value);
    } else if (op === '$options') {
      if (value !== 'i' && value !== '') throw new QueryError(`$options on ${path} may only be "i"`);
      if (!('$regex' in condition)) throw new QueryError(`$options on ${path} needs $regex`);
    } else {
      checkOperand(type, value);
    }
  }
}

function checkPattern(path: string, pattern: unknown): void {
  if (typeof pattern !== 'string') throw new QueryError(`$regex on ${path} needs a string`);
  const wildcards = pattern.split('.*').length - 1;
  if (pattern.length > MAX_PATTERN_LENGTH || wildcards > MAX_WILDCARDS || !SAFE_PATTERN.test(pattern)) {
    throw new QueryError(`$regex on ${path} may only hold literal text and the wildcards . and .* (as BEGINSWITH, CONTAINS, ENDSWITH and LIKE produce)`);
  }
}

export function isOperatorObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date) && Object.keys(v).some((k) => k.startsWith('$'));
}

function checkOperand(type: FieldType, value: unknown): void {
  if (value !== null && typeof value === 'object' && !(value instanceof Date)) throw new QueryError('filter values must be scalars');
  const scalar = type.kind === 'list' ? type.of : type;
  if (scalar.kind === 'scalar' && scalar.name === 'DateTime' && value !== null) {
    const date = value instanceof Date ? value : typeof value === 'string' ? new Date(value) : null;
    if (!date || Number.isNaN(date.getTime())) throw new QueryError(`${JSON.stringify(value)} is not a date`);
  }
}

function resolvePath(collection: CollectionModel, path: string, options: CheckFilterOptions): FieldType {
  let fields: FieldModel[] = collection.fields;
  let type: FieldType | undefined;
  const parts = path.split('.');
  for (const [i, part] of parts.entries()) {
    const field = fields.find((f) => f.name === part);
    if (!field || (i === 0 && options.readableField && !options.readableField(part))) throw new QueryError(`unknown field ${path} in ${collection.typeName}`);
    if (i === 0 && options.queryableOnly && !field.queryable) {
      throw new QueryError(`${collection.typeName}.${part} is not queryable; mark it @queryable in schema.graphql to use it in subscriptions`);
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
}

/** A copy of a checked filter with field names and DateTime operands rewritten. */
export function rewriteFilter(collection: CollectionModel, filter: Filter, rewrite: FilterRewrite): Filter {
  const out: Filter = {};
  for (const [key, value] of Object.entries(filter)) {
    if (key.startsWith('$')) {
      out[key] = (value as Filter[]).map((v) => rewriteFilter(collection, v, rewrite));
      continue;
    }
    const [head, ...rest] = key.split('.');
    const name = [rewrite.field ? rewrite.field(head!) : head, ...rest].join('.');
    out[name] = rewriteCondition(resolvePath(collection, key, { queryableOnly: false }), value, rewrite);
  }
  return out;
}

function rewriteCondition(type: FieldType, condition: unknown, rewrite: FilterRewrite): unknown {
  const scalar = type.kind === 'list' ? type.of : type;
  const isDate = scalar.kind === 'scalar' && scalar.name === 'DateTime' && rewrite.dateOperand !== undefined;
  const operand = (v: unknown) => (isDate && v !== null ? rewrite.dateOperand!(v) : v);
  if (!isOperatorObject(condition)) return operand(condition);
  const out: Record<string, unknown> = {};
  for (const [op, value] of Object.entries(condition)) {
    if (op === '$not') out[op] = rewriteCondition(type, value, rewrite);
    else if (op === '$in' || op === '$nin') out[op] = (value as unknown[]).map(operand);
    else if (op === '$exists' || op === '$regex' || op === '$options') out[op] = value;
    else out[op] = operand(value);
  }
  return out;
}
