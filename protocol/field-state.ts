// Per-field merge state (PROTOCOL.md section 5a), shared by the client SDK, which records its
// local changes with it, and the gateway, which merges pushed changes and records unstamped ones.
//
// A document's `_stamps` holds, per field path, either a hybrid-logical-clock stamp (last writer
// wins) or, for fields marked @counter or @addWinsSet, a state the value is derived from. States
// merge by taking the larger entry everywhere (a join), so merging is order-free and a retried
// push changes nothing.
//  - Counter: per device, [sum of its increments, sum of its decrements]; value = Σinc − Σdec.
//  - Add-wins set: per element and per device, the device's latest add stamp (`add`) and the
//    latest add of that device that a removal saw (`remove`). An element is in the set while one
//    device's add is later than what removals saw of it, so a removal removes only the additions
//    it saw, and concurrent additions survive it.
//
// Every key in a state comes from users (device ids, JSON-encoded elements, field paths): they are
// checked on the way in (stampsProblem, against the collection's schema and the limits below), and
// the functions here read own properties only and never write `__proto__`, `constructor` or
// `prototype` (protocol/paths.ts).
import { formatStamp, isNode, laterStamp, parseStamp, type Stamp } from './hlc.ts';
import { getPath, isObject, isUnsafeKey, leafPaths } from './paths.ts';
import { PRIMARY_KEY, type CollectionModel, type FieldModel, type FieldType } from './model.ts';

/** Most paths a pushed `_stamps` may hold. */
export const MAX_STAMP_PATHS = 1_000;
/** Most devices a counter's state may hold. */
export const MAX_COUNTER_ENTRIES = 1_000;
/** Most elements (added or removed) a set's state may hold. */
export const MAX_SET_ELEMENTS = 1_000;
/** Most stamps a set's state may hold, `add` and `remove` together (elements times devices). */
export const MAX_SET_STAMPS = 10_000;

export type CounterState = Record<string, [inc: number, dec: number]>;
export interface SetState {
  add: Record<string, Record<string, Stamp>>;
  remove: Record<string, Record<string, Stamp>>;
}
export type FieldState = Stamp | CounterState | SetState;
export type Stamps = Record<string, FieldState>;

/**
 * Where, in mergedFields(), the paths of Mixed and Dictionary fields are kept: their objects are
 * values (stamped and merged whole), not embedded documents. A symbol, so that walking the
 * fields by name never meets it.
 */
export const WHOLE_VALUES: unique symbol = Symbol('whole values');

/** The fields that do not merge by last writer wins, by name. */
export type MergedFields = Record<string, 'counter' | 'add-wins-set'> & { readonly [WHOLE_VALUES]?: ReadonlySet<string> };

/** Whose contribution a value without a state, or a change without stamps, counts as. */
export const SERVER_NODE = 'server';

type Doc = Record<string, unknown>;

export function mergedFields(collection: CollectionModel): MergedFields {
  const out: Record<string, 'counter' | 'add-wins-set'> = {};
  for (const f of collection.fields) if (f.merge !== 'last-writer-wins') out[f.name] = f.merge;
  const whole = wholeValuePaths(collection.fields);
  return whole.size > 0 ? Object.assign(out, { [WHOLE_VALUES]: whole }) : out;
}

/** The paths a change of `doc` is stamped at: its leaves, Mixed and Dictionary values whole. */
export function changePaths(fields: MergedFields, doc: Doc, skip: readonly string[] = []): string[] {
  return leafPaths(doc, skip, '', fields[WHOLE_VALUES]);
}

/** Paths of Mixed and Dictionary fields, at the top and in embedded objects (lists are leaves anyway). */
function wholeValuePaths(fields: readonly FieldModel[], prefix = '', out = new Set<string>()): Set<string> {
  for (const f of fields) {
    const path = prefix ? `${prefix}.${f.name}` : f.name;
    const type: FieldType = f.type;
    if (type.kind === 'scalar' && (type.name === 'Mixed' || type.name === 'Dictionary')) out.add(path);
    if (type.kind === 'object') wholeValuePaths(type.fields, path, out);
  }
  return out;
}

/** How the field at `path` merges: 'counter', 'add-wins-set', or undefined (last writer wins). */
export function kindOf(fields: MergedFields, path: string): MergedFields[string] | undefined {
  return own(fields, path);
}

/**
 * The stamps after a change from `before` to `after` made by one writer (`tick` is its clock): one
 * stamp on every last-writer-wins path that changed, the difference of a counter added to
 * `node`'s entry, set additions stamped (a stamp each, in list order, so the set keeps that order)
 * and removals recording the adds they saw. Null when nothing changed.
 */
