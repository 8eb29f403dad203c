// Field paths inside documents: what a change is stamped at (protocol/hlc.ts) and merged by
// (gateway/sync/merge.ts). Top-level fields and, dotted, the fields of embedded objects; lists
// and scalars are leaves. Metadata (`id`, `_…`, and the keys in `skip`) has no path.

type Doc = Record<string, unknown>;

export function leafPaths(doc: Doc, skip: readonly string[] = [], prefix = ''): string[] {
  return Object.entries(doc).flatMap(([key, value]) => {
    if (!prefix && (key.startsWith('_') || key === 'id' || skip.includes(key))) return [];
    const path = prefix ? `${prefix}.${key}` : key;
    return isPlainObject(value) ? leafPaths(value, [], path) : [path];
  });
}

export function getPath(doc: Doc, path: string): unknown {
  return path.split('.').reduce<unknown>((v, k) => (isPlainObject(v) ? v[k] : undefined), doc);
}

export function setPath(doc: Doc, path: string, value: unknown): void {
  const keys = path.split('.');
  let target = doc;
  for (const key of keys.slice(0, -1)) {
    if (!isPlainObject(target[key])) target[key] = {};
    target = target[key] as Doc;
  }
  const last = keys[keys.length - 1]!;
  if (value === undefined) delete target[last];
  else target[last] = value;
}

function isPlainObject(v: unknown): v is Doc {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
