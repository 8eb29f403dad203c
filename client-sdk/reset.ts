// Client reset (Realm's names and semantics; PROTOCOL.md, "Client reset"): the gateway answers
// CLIENT_RESET when this device's checkpoint can no longer be continued. The device then drops
// its local state, downloads the server's again (subscriptions bootstrap again), and, depending
// on the mode, re-applies or reports the local writes the server had not acknowledged.
//
// "Not acknowledged" is RxDB's own notion: a document whose local state differs from the state
// the replication last knew the server to have (its assumed master state) is a local write not
// yet acknowledged. Those writes are kept, with their stamps, before anything is dropped, and
// (recoverUnsyncedChanges) written back onto the fresh server state with their original stamps:
// pushed, they merge like any write (PROTOCOL.md, section 5a), so a later write from another
// device still wins and a counter's increments count once.
import { createRevision, getAssumedMasterState, getChangedDocumentsSince, now, type RxCollection, type RxDatabase, type RxDocumentData } from 'rxdb';
import type { RxReplicationState } from 'rxdb/plugins/replication';
import type { Checkpoint } from '../protocol/messages.ts';
import type { MergedFields, Stamps } from '../protocol/field-state.ts';
// Pure, shared with the gateway: the same merge the server runs.
import { merge } from '../protocol/merge.ts';
import type { LocalDocument } from './database.ts';
import { LOCAL_STAMPS_FIELD, recordLocalWrites, writeKeepingStamps } from './stamps.ts';

export type ClientResetMode = 'recoverUnsyncedChanges' | 'discardUnsyncedChanges' | 'recoverOrDiscard' | 'manual';

/** Why the gateway asked for a reset (gateway/sync/client-reset.ts). */
export type ClientResetReason = 'database-replaced' | 'forced' | 'checkpoint-ahead' | 'history-trimmed';

/** A local write the server had not acknowledged when the reset began. */
export interface UnsyncedChange {
  collection: string;
  id: string;
  /** insert: the server never had it; update: the fields that differ; delete: deleted locally. */
  kind: 'insert' | 'update' | 'delete';
  /** For an update, the top-level fields changed locally. */
  fields: string[];
  /** The local document (deleted: its last state). */
  document: LocalDocument;
}

export interface ClientResetOptions {
  /** Default recoverUnsyncedChanges. */
  mode?: ClientResetMode;
  /** Before anything is dropped: the local state as it was, and the writes not acknowledged. */
  onBefore?: (before: ClientResetState) => void | Promise<void>;
  /**
   * Once the fresh state is on the device: what was recovered, what was discarded. (Writes the
   * app makes while the reset is under way are recovered in every mode.)
   */
  onAfter?: (result: ClientResetResult) => void | Promise<void>;
  /** manual: the app decides; call `client.resetNow(mode)` to go on. Syncing stops until then. */
  onManual?: (error: ClientResetRequired) => void;
}

export interface ClientResetState {
  /** Every local document (live), per collection. */
  documents: Record<string, LocalDocument[]>;
  unsynced: UnsyncedChange[];
}

export interface ClientResetResult {
  reason: ClientResetReason;
  mode: Exclude<ClientResetMode, 'manual' | 'recoverOrDiscard'>;
  before: ClientResetState;
  /** Every local document once the server's state was downloaded (and the recovered writes applied). */
  after: Record<string, LocalDocument[]>;
  recovered: UnsyncedChange[];
  discarded: UnsyncedChange[];
  /**
   * After a restore from a backup (checkpoint-ahead): documents the server had acknowledged and
   * then lost with the restore, written back from this device (whatever the mode).
   */
  restored: UnsyncedChange[];
}

export interface ClientResetRequired {
  kind: 'clientReset';
  reason: ClientResetReason;
  message: string;
  mode: ClientResetMode;
}

/** RxDB's bookkeeping on a document, not part of its state. */
const RXDB_FIELDS = new Set(['_meta', '_rev', '_attachments']);

/** Reads every local document, deleted ones included. */
async function allDocuments(collection: RxCollection<LocalDocument>): Promise<Array<RxDocumentData<LocalDocument>>> {
  const out: Array<RxDocumentData<LocalDocument>> = [];
  let checkpoint: unknown;
  for (;;) {
    const page = await getChangedDocumentsSince(collection.storageInstance, 1_000, checkpoint as never);
    out.push(...page.documents);
    if (page.documents.length < 1_000) return out;
    checkpoint = page.checkpoint;
  }
}

