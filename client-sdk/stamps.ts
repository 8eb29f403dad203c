// Stamping local changes for conflict resolution (PROTOCOL.md, "Stamps"): every insert and
// update gets a hybrid-logical-clock stamp on each field path it changes, kept in the document's
// `syncStamps` (RxDB reserves names starting with "_"; on the wire it is `_stamps`). The app
// never touches it. The clock is per device, its id stored in the local database.
import { randomBytes } from 'node:crypto';
import type { RxCollection, RxDatabase } from 'rxdb';
import { HybridLogicalClock, type Stamp } from '../protocol/hlc.ts';
import { STAMPS_FIELD } from '../protocol/model.ts';
import { getPath, leafPaths } from '../protocol/paths.ts';
import type { SyncDocument } from '../protocol/messages.ts';
import type { LocalDocument } from './database.ts';

/** Where a local document keeps its stamps. */
export const LOCAL_STAMPS_FIELD = 'syncStamps';
const DEVICE_DOCUMENT = 'tributary-device';

type Stamps = Record<string, Stamp>;

export async function deviceClock(database: RxDatabase, now?: () => number): Promise<HybridLogicalClock> {
  let device = await database.getLocal<{ id: string }>(DEVICE_DOCUMENT);
  if (!device) device = await database.upsertLocal(DEVICE_DOCUMENT, { id: randomBytes(6).toString('hex') });
  return new HybridLogicalClock(device.toJSON().data.id, now);
}

/** Stamps what each local insert and update changes. Writes that come from the server run no hooks. */
export function stampChanges(collection: RxCollection<LocalDocument>, clock: HybridLogicalClock): void {
  collection.preInsert((data: LocalDocument) => {
    const stamp = clock.tick();
    data[LOCAL_STAMPS_FIELD] = Object.fromEntries(leafPaths(data, [LOCAL_STAMPS_FIELD]).map((path) => [path, stamp]));
  }, false);
  // RxDB passes the previous state as a document, or (incremental writes) as plain data.
  collection.preSave((data: LocalDocument, previous: Record<string, unknown> & { toJSON?: () => Record<string, unknown> }) => {
    const before = typeof previous.toJSON === 'function' ? previous.toJSON() : previous;
    const paths = new Set([...leafPaths(data, [LOCAL_STAMPS_FIELD]), ...leafPaths(before, [LOCAL_STAMPS_FIELD])]);
    const changed = [...paths].filter((path) => JSON.stringify(getPath(data, path)) !== JSON.stringify(getPath(before, path)));
    if (changed.length === 0) return;
    const stamp = clock.tick();
    data[LOCAL_STAMPS_FIELD] = { ...((before[LOCAL_STAMPS_FIELD] as Stamps) ?? {}), ...Object.fromEntries(changed.map((path) => [path, stamp])) };
  }, false);
}

/** A local document as the gateway expects it: stamps under `_stamps`. */
export function toWire(doc: Record<string, unknown> | null | undefined): SyncDocument | null {
  if (!doc) return null;
  const { [LOCAL_STAMPS_FIELD]: stamps, ...rest } = doc;
  return (stamps ? { ...rest, [STAMPS_FIELD]: stamps } : rest) as SyncDocument;
}

/** A document from the gateway as the local database keeps it; the clock moves past its stamps. */
export function fromWire(doc: SyncDocument, clock: HybridLogicalClock): LocalDocument {
  const { [STAMPS_FIELD]: stamps, ...rest } = doc;
  if (!stamps) return rest as LocalDocument;
  for (const stamp of Object.values(stamps as Stamps)) clock.observe(stamp);
  return { ...rest, [LOCAL_STAMPS_FIELD]: stamps } as LocalDocument;
}