export function recordChange(fields: MergedFields, before: Doc, after: Doc, stamps: Stamps, tick: () => Stamp, node: string, skip: readonly string[] = []): Stamps | null {
  const out: Stamps = { ...stamps };
  let changed = false;
  let changeStamp: Stamp | undefined;
  const stamp = () => (changeStamp ??= tick());
  const paths = new Set([...changePaths(fields, before, skip), ...changePaths(fields, after, skip)]);
  for (const path of paths) {
    const was = getPath(before, path);
    const now = getPath(after, path);
    if (sameJson(was, now)) continue;
    const kind = kindOf(fields, path);
    if (kind === 'counter') {
      const delta = numberOf(now) - numberOf(was);
      if (delta === 0) continue;
      const state = counterState(own(stamps, path), was);
      const [inc, dec] = own(state, node) ?? [0, 0];
      put(out, path, put({ ...state }, node, [inc + Math.max(delta, 0), dec + Math.max(-delta, 0)]));
      changed = true;
    } else if (kind === 'add-wins-set') {
      const state = setState(own(stamps, path), was);
      const held = new Set(liveElements(state));
      const wanted = new Set(elementKeys(now));
      const added = [...wanted].filter((k) => !held.has(k));
      const removed = [...held].filter((k) => !wanted.has(k));
      if (added.length === 0 && removed.length === 0) continue;
      const next: SetState = { add: { ...state.add }, remove: { ...state.remove } };
      for (const k of added) {
        const addStamp = tick();
        put(next.add, k, put({ ...own(next.add, k) }, nodeOf(addStamp), addStamp));
      }
      for (const k of removed) put(next.remove, k, joinStampMaps(own(next.remove, k), own(next.add, k)));
      put(out, path, next);
      changed = true;
    } else {
      put(out, path, stamp());
      changed = true;
    }
  }
  return changed ? out : null;
}

/**
 * The stamps after a change made outside the gateway (another service wrote to MongoDB), given
 * the top-level fields whose stored value changed: one new stamp on every path of a changed
 * last-writer-wins field (its paths now, and those stamped before, which it may have removed),
 * and a counter's or set's change from the value its state derives. Such a change wins over
 * every change stamped before it, as an unstamped write does (sync/reconcile.ts).
 */
export function recordOutsideChange(fields: MergedFields, changed: readonly string[], stamps: Stamps, now: Doc, tick: () => Stamp, node: string): Stamps {
  const out: Stamps = { ...stamps };
  let stamp: Stamp | undefined;
  for (const name of changed) {
    const kind = kindOf(fields, name);
    if (kind !== undefined) {
      const state = own(stamps, name);
      const before = state === undefined ? {} : withDerivedValues({ [name]: kind }, {}, { [name]: state });
      const next = recordChange({ [name]: kind }, before, { [name]: own(now, name) }, state === undefined ? {} : { [name]: state }, tick, node);
      if (next && own(next, name) !== undefined) put(out, name, own(next, name)!);
      continue;
    }
    stamp ??= tick();
    const value = own(now, name);
    const paths = new Set([...(value === undefined ? [] : changePaths(fields, { [name]: value })), ...Object.keys(stamps).filter((p) => p === name || p.startsWith(`${name}.`))]);
    if (paths.size === 0) paths.add(name);
    for (const path of paths) put(out, path, stamp);
  }
  return out;
}

/** The join of two versions' stamps; a counter or set without a state counts its value as the server's. */
export function joinStamps(fields: MergedFields, a: { doc: Doc; stamps: Stamps }, b: { doc: Doc; stamps: Stamps }): Stamps {
  const out: Stamps = { ...a.stamps };
  for (const [path, state] of Object.entries(b.stamps)) {
    if (kindOf(fields, path) === undefined) put(out, path, laterStamp(own(out, path) as Stamp | undefined, state as Stamp)!);
  }
  for (const [name, kind] of Object.entries(fields)) {
    if (own(a.stamps, name) === undefined && own(b.stamps, name) === undefined) continue;
    if (kind === 'counter') {
      const x = counterState(own(a.stamps, name), own(a.doc, name));
      const y = counterState(own(b.stamps, name), own(b.doc, name));
      const joined: CounterState = { ...x };
      for (const [node, [inc, dec]] of Object.entries(y)) {
        const [i, d] = own(joined, node) ?? [0, 0];
        put(joined, node, [Math.max(i, inc), Math.max(d, dec)]);
      }
      put(out, name, joined);
    } else {
      const x = setState(own(a.stamps, name), own(a.doc, name));
      const y = setState(own(b.stamps, name), own(b.doc, name));
      put(out, name, { add: joinElementMaps(x.add, y.add), remove: joinElementMaps(x.remove, y.remove) });
    }
  }
  return out;
}

/**
 * The stamps with the elements each add-wins set no longer holds (a removal saw every device's
 * add) dropped from its state. Safe only once no device that has not seen those removals can
 * push any more: tombstone retention (gateway/store/retention.ts) resets such devices first.
 * Null when no set held such an element.
 */
