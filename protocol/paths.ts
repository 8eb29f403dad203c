// Field paths inside documents: what a change is stamped at (protocol/hlc.ts) and merged by
// (protocol/merge.ts). Top-level fields and, dotted, the fields of embedded objects; lists
// and scalars are leaves. Metadata (`id`, `_…`, and the keys in `skip`) has no path.
//
// Paths and keys come from users (pushed documents and stamps), so nothing here walks into,
// reads or creates `__proto__`, `constructor` or `prototype`, and only own properties count:
// `a.__proto__.toString` must never reach Object.prototype.

type Doc = Record<string, unknown>;

/** Keys no user-supplied key or path may name: through them, a write reaches shared prototypes. */
export const UNSAFE_KEYS: readonly string[] = ['__proto__', 'constructor', 'prototype'];

export function isUnsafeKey(key: string): boolean {
  return UNSAFE_KEYS.includes(key);
}

/** The first unsafe key anywhere in a JSON value (objects and arrays, at any depth), as a dotted path; or null. */
export function unsafeKeyPath(value: unknown): string | null {
  // Iterative: a deeply nested document must not overflow the stack.
  const pending: Array<[unknown, string]> = [[value, '']];
  while (pending.length > 0) {
    const [v, at] = pending.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    for (const [key, inner] of Object.entries(v)) {
      const path = at ? `${at}.${key}` : key;
      if (isUnsafeKey(key)) return path;
      pending.push([inner, path]);
    }
  }
  return null;
}

/**
 * `wholeValues`: paths of fields whose objects are values, not embedded documents (Mixed and
 * Dictionary fields): leaves too, however they nest.
 */
export function leafPaths(doc: Doc, skip: readonly string[] = [], prefix = '', wholeValues?: ReadonlySet<string>, out: string[] = []): string[] {
  // (A loop into one array: every pushed row's stamps walk this.)
  for (const key of Object.keys(doc)) {
    if (isUnsafeKey(key)) continue;
    if (!prefix && (key.startsWith('_') || key === 'id' || skip.includes(key))) continue;
    const path = prefix ? `${prefix}.${key}` : key;
    const value = doc[key];
    if (isObject(value) && !wholeValues?.has(path)) leafPaths(value, [], path, wholeValues, out);
    else out.push(path);
  }
  return out;
}

export function getPath(doc: Doc, path: string): unknown {
  // A top-level path (most are) needs no split.
  if (!path.includes('.')) return isUnsafeKey(path) || !Object.hasOwn(doc, path) ? undefined : doc[path];
  let value: unknown = doc;
  for (const key of path.split('.')) {
    if (!isObject(value) || isUnsafeKey(key) || !Object.hasOwn(value, key)) return undefined;
    value = value[key];
  }
  return value;
}

/** Sets (or, with `undefined`, deletes) the value at `path`; a path through an unsafe key changes nothing. */
export function setPath(doc: Doc, path: string, value: unknown): void {
  const keys = path.split('.');
  if (keys.some(isUnsafeKey)) return;
  let target = doc;
  for (const key of keys.slice(0, -1)) {
    if (!Object.hasOwn(target, key) || !isObject(target[key])) target[key] = {};
    target = target[key] as Doc;
  }
  const last = keys[keys.length - 1]!;
  if (value === undefined) delete target[last];
  else target[last] = value;
}

/** A JSON object (not an array, not null). */
export function isObject(v: unknown): v is Doc {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
