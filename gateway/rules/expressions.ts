// Rule expressions as App Services writes them, decided for one session: `apply_when`, document
// filters and `insert`/`delete` expressions, after load.ts has checked and normalized them
// (`%` operators written as `$`, Realm's `_id` as `id`, only the expansions Device Sync allows).
//
// An expression is a MongoDB-style query whose keys are document fields, `$and`/`$or`/`$nor`,
// or expansions (`%%user.custom_data.isAdmin`: a condition on the user, decided here once per
// session). Operands may be expansions too. What resolve() returns is a filter on documents
// alone, or true/false when no document field is left.
//
// A missing value (an expansion that resolves to nothing: a user without custom data, a key it
// does not have) is missing, never a placeholder: a condition on a missing subject is decided
// as MongoDB decides it for an absent field (`$exists: true` is false), and a condition whose
// operand is missing cannot be decided, so it counts as false where it grants and as true where
// a `$nor` negates it. A missing value therefore never widens what a role grants. So does a
// value the field cannot be compared with (a number where the field holds strings): that
// condition alone cannot be decided, the rest of the expression still is.
import { Query } from 'mingo';
import type { Filter } from '../../protocol/filter.ts';
import { isObject } from '../../protocol/paths.ts';

/** What the expansions of one session stand for. */
export interface Expansions {
  user: { id: string; data: Record<string, unknown>; custom_data: Record<string, unknown> };
  /** `%%values.<name>`: the app's values. */
  values: Record<string, unknown>;
  /** `%%environment.tag` and `%%environment.values.<name>`. */
  environment: { tag: string; values: Record<string, unknown> };
}

/** An expression after load.ts: booleans, or an object as described above. */
export type Expression = boolean | Record<string, unknown>;

const MISSING = Symbol('missing');
type Resolved = boolean | Filter;

export function isExpansion(value: unknown): value is `%%${string}` {
  return typeof value === 'string' && value.startsWith('%%');
}

/** The value an expansion stands for, or MISSING. */
function lookup(expansion: string, values: Expansions): unknown {
  if (expansion === '%%true') return true;
  if (expansion === '%%false') return false;
  let current: unknown = values;
  for (const part of expansion.slice(2).split('.')) {
    if (current === null || typeof current !== 'object' || !Object.hasOwn(current, part)) return MISSING;
    current = (current as Record<string, unknown>)[part];
  }
  return asOperand(current);
}

/**
 * An expansion stands for a value, never for a condition: custom data holding `{"$ne": null}`
 * (users may be able to write their own) must not turn `{teamId: "%%…"}` into "any team".
 * Objects count as missing; a list keeps its scalar elements (for `$in`).
 */
function asOperand(value: unknown): unknown {
  const scalar = (v: unknown) => v === null || v instanceof Date || typeof v !== 'object';
  if (value === undefined) return MISSING;
  if (Array.isArray(value)) return value.filter(scalar);
  return scalar(value) ? value : MISSING;
}

/** The operand with its expansions replaced, or MISSING when any of them is missing. */
function substitute(operand: unknown, values: Expansions): unknown {
  if (isExpansion(operand)) return lookup(operand, values);
  if (Array.isArray(operand)) {
    const out = operand.map((v) => substitute(v, values));
    return out.includes(MISSING) ? MISSING : out;
  }
  if (isObject(operand) && !(operand instanceof Date)) {
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(operand)) {
      const value = substitute(v, values);
      if (value === MISSING) return MISSING;
      out[key] = value;
    }
    return out;
  }
  return operand;
}

/**
 * The expression as a filter on documents for this session. `comparable`: whether a condition on
 * one field, its expansions replaced, is one the field's values can be compared with.
 * `negated`: inside an odd number of `$nor`s, where an undecidable condition must count as true
 * so that the whole counts as false.
 */
export function resolve(expression: Expression, values: Expansions, comparable: (condition: Filter) => boolean = () => true, negated = false): Resolved {
  if (typeof expression === 'boolean') return expression;
  const parts: Resolved[] = [];
  for (const [key, condition] of Object.entries(expression)) {
    if (key === '$and' || key === '$or' || key === '$nor') {
      const inner = (condition as Expression[]).map((c) => resolve(c, values, comparable, key === '$nor' ? !negated : negated));
      parts.push(key === '$and' ? all(inner) : key === '$or' ? any(inner) : not(any(inner)));
      continue;
    }
    const operand = substitute(condition, values);
    if (operand === MISSING || (!isExpansion(key) && !comparable({ [key]: operand }))) {
      parts.push(negated);
      continue;
    }
    if (isExpansion(key)) {
      // A condition on the user, decided now: as MongoDB decides `{v: condition}` for a
      // document whose `v` is the value, or has no `v` when the value is missing.
      const subject = lookup(key, values);
      parts.push(new Query({ v: operand }).test(subject === MISSING ? {} : { v: subject }));
      continue;
    }
    parts.push({ [key]: operand });
  }
  return all(parts);
}

function all(parts: Resolved[]): Resolved {
  if (parts.includes(false)) return false;
  const filters = parts.filter((p): p is Filter => p !== true);
  if (filters.length === 0) return true;
  if (filters.length === 1) return filters[0]!;
  return { $and: filters };
}

function any(parts: Resolved[]): Resolved {
  if (parts.includes(true)) return true;
  const filters = parts.filter((p): p is Filter => p !== false);
  if (filters.length === 0) return false;
  if (filters.length === 1) return filters[0]!;
  return { $or: filters };
}

function not(part: Resolved): Resolved {
  return typeof part === 'boolean' ? !part : { $nor: [part] };
}