function plain(doc: Record<string, unknown>): LocalDocument {
  return Object.fromEntries(Object.entries(doc).filter(([k]) => !RXDB_FIELDS.has(k) && k !== '_deleted')) as LocalDocument;
}

/** A stable text of a value: keys sorted, so two equal states compare equal. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_, v) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1))) : v));
}

/** The local writes of one collection that its replication had not seen acknowledged. */
export async function unsyncedChanges(name: string, collection: RxCollection<LocalDocument>, state: RxReplicationState<LocalDocument, Checkpoint>): Promise<UnsyncedChange[]> {
  const documents = await allDocuments(collection);
  const internal = state.internalReplicationState;
  const masters = internal ? await getAssumedMasterState(internal, documents.map((d) => d.id)) : {};
  const changes: UnsyncedChange[] = [];
  for (const doc of documents) {
    const master = masters[doc.id]?.docData as Record<string, unknown> | undefined;
    const local = plain(doc);
    if (doc._deleted) {
      // Deleted here, and the server was last known to hold it (or never heard of it: created
      // and deleted here, which pushes a delete of the id). A delete the server sent (a
      // removal from the view included) has a deleted master state.
      if (!master || master._deleted !== true) changes.push({ collection: name, id: doc.id, kind: 'delete', fields: [], document: local });
      continue;
    }
    if (!master || master._deleted === true) {
      changes.push({ collection: name, id: doc.id, kind: 'insert', fields: Object.keys(local).filter((k) => k !== 'id' && k !== LOCAL_STAMPS_FIELD), document: local });
      continue;
    }
    const server = plain(master);
    const fields = [...new Set([...Object.keys(local), ...Object.keys(server)])].filter((k) => k !== 'id' && k !== LOCAL_STAMPS_FIELD && canonical(local[k]) !== canonical(server[k]));
    if (fields.length > 0) changes.push({ collection: name, id: doc.id, kind: 'update', fields, document: local });
  }
  return changes;
}

/** Every live local document, per collection. */
export async function liveDocuments(collections: Record<string, RxCollection<LocalDocument>>): Promise<Record<string, LocalDocument[]>> {
  const out: Record<string, LocalDocument[]> = {};
  for (const [name, collection] of Object.entries(collections)) out[name] = (await collection.find().exec()).map((d) => d.toMutableJSON() as LocalDocument);
  return out;
}

/**
 * Drops every local document of the collection without anything being pushed: the replication
 * is stopped and its state removed first, and the documents are deleted in the storage (no app
 * hook sees it) and purged (cleanup) before a new replication could see them. A document the
 * app writes meanwhile makes its delete conflict; it is read and deleted again (the app's write
 * is kept by recordWrites).
 */
export async function dropLocalDocuments(collection: RxCollection<LocalDocument>): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const live = (await allDocuments(collection)).filter((d) => !d._deleted);
    if (live.length > 0) {
      await collection.storageInstance.bulkWrite(
        live.map((previous) => ({
          previous,
          document: { ...previous, _deleted: true, _rev: createRevision(collection.database.token, previous), _meta: { ...previous._meta, lwt: now() } },
        })),
        'tributary-client-reset',
      );
    }
    // Deleted documents stay until cleaned up; those deleted this very millisecond need the next one.
    if ((await collection.storageInstance.cleanup(0)) && (await allDocuments(collection)).length === 0) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`could not drop the local documents of ${collection.name}`);
}

/**
 * Records what the app writes while a reset is under way (from before the unsynced writes are
 * read until the documents are dropped): those writes are kept, in every mode.
 */
export function recordWrites(collections: Record<string, RxCollection<LocalDocument>>): () => UnsyncedChange[] {
  const recorders = Object.entries(collections).map(([name, collection]) => ({ name, writes: recordLocalWrites(collection) }));
  return () =>
    recorders.flatMap(({ name, writes }) =>
      [...writes().entries()].map(([id, { document, deleted }]) => ({
        collection: name,
        id,
        kind: deleted ? 'delete' : 'update',
        fields: deleted ? [] : Object.keys(document).filter((k) => k !== 'id' && k !== LOCAL_STAMPS_FIELD),
        document,
      })),
    );
}

/**
 * The fresh server document with an unsynced change written back through the normal merge
 * (protocol/merge.ts): each field path by its later stamp, counters and sets joined. A field
 * another device wrote later keeps that write; nothing acknowledged is lost.
 */
