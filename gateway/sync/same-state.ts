// Whether two states of a document are the same, as the sync protocol compares them: in stored
// form (so `...00Z` and `...00.000Z` are the same instant), with a missing field equal to null,
// and all tombstones of one document equal to each other.
import { isDeepStrictEqual } from 'node:util';

export function sameState(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  if (a._deleted === true && b._deleted === true) return true;
  if (Boolean(a._deleted) !== Boolean(b._deleted)) return false;
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const key of keys) {
    if (key === '_deleted') continue;
    if (!sameValue(a[key], b[key])) return false;
  }
  return true;
}

function sameValue(a: unknown, b: unknown): boolean {
  if ((a === null || a === undefined) && (b === null || b === undefined)) return true;
  if (a instanceof Date && b instanceof Date) return a.getTime() === b.getTime();
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((v, i) => sameValue(v, b[i]));
  if (isPlainObject(a) && isPlainObject(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const key of keys) if (!sameValue(a[key], b[key])) return false;
    return true;
  }
  return isDeepStrictEqual(a, b);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}
