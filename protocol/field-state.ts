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
import { formatStamp, laterStamp, parseStamp, type Stamp } from './hlc.ts';
import { getPath, leafPaths } from './paths.ts';
import type { CollectionModel } from './model.ts';

export type CounterState = Record<string, [inc: number, dec: number]>;
export interface SetState {
  add: Record<string, Record<string, Stamp>>;
  remove: Record<string, Record<string, Stamp>>;
}
export type FieldState = Stamp | CounterState | SetState;
export type Stamps = Record<string, FieldState>;

/** The fields that do not merge by last writer wins, by name. */
export type MergedFields = Record<string, 'counter' | 'add-wins-set'>;

/** Whose contribution a value without a state, or a change without stamps, counts as. */
export const SERVER_NODE = 'server';

type Doc = Record<string, unknown>;

export function mergedFields(collection: CollectionModel): MergedFields {
  const out: MergedFields = {};
  for (const f of collection.fields) if (f.merge !== 'last-writer-wins') out[f.name] = f.merge;
  return out;
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
  const paths = new Set([...leafPaths(before, skip), ...leafPaths(after, skip)]);
  for (const path of paths) {
    const was = getPath(before, path);
    const now = getPath(after, path);
    if (JSON.stringify(was ?? null) === JSON.stringify(now ?? null)) continue;
    const kind = fields[path];
    if (kind === 'counter') {
      const delta = numberOf(now) - numberOf(was);
      if (delta === 0) continue;
      const state = counterState(stamps[path], was);
      const [inc, dec] = state[node] ?? [0, 0];
      out[path] = { ...state, [node]: [inc + Math.max(delta, 0), dec + Math.max(-delta, 0)] };
      changed = true;
    } else if (kind === 'add-wins-set') {
      const state = setState(stamps[path], was);
      const held = new Set(liveElements(state));
      const wanted = new Set(elementKeys(now));
      const added = [...wanted].filter((k) => !held.has(k));
      const removed = [...held].filter((k) => !wanted.has(k));
      if (added.length === 0 && removed.length === 0) continue;
      const next: SetState = { add: { ...state.add }, remove: { ...state.remove } };
      for (const k of added) {
        const addStamp = tick();
        next.add[k] = { ...next.add[k], [parseStamp(addStamp)!.node]: addStamp };
      }
      for (const k of removed) next.remove[k] = joinStampMaps(next.remove[k], next.add[k]);
      out[path] = next;
      changed = true;
    } else {
      out[path] = stamp();
      changed = true;
    }
  }
  return changed ? out : null;
}

/** The join of two versions' stamps; a counter or set without a state counts its value as the server's. */
export function joinStamps(fields: MergedFields, a: { doc: Doc; stamps: Stamps }, b: { doc: Doc; stamps: Stamps }): Stamps {
  const out: Stamps = { ...a.stamps };
  for (const [path, state] of Object.entries(b.stamps)) {
    if (fields[path] === undefined) out[path] = laterStamp(out[path] as Stamp | undefined, state as Stamp)!;
  }
  for (const [name, kind] of Object.entries(fields)) {
    if (a.stamps[name] === undefined && b.stamps[name] === undefined) continue;
    if (kind === 'counter') {
      const x = counterState(a.stamps[name], a.doc[name]);
      const y = counterState(b.stamps[name], b.doc[name]);
      const joined: CounterState = { ...x };
      for (const [node, [inc, dec]] of Object.entries(y)) {
        const [i, d] = joined[node] ?? [0, 0];
        joined[node] = [Math.max(i, inc), Math.max(d, dec)];
      }
      out[name] = joined;
    } else {
      const x = setState(a.stamps[name], a.doc[name]);
      const y = setState(b.stamps[name], b.doc[name]);
      out[name] = { add: joinElementMaps(x.add, y.add), remove: joinElementMaps(x.remove, y.remove) };
    }
  }
  return out;
}

/** The document with each counter and set that has a state given the value derived from it. */
export function withDerivedValues(fields: MergedFields, doc: Doc, stamps: Stamps): Doc {
  const out = { ...doc };
  for (const [name, kind] of Object.entries(fields)) {
    const state = stamps[name];
    if (state === undefined) continue;
    out[name] = kind === 'counter' ? counterValue(state as CounterState) : liveElements(state as SetState).map((k) => JSON.parse(k) as unknown);
  }
  return out;
}

/** What is wrong with a pushed `_stamps`, or null. */
export function stampsProblem(fields: MergedFields, stamps: unknown): string | null {
  if (typeof stamps !== 'object' || stamps === null || Array.isArray(stamps)) return 'must be an object of field paths';
  for (const [path, state] of Object.entries(stamps)) {
    const kind = fields[path];
    const ok = kind === 'counter' ? isCounterState(state) : kind === 'add-wins-set' ? isSetState(state) : typeof state === 'string' && parseStamp(state) !== null;
    if (!ok) return `"${path}" must hold ${kind === 'counter' ? 'a counter state' : kind === 'add-wins-set' ? 'a set state' : 'a clock stamp'}`;
  }
  return null;
}

/** Every clock stamp in `stamps` (a client's clock moves past them). */
export function allStamps(stamps: Stamps): Stamp[] {
  return Object.values(stamps).flatMap((state) => {
    if (typeof state === 'string') return [state];
    if (isSetState(state)) return [...Object.values(state.add), ...Object.values(state.remove)].flatMap((m) => Object.values(m));
    return [];
  });
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
  elementKeys(value).forEach((k, i) => (add[k] = { [SERVER_NODE]: formatStamp(0, i, SERVER_NODE) }));
  return { add, remove: {} };
}

/** Elements (JSON-encoded) in the set, in the order of their earliest live addition. */
function liveElements(state: SetState): string[] {
  const live: Array<[string, Stamp]> = [];
  for (const [k, adds] of Object.entries(state.add)) {
    const seen = state.remove[k] ?? {};
    const first = Object.entries(adds)
      .filter(([node, stamp]) => seen[node] === undefined || stamp > seen[node]!)
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
  for (const [node, stamp] of Object.entries(b ?? {})) out[node] = laterStamp(out[node], stamp)!;
  return out;
}

function joinElementMaps(a: SetState['add'], b: SetState['add']): SetState['add'] {
  const out = { ...a };
  for (const [k, stamps] of Object.entries(b)) out[k] = joinStampMaps(out[k], stamps);
  return out;
}

const NODE = /^[A-Za-z0-9_-]{1,64}$/;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isCounterState(state: unknown): state is CounterState {
  return (
    isPlainObject(state) &&
    Object.entries(state).every(
      ([node, entry]) => NODE.test(node) && Array.isArray(entry) && entry.length === 2 && entry.every((n) => typeof n === 'number' && Number.isFinite(n) && n >= 0),
    )
  );
}

function isSetState(state: unknown): state is SetState {
  const isElementMap = (m: unknown) =>
    isPlainObject(m) &&
    Object.entries(m).every(
      ([k, stamps]) =>
        isElementKey(k) && isPlainObject(stamps) && Object.entries(stamps).every(([node, s]) => NODE.test(node) && typeof s === 'string' && parseStamp(s) !== null),
    );
  return isPlainObject(state) && Object.keys(state).sort().join() === 'add,remove' && isElementMap(state.add) && isElementMap(state.remove);
}

function isElementKey(k: string): boolean {
  try {
    const v: unknown = JSON.parse(k);
    return typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v));
  } catch {
    return false;
  }
}