export function recoveredDocument(change: UnsyncedChange, fresh: LocalDocument | null, fields: MergedFields): LocalDocument | null {
  if (change.kind === 'delete') return null;
  if (!fresh) return change.document;
  const version = (doc: LocalDocument) => {
    const { [LOCAL_STAMPS_FIELD]: stamps, ...rest } = doc;
    return { doc: { ...rest, _deleted: false }, stamps: (stamps as Stamps | undefined) ?? {} };
  };
  const merged = merge(version(fresh), version(change.document), { strategy: 'field-lww', fields });
  const { _deleted, ...doc } = merged.doc;
  return { ...doc, [LOCAL_STAMPS_FIELD]: merged.stamps } as unknown as LocalDocument;
}

/** Writes the unsynced changes back onto the fresh state (recoverUnsyncedChanges). */
export async function recover(collections: Record<string, RxCollection<LocalDocument>>, fieldsOf: (collection: string) => MergedFields, changes: UnsyncedChange[]): Promise<void> {
  for (const change of changes) {
    const collection = collections[change.collection]!;
    const fresh = await collection.findOne(change.id).exec();
    if (change.kind === 'delete') {
      // Not on the device after the download (outside its view, or gone): its last state is
      // written and deleted, so the delete of the id is pushed as it would have been.
      if (fresh) await fresh.remove();
      else {
        await writeKeepingStamps(collection, change.id, () => change.document);
        await (await collection.findOne(change.id).exec())?.remove();
      }
    } else await writeKeepingStamps(collection, change.id, (current) => recoveredDocument(change, current, fieldsOf(change.collection))!);
  }
}

/**
 * After a restore from a backup, the documents this device holds as the server acknowledged them
 * and the restored server lacks (or holds older): written back through the merge, so no
 * acknowledged write is lost with the restore. (Deletes are not: a local tombstone may be a
 * document that only left the device's view.)
 */
export async function restoreAcknowledged(collections: Record<string, RxCollection<LocalDocument>>, fieldsOf: (collection: string) => MergedFields, before: ClientResetState): Promise<UnsyncedChange[]> {
  const unsynced = new Set(before.unsynced.map((c) => `${c.collection}/${c.id}`));
  const restored: UnsyncedChange[] = [];
  for (const [name, documents] of Object.entries(before.documents)) {
    for (const document of documents) {
      if (unsynced.has(`${name}/${document.id}`)) continue;
      const fresh = (await collections[name]!.findOne(document.id).exec())?.toMutableJSON() as LocalDocument | undefined;
      const change: UnsyncedChange = { collection: name, id: document.id, kind: fresh ? 'update' : 'insert', fields: [], document };
      const merged = recoveredDocument(change, fresh ?? null, fieldsOf(name))!;
      if (fresh && canonical(merged) === canonical(fresh)) continue;
      change.fields = Object.keys(merged).filter((k) => k !== 'id' && k !== LOCAL_STAMPS_FIELD && canonical(merged[k]) !== canonical(fresh?.[k]));
      await writeKeepingStamps(collections[name]!, document.id, (current) => recoveredDocument(change, current, fieldsOf(name))!);
      restored.push(change);
    }
  }
  return restored;
}

/** A reset under way, kept in the local database until it is over (the next open finishes it). */
export interface PendingReset extends ClientResetState {
  required: ClientResetRequired;
  mode: Exclude<ClientResetMode, 'manual'>;
}

const PENDING_RESET = 'tributary-reset';
const GENERATION = 'tributary-replication-generation';

export async function savePendingReset(database: RxDatabase, pending: PendingReset): Promise<void> {
  await database.upsertLocal(PENDING_RESET, structuredClone(pending));
}

export async function readPendingReset(database: RxDatabase): Promise<PendingReset | null> {
  const doc = await database.getLocal<PendingReset>(PENDING_RESET);
  return doc ? (doc.toJSON().data as PendingReset) : null;
}

export async function clearPendingReset(database: RxDatabase): Promise<void> {
  await (await database.getLocal(PENDING_RESET))?.remove();
}

/** Which generation of replications this database syncs with (each reset starts a new one). */
export async function replicationGeneration(database: RxDatabase): Promise<number> {
  return ((await database.getLocal<{ n: number }>(GENERATION))?.toJSON().data.n as number | undefined) ?? 0;
}

export async function nextReplicationGeneration(database: RxDatabase): Promise<number> {
  const next = (await replicationGeneration(database)) + 1;
  await database.upsertLocal(GENERATION, { n: next });
  return next;
}
