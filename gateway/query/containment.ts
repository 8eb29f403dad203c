// Whether every document one filter selects is also selected by another, decided from the
// filters alone. A bootstrap whose query is covered by the queries the device already holds
// (narrowing a subscription, adding one inside "everything") has nothing to send, and need not
// ask a store that would scan to find that out (FerretDB has no usable index for it).
//
// Sound, not complete: "true" is a proof, "false" means "not proven". Only conjunctions of
// equality and `$in` over scalar values are understood (what RQL's ==, IN and AND give), which
// keeps the proof simple: a condition "field matches one of S" (MongoDB's equality: the value,
// or an array holding it) implies "field matches one of E" whenever S ⊆ E, arrays included.
import { BSON } from 'mongodb';

/** One condition of a conjunction: the field matches one of these values (canonical EJSON). */
interface Condition {
  field: string;
  values: Set<string>;
}

/** Every document `query` selects is selected by `union` (a filter, or an `$or` of filters). */
export function coveredBy(query: unknown, union: unknown): boolean {
  const conditions = conjunction(query);
  if (conditions === null) return false;
  const alternatives = isPlainObject(union) && Object.keys(union).length === 1 && Array.isArray(union.$or) ? union.$or : [union];
  return alternatives.some((alternative) => {
    const required = conjunction(alternative);
    // Each condition the alternative sets is implied by one of the query's on the same field.
    return required !== null && required.every((r) => conditions.some((c) => c.field === r.field && isSubset(c.values, r.values)));
  });
}

/** The filter as a list of conditions that must all hold, or null when it is not one. */
function conjunction(filter: unknown): Condition[] | null {
  if (!isPlainObject(filter)) return null;
  const conditions: Condition[] = [];
  for (const [key, value] of Object.entries(filter)) {
    if (key === '$and') {
      if (!Array.isArray(value)) return null;
      for (const part of value) {
        const inner = conjunction(part);
        if (inner === null) return null;
        conditions.push(...inner);
      }
      continue;
    }
    if (key.startsWith('$')) return null; // $or, $nor, $expr, …: not a conjunction of conditions
    const values = allowedValues(value);
    if (values === null) return null;
    conditions.push({ field: key, values });
  }
  return conditions;
}

/** `value`, `{ $eq: value }` or `{ $in: [values] }` over scalars; null for anything else. */
function allowedValues(condition: unknown): Set<string> | null {
  if (isPlainObject(condition)) {
    const operators = Object.keys(condition);
    if (operators.length !== 1) return null;
    if (operators[0] === '$eq') return allowedValues(condition.$eq);
    if (operators[0] !== '$in' || !Array.isArray(condition.$in)) return null;
    const values = new Set<string>();
    for (const value of condition.$in) {
      const key = scalarKey(value);
      if (key === null) return null;
      values.add(key);
    }
    return values;
  }
  const key = scalarKey(condition);
  return key === null ? null : new Set([key]);
}

/**
 * A scalar as canonical EJSON (each BSON type apart: an Int32 1 and a Double 1 are told apart,
 * which can only lose a proof, never make a wrong one). Null for arrays and embedded documents
 * (equality to them is exact, not "matches one of") and for patterns.
 */
function scalarKey(value: unknown): string | null {
  const scalar =
    value === null ||
    typeof value === 'string' ||
    typeof value === 'number' ||
    typeof value === 'boolean' ||
    value instanceof Date ||
    (typeof value === 'object' && typeof (value as { _bsontype?: unknown })._bsontype === 'string' && !(value instanceof BSON.BSONRegExp) && !(value instanceof BSON.Code));
  return scalar ? BSON.EJSON.stringify({ v: value }, { relaxed: false }) : null;
}

function isSubset(a: Set<string>, b: Set<string>): boolean {
  for (const value of a) if (!b.has(value)) return false;
  return true;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype;
}
