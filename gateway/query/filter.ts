// Filters from clients (MongoDB query syntax, restricted): checked against the model and an
// operator allow-list, then translated to the stored form. The same translated filter runs in
// MongoDB (reads) and in memory through mingo (live changes), so both agree on what matches.
import { Query } from 'mingo';
import type { Filter } from 'mongodb';
import { PRIMARY_KEY, type CollectionModel, type FieldModel, type FieldType } from '../../protocol/model.ts';
import type { StoredDocument } from '../store/collection-store.ts';

const FIELD_OPERATORS = new Set(['$eq', '$ne', '$gt', '$gte', '$lt', '$lte', '$in', '$nin', '$exists', '$not']);
const LOGICAL_OPERATORS = new Set(['$and', '$or', '$nor']);

export class FilterError extends Error {
  override name = 'FilterError';
}

export interface CompiledFilter {
  /** For MongoDB; excludes tombstones. */
  mongo: Filter<StoredDocument>;
  /** Same filter over stored documents in memory (tombstones are the caller's business). */
  matches(doc: StoredDocument): boolean;
}

export function compileFilter(collection: CollectionModel, filter: unknown): CompiledFilter {
  const translated = filter === undefined || filter === null ? {} : translateFilter(collection.fields, filter, '');
  const query = new Query(translated);
  return {
    mongo: { $and: [translated, { '_sync.deleted': false }] } as Filter<StoredDocument>,
    matches: (doc) => query.test(doc),
  };
}

function translateFilter(fields: FieldModel[], filter: unknown, at: string): Record<string, unknown> {
  if (typeof filter !== 'object' || filter === null || Array.isArray(filter)) {
    throw new FilterError(`${at || 'filter'} must be an object`);
  }
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(filter)) {
    if (key.startsWith('$')) {
      if (!LOGICAL_OPERATORS.has(key)) throw new FilterError(`unsupported operator ${key}`);
      if (!Array.isArray(value) || value.length === 0) throw new FilterError(`${key} needs a non-empty array`);
      out[key] = value.map((v, i) => translateFilter(fields, v, `${key}[${i}]`));
      continue;
    }
    const type = resolvePath(fields, key);
    out[key === PRIMARY_KEY ? '_id' : key] = translateCondition(type, key, value);
  }
  return out;
}

function translateCondition(type: FieldType, path: string, condition: unknown): unknown {
  if (!isOperatorObject(condition)) return operand(type, condition);
  const out: Record<string, unknown> = {};
  for (const [op, value] of Object.entries(condition)) {
    if (!FIELD_OPERATORS.has(op)) throw new FilterError(`unsupported operator ${op} on ${path}`);
    if (op === '$exists') {
      if (typeof value !== 'boolean') throw new FilterError(`$exists on ${path} needs true or false`);
      out[op] = value;
    } else if (op === '$not') {
      if (!isOperatorObject(value)) throw new FilterError(`$not on ${path} needs an operator object`);
      out[op] = translateCondition(type, path, value);
    } else if (op === '$in' || op === '$nin') {
      if (!Array.isArray(value)) throw new FilterError(`${op} on ${path} needs an array`);
      out[op] = value.map((v) => operand(type, v));
    } else {
      out[op] = operand(type, value);
    }
  }
  return out;
}

function isOperatorObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).some((k) => k.startsWith('$'));
}

/** Values are scalars (or null); DateTime operands become dates, as they are stored. */
function operand(type: FieldType, value: unknown): unknown {
  if (value !== null && typeof value === 'object') throw new FilterError('filter values must be scalars');
  const scalar = type.kind === 'list' ? type.of : type;
  if (scalar.kind === 'scalar' && scalar.name === 'DateTime' && typeof value === 'string') {
    const date = new Date(value);
    if (Number.isNaN(date.getTime())) throw new FilterError(`"${value}" is not a date`);
    return date;
  }
  return value;
}

function resolvePath(fields: FieldModel[], path: string): FieldType {
  let current = fields;
  let type: FieldType | undefined;
  for (const part of path.split('.')) {
    const field = current.find((f) => f.name === part);
    if (!field) throw new FilterError(`unknown field ${path}`);
    type = field.type;
    const inner = type.kind === 'list' ? type.of : type;
    current = inner.kind === 'object' ? inner.fields : [];
  }
  return type!;
}
