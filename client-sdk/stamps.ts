// Stamping local changes for conflict resolution (PROTOCOL.md, "Stamps"): every insert and
// update gets a hybrid-logical-clock stamp on each field path it changes, kept in the document's
// `syncStamps` (RxDB reserves names starting with "_"; on the wire it is `_stamps`). The app
// never touches it. The clock is per device, its id stored in the local database; with several
// tabs on one database (multiInstance), per tab: each stamps its own writes, concurrently.
import type { RxCollection, RxDatabase } from 'rxdb';
import { HybridLogicalClock } from '../protocol/hlc.ts';
import { allStamps, joinStamps, recordChange, withDerivedValues, type MergedFields, type Stamps } from '../protocol/field-state.ts';
import { STAMPS_FIELD } from '../protocol/model.ts';
import type { SyncDocument } from '../protocol/messages.ts';
import type { LocalDocument } from './database.ts';
import { canonicalJson } from './queries.ts';

/** Where a local document keeps its stamps. */
export const LOCAL_STAMPS_FIELD = 'syncStamps';
const DEVICE_DOCUMENT = 'tributary-device';

/** `bytes` random bytes as hex, from Web Crypto (browsers, and Node 20's global `crypto`). */
export function randomHex(bytes: number): string {
  return Array.from(globalThis.crypto.getRandomValues(new Uint8Array(bytes)), (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * The device's clock. `tab` (multiInstance): the node id also names the tab, so two tabs writing
 * the same field in the same millisecond never make the same stamp.
 */
export async function deviceClock(database: RxDatabase, now?: () => number, tab?: string): Promise<HybridLogicalClock> {
  let device = await database.getLocal<{ id: string }>(DEVICE_DOCUMENT);
  if (!device) device = await database.upsertLocal(DEVICE_DOCUMENT, { id: randomHex(6) });
  const id = device.toJSON().data.id;
  return new HybridLogicalClock(tab === undefined ? id : `${id}-${tab}`, now);
}

/** Just what claimTab needs of the Web Locks API (navigator.locks). */
interface Locks {
  request(name: string, options: { ifAvailable: boolean }, callback: (lock: unknown) => Promise<void> | undefined): Promise<unknown>;
}

/**
 * A name for this tab among the open tabs of `database`: the lowest slot (`t0`, `t1`, ...) no
 * other open tab holds, held with a Web Lock until `release()`. Counter and set states keep one
 * entry per node id, so reusing slots keeps them as small as the most tabs ever open at once.
 * Without Web Locks (a page not served from a secure context) no name: the tabs share the device's
 * node id (a new name per page load would grow those states past their bound), and each write
 * still stamps after the stamps stored before it (stampChanges observes them).
 */
export async function claimTab(database: string): Promise<{ tab: string | undefined; release: () => void }> {
  const locks = (globalThis.navigator as { locks?: Locks } | undefined)?.locks;
  if (!locks) return { tab: undefined, release: () => {} };
  for (let slot = 0; ; slot++) {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const granted = await new Promise<boolean>((answer) => {
      locks.request(`tributary-tab:${database}:${slot}`, { ifAvailable: true }, (lock) => {
        answer(lock !== null);
        return lock === null ? undefined : held;
      }).catch(() => answer(false));
    });
    if (granted) return { tab: `t${slot}`, release };
  }
}

/**
 * Stamps what each local insert and update changes (counters and add-wins sets: their states
 * record the change, and the value is the one the state gives). Writes that come from the server
 * run no hooks.
 */
export function stampChanges(collection: RxCollection<LocalDocument>, clock: HybridLogicalClock, fields: MergedFields): void {
  const record = (data: LocalDocument, before: Record<string, unknown>) => {
    if (data[KEEP_STAMPS]) {
      delete data[KEEP_STAMPS];
      return;
    }
    RECORDING.get(collection)?.set(data.id, { document: data, deleted: false });
    // Another tab may have stored newer stamps of this clock's device (it pulled them, or wrote):
    // this change comes after them (a no-op where this clock saw them already).
    for (const stamp of allStamps((before[LOCAL_STAMPS_FIELD] as Stamps | undefined) ?? {}, clock.node)) clock.observe(stamp);
    const stamps = recordChange(fields, before, data, (before[LOCAL_STAMPS_FIELD] as Stamps | undefined) ?? {}, () => clock.tick(), clock.node, [LOCAL_STAMPS_FIELD]);
    if (!stamps) return;
    Object.assign(data, withDerivedValues(fields, data, stamps));
    data[LOCAL_STAMPS_FIELD] = stamps;
  };
  collection.preInsert((data: LocalDocument) => record(data, {}), false);
  collection.preRemove((data: LocalDocument) => void RECORDING.get(collection)?.set(data.id, { document: { ...data }, deleted: true }), false);
  // RxDB passes the previous state as a document, or (incremental writes) as plain data.
  collection.preSave((data: LocalDocument, previous: Record<string, unknown> & { toJSON?: () => Record<string, unknown> }) => {
    record(data, typeof previous.toJSON === 'function' ? previous.toJSON() : previous);
  }, false);
}

/** Collections whose local writes are being recorded (recordLocalWrites): the latest per id. */
const RECORDING = new WeakMap<RxCollection<LocalDocument>, Map<string, { document: LocalDocument; deleted: boolean }>>();

/**
 * Records the app's writes to the collection from now on (the document as written, stamps
 * included); the returned function stops and gives the latest write per document.
 */
export function recordLocalWrites(collection: RxCollection<LocalDocument>): () => Map<string, { document: LocalDocument; deleted: boolean }> {
  const writes = new Map<string, { document: LocalDocument; deleted: boolean }>();
  RECORDING.set(collection, writes);
  return () => {
    if (RECORDING.get(collection) === writes) RECORDING.delete(collection);
    return writes;
  };
}

/** Marks a document written with the stamps it carries (writeKeepingStamps); never stored. */
const KEEP_STAMPS = 'syncKeepStamps';

/**
 * Writes a document locally with the stamps it carries, not new ones: a change recovered after a
 * client reset keeps the time it was made (client-sdk/reset.ts). `next` makes the document from
 * the one stored (null: none), on the latest state, so a write the app makes meanwhile is not
 * overwritten but merged into.
 */
export async function writeKeepingStamps(collection: RxCollection<LocalDocument>, id: string, next: (current: LocalDocument | null) => LocalDocument): Promise<void> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const existing = await collection.findOne(id).exec();
    if (existing) {
      await existing.incrementalModify((current) => ({ ...next(current as LocalDocument), [KEEP_STAMPS]: true }) as LocalDocument);
      return;
    }
    try {
      await collection.insert({ ...next(null), [KEEP_STAMPS]: true } as LocalDocument);
      return;
    } catch {
      // Inserted meanwhile (by the app): merge into it.
    }
  }
  throw new Error(`could not write ${collection.name} ${id} back`);
}

/** A local document as the gateway expects it: stamps under `_stamps`. */
export function toWire(doc: Record<string, unknown> | null | undefined): SyncDocument | null {
  if (!doc) return null;
  const { [LOCAL_STAMPS_FIELD]: stamps, ...rest } = doc;
  return (stamps ? { ...rest, [STAMPS_FIELD]: stamps } : rest) as SyncDocument;
}

/**
 * A document from the gateway as the local database keeps it; the clock moves past its stamps
 * (no further than its bound ahead, protocol/hlc.ts). Other devices' set stamps are never compared
 * with this device's, so they do not move the clock: another user's broken clock cannot reach it.
 */
export function fromWire(doc: SyncDocument, clock: HybridLogicalClock): LocalDocument {
  const { [STAMPS_FIELD]: stamps, ...rest } = doc;
  if (!stamps) return rest as LocalDocument;
  for (const stamp of allStamps(stamps as Stamps, clock.node)) clock.observe(stamp);
  return { ...rest, [LOCAL_STAMPS_FIELD]: stamps } as LocalDocument;
}

/**
 * Whether this device has gone past `incoming`: its stamps hold nothing the local document's
 * lack, and are not the same. It is then older than a write of this device the gateway has
 * acknowledged since (a stream event that came while that write was on its way). RxDB would
 * write it over the acknowledged state, undoing that write until its own echo arrives, and a
 * write the app made in between would build on the old state. A state without stamps, or a
 * delete of a live document, is never passed.
 */
export function isPassedState(fields: MergedFields, incoming: SyncDocument, local: SyncDocument): boolean {
  const stamps = incoming[STAMPS_FIELD] as Stamps | undefined;
  if (!stamps || (incoming._deleted && !local._deleted)) return false;
  const theirs = { doc: incoming, stamps };
  const ours = { doc: local, stamps: (local[STAMPS_FIELD] as Stamps | undefined) ?? {} };
  const current = canonicalJson(joinStamps(fields, ours, ours));
  return canonicalJson(joinStamps(fields, ours, theirs)) === current && canonicalJson(joinStamps(fields, theirs, theirs)) !== current;
}