export function withoutRemovedElements(fields: MergedFields, stamps: Stamps): Stamps | null {
  let out: Stamps | null = null;
  for (const [name, kind] of Object.entries(fields)) {
    const state = own(stamps, name) as SetState | undefined;
    if (kind !== 'add-wins-set' || state === undefined) continue;
    const live = new Set(liveElements(state));
    if ([...Object.keys(state.add), ...Object.keys(state.remove)].every((k) => live.has(k))) continue;
    const kept = (entries: SetState['add']) => Object.fromEntries(Object.entries(entries).filter(([k]) => live.has(k)));
    out ??= { ...stamps };
    put(out, name, { add: kept(state.add), remove: kept(state.remove) });
  }
  return out;
}

/** The document with each counter and set that has a state given the value derived from it. */
export function withDerivedValues(fields: MergedFields, doc: Doc, stamps: Stamps): Doc {
  const out = { ...doc };
  for (const [name, kind] of Object.entries(fields)) {
    const state = own(stamps, name);
    if (state === undefined) continue;
    put(out, name, kind === 'counter' ? counterValue(state as CounterState) : liveElements(state as SetState).map((k) => JSON.parse(k) as unknown));
  }
  return out;
}

/**
 * What is wrong with a pushed `_stamps`, or null. Each path must name a field of the collection's
 * type (dotted into embedded objects; lists and scalars are leaves; not `id`) and hold what that
 * field merges by: a clock stamp, or a counter's or set's state within the limits above.
 */
export function stampsProblem(collection: CollectionModel, stamps: unknown): string | null {
  if (typeof stamps !== 'object' || stamps === null || Array.isArray(stamps)) return 'must be an object of field paths';
  const entries = Object.entries(stamps);
  if (entries.length > MAX_STAMP_PATHS) return `holds more than ${MAX_STAMP_PATHS} paths`;
  for (const [path, state] of entries) {
    const field = fieldAt(collection, path);
    if (!field) return `"${path}" is not a field of ${collection.typeName}`;
    const problem =
      field.merge === 'counter'
        ? counterStateProblem(state)
        : field.merge === 'add-wins-set'
          ? setStateProblem(state)
          : typeof state === 'string' && parseStamp(state) !== null
            ? null
            : 'must hold a clock stamp';
    if (problem) return `"${path}" ${problem}`;
  }
  return null;
}

/** Every clock stamp in `stamps`; in sets, only those of `setNode` when given (a clock moves past them). */
export function allStamps(stamps: Stamps, setNode?: string): Stamp[] {
  return Object.values(stamps).flatMap((state) => {
    if (typeof state === 'string') return [state];
    if (isSetShaped(state)) {
      const all = [...Object.values(state.add), ...Object.values(state.remove)].flatMap((m) => (isObject(m) ? Object.values(m) : []));
      return all.filter((s): s is Stamp => typeof s === 'string' && (setNode === undefined || parseStamp(s)?.node === setNode));
    }
    return [];
  });
}

/** The field a stamp path names, or null: own fields of the type, dotted only into embedded objects. */
function fieldAt(collection: CollectionModel, path: string): FieldModel | null {
  let fields: readonly FieldModel[] = collection.fields;
  let field: FieldModel | null = null;
  for (const part of path.split('.')) {
    if (field) {
      if (field.type.kind !== 'object') return null; // scalars, enums and lists are leaves
      fields = field.type.fields;
    }
    if (isUnsafeKey(part)) return null;
    field = fields.find((f) => f.name === part) ?? null;
    if (!field) return null;
  }
  if (field?.name === PRIMARY_KEY && !path.includes('.')) return null; // metadata has no path
  return field;
}

function counterState(state: FieldState | undefined, value: unknown): CounterState {
  if (state !== undefined) return state as CounterState;
  const v = numberOf(value);
  return v === 0 ? {} : { [SERVER_NODE]: [Math.max(v, 0), Math.max(-v, 0)] };
}

function counterValue(state: CounterState): number {
  return Object.keys(state)
    .sort()
    .reduce((sum, node) => sum + state[node]![0] - state[node]![1], 0);
}

function setState(state: FieldState | undefined, value: unknown): SetState {
  if (state !== undefined) return state as SetState;
  // A value without a state: its elements added by the server, in the order they are listed.
  const add: SetState['add'] = {};
  elementKeys(value).forEach((k, i) => put(add, k, { [SERVER_NODE]: formatStamp(0, i, SERVER_NODE) }));
  return { add, remove: {} };
}

/** Elements (JSON-encoded) in the set, in the order of their earliest live addition. */
function liveElements(state: SetState): string[] {
  const live: Array<[string, Stamp]> = [];
  for (const [k, adds] of Object.entries(state.add)) {
    const seen = own(state.remove, k) ?? {};
    const first = Object.entries(adds)
      .filter(([node, stamp]) => {
        const saw = own(seen, node);
        return saw === undefined || stamp > saw;
      })
      .map(([, stamp]) => stamp)
      .sort()[0];
    if (first !== undefined) live.push([k, first]);
  }
  return live.sort(([ka, a], [kb, b]) => (a < b ? -1 : a > b ? 1 : ka < kb ? -1 : 1)).map(([k]) => k);
}

function elementKeys(value: unknown): string[] {
  return Array.isArray(value) ? [...new Set(value.map((v) => JSON.stringify(v)))] : [];
}

function numberOf(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : 0;
}

function joinStampMaps(a: Record<string, Stamp> | undefined, b: Record<string, Stamp> | undefined): Record<string, Stamp> {
  const out = { ...a };
  for (const [node, stamp] of Object.entries(b ?? {})) put(out, node, laterStamp(own(out, node), stamp)!);
  return out;
}

function joinElementMaps(a: SetState['add'], b: SetState['add']): SetState['add'] {
  const out = { ...a };
  for (const [k, stamps] of Object.entries(b)) put(out, k, joinStampMaps(own(out, k), stamps));
  return out;
}

/** The node of a stamp our own clock issued (a malformed one is a bug, not input). */
function nodeOf(stamp: Stamp): string {
  const parsed = parseStamp(stamp);
  if (!parsed) throw new Error(`the clock issued a malformed stamp "${stamp}"`);
  return parsed.node;
}

/** `o[key]` if it is `o`'s own: an inherited `constructor` or `__proto__` is not a state. */
/**
 * Whether two values have the same JSON text (`undefined` as null), without writing it out when
 * the answer is plain: the same value, or a string or boolean against anything else.
 */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  const ta = typeof a;
  const tb = typeof b;
  // (Two different strings, or a string and anything else, never have the same text; nor do booleans.)
  if (ta === 'string' || ta === 'boolean' || tb === 'string' || tb === 'boolean') return false;
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

function own<T>(o: Record<string, T> | undefined, key: string): T | undefined {
  return o !== undefined && Object.hasOwn(o, key) ? o[key] : undefined;
}

/** Sets `o[key]`, but never an unsafe key (checked inputs hold none: this is the last line). */
function put<O extends object>(o: O, key: string, value: O[keyof O]): O {
  if (!isUnsafeKey(key)) (o as Record<string, unknown>)[key] = value;
  return o;
}

function isSetShaped(state: unknown): state is SetState {
  return isObject(state) && isObject(state.add) && isObject(state.remove);
}

function counterStateProblem(state: unknown): string | null {
  if (!isObject(state)) return 'must hold a counter state';
  const entries = Object.entries(state);
  if (entries.length > MAX_COUNTER_ENTRIES) return `holds more than ${MAX_COUNTER_ENTRIES} devices`;
  for (const [node, entry] of entries) {
    if (!isNode(node)) return `names a device ${JSON.stringify(node)} that is not a device id`;
    if (!Array.isArray(entry) || entry.length !== 2 || !entry.every((n) => typeof n === 'number' && Number.isFinite(n) && n >= 0)) {
      return 'must hold a counter state';
    }
  }
  return null;
}

function setStateProblem(state: unknown): string | null {
  if (!isObject(state) || Object.keys(state).sort().join() !== 'add,remove' || !isObject(state.add) || !isObject(state.remove)) return 'must hold a set state';
  const maps = [Object.entries(state.add), Object.entries(state.remove)];
  const elements = new Set(maps.flatMap((m) => m.map(([k]) => k)));
  if (elements.size > MAX_SET_ELEMENTS) return `holds more than ${MAX_SET_ELEMENTS} elements`;
  let count = 0;
  for (const [k, stamps] of maps.flat()) {
    if (!isElementKey(k)) return `names an element ${JSON.stringify(k)} that is not a JSON-encoded ID, String, Int, Float, Boolean or enum value`;
    if (!isObject(stamps)) return 'must hold a set state';
    for (const [node, s] of Object.entries(stamps)) {
      if (++count > MAX_SET_STAMPS) return `holds more than ${MAX_SET_STAMPS} stamps`;
      if (!isNode(node)) return `names a device ${JSON.stringify(node)} that is not a device id`;
      if (typeof s !== 'string' || parseStamp(s) === null) return 'must hold a set state';
    }
  }
  return null;
}

/** A JSON-encoded scalar, written as JSON.stringify writes it (so one element has one key). */
function isElementKey(k: string): boolean {
  if (isUnsafeKey(k)) return false;
  try {
    const v: unknown = JSON.parse(k);
    const scalar = typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v));
    return scalar && JSON.stringify(v) === k;
  } catch {
    return false;
  }
}
