// One synced collection in MongoDB: how documents are stored, and the reads the sync engine
// needs. Documents stay exactly as other services expect them: the type's fields at top level,
// `id` as `_id`, each value with its BSON type (protocol/bson-values.ts), and nothing of ours.
// The gateway's metadata for each document lives in a side collection, `_tributary_sync_<name>`,
// under the same `_id` (ARCHITECTURE.md, "Metadata beside the documents"): its update sequence,
// per-field stamps, the queryable states a removal is decided from, and a hash per field, which
// is how a write made by another service is noticed (sync/reconcile.ts). Deletes remove the
// document; the side collection keeps a tombstone, so clients that were offline still learn of
// the delete, and other services never see one.
//
// The engine works on the two joined (`StoredDocument`): reads join them here, in batches.
import { hash } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { Binary, BSON, MongoBulkWriteError, type AnyBulkWriteOperation, type Collection, type Db, type Filter, type FindCursor, type FindOptions } from 'mongodb';
import type { Stamps } from '../../protocol/field-state.ts';
import { DELETED_FIELD, PRIMARY_KEY, queryableFields, STAMPS_FIELD, type CollectionModel } from '../../protocol/model.ts';
import type { SyncDocument } from '../../protocol/messages.ts';
import { CursorCache, sizeOf, storedSize } from './cursor-cache.ts';
import { Sequencer, type CounterDocument } from './sequencer.ts';
import type { Semaphore, StoreLimits } from './store-limits.ts';
import type { SharedLocks } from './instances.ts';
import { duplicateKeyIndexes } from './write-errors.ts';

export interface SyncMetadata {
  /** Update sequence of the last write (see sequencer.ts). */
  seq: number;
  updatedAt: Date;
  /** A tombstone (or, with TRIBUTARY_INVALID_DOCUMENTS=skip, a document that fails the schema). */
  deleted: boolean;
  /** The queryable fields of this version (what a removal is decided from once it is gone). */
  state?: Record<string, unknown>;
  /**
   * The queryable fields of the version this one replaced (null for a new document): lets the
   * live stream tell a client that a document just left its view.
   */
  prev?: Record<string, unknown> | null;
  /**
   * Older distinct queryable states (oldest first, at most PAST_STATES): a pull tells a client
   * that a document left its view only if the user could read one of its recent states, so no
   * id of a document it never could read leaves the gateway (view.ts).
   */
  past?: Array<Record<string, unknown>>;
  /** Per field path, the stamp of its last change, or a counter's or set's state (protocol/merge.ts). */
  stamps?: Stamps;
  /** Per field of the type present in the document, a hash of its stored value (fieldHashes). */
  hashes?: Record<string, string>;
  /** Why the document fails schema.graphql, when it does (reported; sync/reconcile.ts). */
  invalid?: { field: string | null; message: string } | null;
}

/** A stored `_id`: a string, an ObjectId, a UUID (Binary) or an Int64 (protocol/bson-values.ts). */
export type StoredId = string | number | object;

/**
 * A document of the side collection: the metadata of the document with the same `_id`. Its
 * stamps are kept as JSON text: their keys are field paths with dots and set elements of any
 * spelling, which MongoDB key rules (and FerretDB's stricter ones) do not all allow.
 *
 * `version` is the document as this sequence number made it, as BSON (every value keeps its
 * type, and no key of another service's is parsed by the store): what pulls, live changes and
 * bootstraps send, read from the side collection alone (ARCHITECTURE.md, "Versions"). Absent on
 * tombstones.
 */
export type MetaDocument = { _id: StoredId } & Omit<SyncMetadata, 'stamps'> & { stamps?: string; version?: Binary };

/** The metadata as the side collection stores it, with the version of the document it describes (none for a tombstone). */
export function toMeta(id: StoredId, sync: SyncMetadata, document: PlainDocument | null): MetaDocument {
  const { stamps, ...rest } = sync;
  const meta: MetaDocument = { _id: id, ...rest, ...(stamps === undefined ? {} : { stamps: JSON.stringify(stamps) }) };
  if (document && !sync.deleted) {
    const { _id, ...fields } = document;
    meta.version = new Binary(BSON.serialize(fields));
  }
  return meta;
}

/** The metadata of a side-collection document. */
export function fromMeta(meta: MetaDocument): SyncMetadata {
  const { _id, stamps, version, ...rest } = meta;
  return { ...rest, ...(stamps === undefined ? {} : { stamps: JSON.parse(stamps) as Stamps }) };
}

/** The document a side-collection entry describes, as its sequence made it (values as stored, like `documents` reads them). */
export function versionOf(meta: MetaDocument): PlainDocument | undefined {
  if (!meta.version) return undefined;
  const doc = BSON.deserialize(meta.version.buffer, { promoteValues: false }) as PlainDocument;
  doc._id = meta._id; // (in place: a fresh object; a copy per pulled document is GC work)
  return doc;
}

/**
 * A filter on the documents' queryable fields, over the side collection: there each version's
 * queryable fields are in `state` (SyncMetadata.state). Keys of `$and`/`$or`/`$nor` recurse;
 * `_id` is the same in both.
 */
export function onQueryableState(filter: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(filter).map(([key, value]) => {
      if (key.startsWith('$')) return [key, Array.isArray(value) ? value.map((f) => onQueryableState(f as Record<string, unknown>)) : value];
      return [key === '_id' ? key : `state.${key}`, value];
    }),
  );
}

/** A document as the engine sees it: the stored fields (none for a tombstone) and `_sync`. */
export type StoredDocument = { _id: string; _sync: SyncMetadata } & Record<string, unknown>;

/** A document as MongoDB holds it. */
export type PlainDocument = { _id: StoredId } & Record<string, unknown>;

export const COUNTERS_COLLECTION = '_tributary_sequences';
export const META_COLLECTION_PREFIX = '_tributary_sync_';
export const PENDING_COLLECTION_PREFIX = '_tributary_pending_';
/** Pending records deleted in one command at most, and how long a cleared one may wait for its batch. */
const PENDING_CLEAR_BATCH = 1_000;
const PENDING_CLEAR_DELAY_MS = 100;

/**
 * A write the gateway has begun (`_tributary_pending_<name>`): the metadata it writes once the
 * document is written (without its version), and the sequence of the metadata it replaces
 * (`base`, null for none). Recorded before the document is written and removed once the metadata
 * is: a repair that finds the document as this record says, over that same metadata, completes
 * the write instead of taking it for another service's change (sync/reconcile.ts).
 */
export interface PendingWrite {
  _id: StoredId;
  base: number | null;
  meta: MetaDocument;
}

/** How many documents' last writes `CollectionStore.wrote` remembers. */
const RECENT_WRITES = 100_000;
const DELETED_DIGEST = 'deleted';

/** How many queryable states before the previous one a document remembers (`_sync.past`). */
export const PAST_STATES = 3;

export type InvalidDocumentPolicy = 'skip' | 'sync';

export interface CollectionStoreOptions {
  leaseTtlMs: number;
  /** What the store can take at once (store-limits.ts). */
  limits: StoreLimits;
  /** Shared by every collection of the gateway: update commands in flight. */
  updateCommands: Semaphore;
  /** Documents that fail schema.graphql: kept out of sync ('skip') or synced as they are. */
  invalidDocuments?: InvalidDocumentPolicy;
  /**
   * Locks shared with the other instances on the database (store-locks.ts): each document's
   * writes, and on a store whose updates are not atomic the sequence counter's. None: this
   * process is the only writer (a tool, or a test of one part).
   */
  locks?: SharedLocks;
}

/** A read of joined documents, in pages (cursor-cache.ts readPage). */
export interface DocumentCursor {
  next(): Promise<StoredDocument | null>;
  close(): Promise<void>;
  /**
   * Starts reading what next() will return, without waiting: a cursor kept between pages reads
   * its next batch while the page before is on the wire (cursor-cache.ts).
   */
  prefetch(): void;
  /** Whether next() would return null, known without asking the store (the store said it has no more). */
  drained(): boolean;
}

export class CollectionStore {
  readonly documents: Collection<PlainDocument>;
  readonly meta: Collection<MetaDocument>;
  /** Writes under way (PendingWrite): a handful at any time, so even a scan of it is cheap. */
  readonly pending: Collection<PendingWrite>;
  /** Pending records to delete (clearPending), by id and the sequence they record. */
  private clearing: Array<{ _id: StoredId; 'meta.seq': number }> = [];
  private clearTimer: NodeJS.Timeout | null = null;
  private clearingDone: Promise<void> = Promise.resolve();
  readonly sequencer: Sequencer;
  /** Cursors of multi-page reads (first syncs, bootstraps) between their pages. */
  readonly cursors: CursorCache;
  readonly invalidDocuments: InvalidDocumentPolicy;
  readonly locks: SharedLocks | null;
  private readonly fieldNames: Set<string>;
  private readonly limits: StoreLimits;
  private readonly updateCommands: Semaphore;
  /** What the gateway last wrote of recently written documents (wrote, isOwnWrite). */
  private readonly recentWrites = new Map<string, string>();

  constructor(
    readonly model: CollectionModel,
    db: Db,
    private readonly options: CollectionStoreOptions,
  ) {
    // Values as stored (an int32 stays an Int32, a double a Double): the codec (bson-values.ts)
    // keeps every BSON type through a read-modify-write.
    this.documents = db.collection<PlainDocument>(model.name, { promoteValues: false });
    this.meta = db.collection<MetaDocument>(META_COLLECTION_PREFIX + model.name);
    this.pending = db.collection<PendingWrite>(PENDING_COLLECTION_PREFIX + model.name);
    this.locks = options.locks ?? null;
    this.sequencer = new Sequencer(db.collection<CounterDocument>(COUNTERS_COLLECTION), model.name, {
      leaseTtlMs: options.leaseTtlMs,
      counterLock: options.limits.atomicUpdates ? null : this.locks,
    });
    this.fieldNames = new Set(model.fields.map((f) => f.name));
    this.limits = options.limits;
    this.updateCommands = options.updateCommands;
    this.invalidDocuments = options.invalidDocuments ?? 'skip';
    this.cursors = new CursorCache(undefined, this.limits.cachedCursorsPerCollection);
  }

  async init(): Promise<void> {
    await this.sequencer.init();
    await this.meta.createIndex({ seq: 1 }, { name: 'tributary_seq' });
    for (const field of queryableFields(this.model)) {
      if (field.name === PRIMARY_KEY) continue;
      // Plain queries read the documents; bootstraps read the versions (bootstrap.ts).
      await this.documents.createIndex({ [field.name]: 1 }, { name: `tributary_q_${field.name}` });
      await this.meta.createIndex({ [`state.${field.name}`]: 1 }, { name: `tributary_q_${field.name}` });
    }
  }

  /**
   * The queryable fields of a stored version, as `_sync.state` keeps them: a field the document
   * lacks stays absent, so `$exists` means the same on the side collection; one it holds as
   * `undefined` is null, as the driver stores it.
   */
  queryableSnapshot(stored: PlainDocument): Record<string, unknown> {
    return Object.fromEntries(
      queryableFields(this.model).flatMap((f) => (f.name === PRIMARY_KEY ? [['_id', stored._id]] : Object.hasOwn(stored, f.name) ? [[f.name, stored[f.name] ?? null]] : [])),
    );
  }

  /** The most updates that go under one sequence lease (store-limits.ts). */
  get writesPerLease(): number {
    return this.limits.writesPerLease;
  }

  /** How long a sequence lease may stay open before readers pass it. */
  get leaseTtlMs(): number {
    return this.options.leaseTtlMs;
  }

  /** `_sync.prev` and `_sync.past` of the version that replaces `stored` (null: an insert). */
  history(stored: StoredDocument | null): Pick<SyncMetadata, 'prev' | 'past'> {
    if (stored === null) return { prev: null, past: [] };
    const prev = stored._sync.state ?? this.queryableSnapshot(stored);
    const older = [...(stored._sync.past ?? []), ...(stored._sync.prev ? [stored._sync.prev] : [])];
    const distinct = older.filter((state, i) => !isDeepStrictEqual(state, prev) && older.findIndex((s) => isDeepStrictEqual(s, state)) === i);
    return { prev, past: distinct.slice(-PAST_STATES) };
  }

  /** The fields of a stored document that are not the type's (another service's): kept on every write. */
  outsideFields(stored: PlainDocument | null): Record<string, unknown> {
    if (stored === null) return {};
    return Object.fromEntries(Object.entries(stored).filter(([key]) => key !== '_id' && key !== '_sync' && !this.fieldNames.has(key)));
  }

  /**
   * Per field of the type present in `doc`, a hash of its value as stored. Computed the same way
   * from what the gateway writes and from what it reads back, whatever the driver promotes
   * (an int32 and a double of one value hash alike), so only a change of value differs.
   */
  fieldHashes(doc: PlainDocument): Record<string, string> {
    const hashes: Record<string, string> = {};
    for (const name of this.fieldNames) {
      if (name === PRIMARY_KEY || !Object.hasOwn(doc, name)) continue;
      // (crypto.hash: one call, the same digest as createHash without its object; pushes hash every field.)
      hashes[name] = hash('sha1', canonical(doc[name]), 'base64url').slice(0, 16);
    }
    return hashes;
  }

  /** One string for a document's field hashes, the same for equal hashes whatever their order. */
  static digest(hashes: Record<string, string>): string {
    const entries = Object.entries(hashes).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return hash('sha1', JSON.stringify(entries), 'base64url').slice(0, 16);
  }

  /**
   * Records what the gateway just wrote of a document (its metadata's hashes, or a delete), so
   * that the outside-change source's report of that same write is known for ours without
   * reading the store (isOwnWrite). Bounded: the oldest entries go first.
   */
  wrote(id: StoredId, meta: Pick<SyncMetadata, 'deleted' | 'hashes'>): void {
    const key = idKey(id);
    this.recentWrites.delete(key);
    this.recentWrites.set(key, meta.deleted ? DELETED_DIGEST : CollectionStore.digest(meta.hashes ?? {}));
    if (this.recentWrites.size > RECENT_WRITES) this.recentWrites.delete(this.recentWrites.keys().next().value!);
  }

  /**
   * Whether a reported change leaves the document as the gateway's last write of it did: then
   * there is nothing to repair. A change whose document the source did not say is never taken
   * for ours.
   */
  isOwnWrite(id: StoredId, op: 'upsert' | 'delete', document: PlainDocument | undefined): boolean {
    const last = this.recentWrites.get(idKey(id));
    if (last === undefined) return false;
    if (op === 'delete') return last === DELETED_DIGEST;
    return document !== undefined && last === CollectionStore.digest(this.fieldHashes(document));
  }

  /** A removal from a client's view: the id only, marked deleted. Nothing else leaves. */
  removal(stored: StoredDocument): SyncDocument {
    return { [PRIMARY_KEY]: toWireId(this.model, stored._id), [DELETED_FIELD]: true } as SyncDocument;
  }

  /** The stored `_id` for a wire id (throws on an id that is malformed for the key's type). */
  storedId(wireId: string): StoredId {
    return toStoredId(this.model, wireId) as StoredId;
  }

  /** Stored form of a wire document (without metadata). */
  toStored(doc: SyncDocument): Omit<StoredDocument, '_sync'> {
    return toStoredForm(this.model, doc);
  }

  /** The wire form (toWireForm); `withStamps` false leaves `_stamps` out (clients that do not stamp). */
  toWire(stored: StoredDocument, withStamps = true): SyncDocument {
    return toWireForm(this.model, stored, withStamps);
  }

  /** The engine's view of a document and its metadata (null: nothing to sync). */
  join(doc: PlainDocument | undefined, meta: MetaDocument | undefined, owned = false): StoredDocument | null {
    if (!meta) return null; // not adopted yet (sync/reconcile.ts)
    const { _id } = meta;
    const sync = fromMeta(meta);
    // A tombstone keeps the queryable fields of its last version: filters and rules still tell
    // whom the delete concerns.
    if (meta.deleted || !doc) return { ...meta.state, _id, _sync: { ...sync, deleted: true } } as StoredDocument;
    // A key of another type than the schema's cannot be sent at all.
    const hidden = meta.invalid != null && (this.invalidDocuments === 'skip' || meta.invalid.field === PRIMARY_KEY);
    const _sync = hidden ? { ...sync, deleted: true } : sync;
    // `owned`: the caller's fresh copy, joined in place.
    if (owned) return Object.assign(doc, { _sync }) as StoredDocument;
    return { ...doc, _sync } as StoredDocument;
  }

  /**
   * Unordered writes of documents, then of their metadata, in as many commands as the store's
   * limits on updates need (store-limits.ts). Returns the indexes of document inserts whose
   * `_id` existed; any other write error throws.
   */
  async writeMany<T extends { _id: StoredId }>(collection: Collection<T>, ops: AnyBulkWriteOperation<T>[]): Promise<{ matched: number; duplicates: Set<number> }> {
    let matched = 0;
    const duplicates = new Set<number>();
    for (let start = 0; start < ops.length; ) {
      let end = start;
      let updates = 0;
      for (; end < ops.length && (updates < this.limits.updatesPerCommand || 'insertOne' in ops[end]!); end++) {
        if (!('insertOne' in ops[end]!)) updates++;
      }
      const chunk = ops.slice(start, end);
      const write = () => collection.bulkWrite(chunk, { ordered: false });
      try {
        matched += (await (updates > 0 ? this.updateCommands.run(write) : write())).matchedCount;
      } catch (error) {
        const taken = duplicateKeyIndexes(error);
        if (!taken) throw error;
        for (const index of taken) duplicates.add(start + index);
        matched += (error as MongoBulkWriteError).result.matchedCount;
      }
      start = end;
    }
    return { matched, duplicates };
  }

  /** Records writes about to be made (PendingWrite); one left by a write that failed is replaced. */
  async recordPending(writes: PendingWrite[]): Promise<void> {
    // The version is the document itself, which a repair that completes the write reads anyway.
    const records = writes.map(({ meta: { version: _version, ...meta }, ...w }): PendingWrite => ({ ...w, meta }));
    const { duplicates } = await this.writeMany(this.pending, records.map((r) => ({ insertOne: { document: r } }) as unknown as AnyBulkWriteOperation<PendingWrite>));
    if (duplicates.size > 0) await this.writeMany(this.pending, [...duplicates].map((i) => ({ replaceOne: { filter: byId<PendingWrite>(records[i]!._id), replacement: records[i]!, upsert: true } })));
  }

  /** The writes under way or interrupted for these documents, by idKey. */
  async readPending(ids: StoredId[]): Promise<Map<string, PendingWrite>> {
    if (ids.length === 0) return new Map();
    return new Map((await this.pending.find(byIds<PendingWrite>(ids)).toArray()).map((p) => [idKey(p._id), p]));
  }

  /**
   * Forgets these pending records (their metadata is written): in batches, in the background.
   * A record left a little longer is harmless: a repair completes a write only over the
   * metadata it replaced (`base`), and a later write of the document replaces it. Only the record
   * given is deleted (its `meta.seq`), never a later write's record for the same document. A
   * delete per push was a store command per push, the costliest of a push on FerretDB.
   */
  clearPending(records: PendingWrite[]): void {
    if (records.length === 0) return;
    for (const r of records) this.clearing.push({ _id: r._id, 'meta.seq': r.meta.seq });
    if (this.clearing.length >= PENDING_CLEAR_BATCH) void this.flushPending();
    else if (!this.clearTimer) {
      this.clearTimer = setTimeout(() => void this.flushPending(), PENDING_CLEAR_DELAY_MS);
      this.clearTimer.unref();
    }
  }

  /** Deletes the pending records cleared so far; resolves once every delete asked for is done. */
  flushPending(): Promise<void> {
    if (this.clearTimer) clearTimeout(this.clearTimer);
    this.clearTimer = null;
    const batch = this.clearing.splice(0);
    if (batch.length > 0) {
      // A delete that fails leaves records that are harmless (see clearPending).
      this.clearingDone = this.clearingDone.then(() => this.pending.deleteMany({ $or: batch } as Filter<PendingWrite>)).then(
        () => {},
        () => {},
      );
    }
    return this.clearingDone;
  }

  /** Metadata by stored `_id`, without versions: whoever reads it by id joins it with the document as it is now. */
  private readMetas(ids: StoredId[]): Promise<MetaDocument[]> {
    return this.readByIds(this.meta, ids, { projection: { version: 0 } });
  }

  /** Documents and their metadata by stored `_id`, as they are now (not joined). */
  async readRaw(ids: StoredId[]): Promise<{ docs: Map<string, PlainDocument>; metas: Map<string, MetaDocument> }> {
    if (ids.length === 0) return { docs: new Map(), metas: new Map() };
    const [docs, metas] = await Promise.all([this.readByIds(this.documents, ids), this.readMetas(ids)]);
    return { docs: new Map(docs.map((d) => [idKey(d._id), d])), metas: new Map(metas.map((m) => [idKey(m._id), m])) };
  }

  /**
   * Documents by `_id`: one `$in`, or a lookup each where the store scans for an `$in`
   * (store-limits.ts).
   */
  private async readByIds<T extends { _id: StoredId }>(collection: Collection<T>, ids: StoredId[], options: FindOptions = {}): Promise<T[]> {
    if (ids.length === 0) return [];
    if (ids.length > this.limits.pointReads) return (await collection.find(byIds<T>(ids), options).toArray()) as T[];
    const found = await Promise.all(ids.map((id) => collection.findOne(byId<T>(id), options)));
    return found.filter((d) => d !== null) as T[];
  }

  /** Joined documents by stored `_id`, keyed by idKey. */
  async findByIds(ids: StoredId[]): Promise<Map<string, StoredDocument>> {
    const { docs, metas } = await this.readRaw(ids);
    const out = new Map<string, StoredDocument>();
    for (const [key, meta] of metas) {
      const joined = this.join(docs.get(key), meta);
      if (joined) out.set(key, joined);
    }
    return out;
  }

  /** One joined document by its wire id (undefined: nothing the gateway syncs). */
  async current(wireId: string): Promise<StoredDocument | undefined> {
    const id = this.storedId(wireId);
    return (await this.findByIds([id])).get(idKey(id));
  }

  /** Changes with afterSeq < seq <= upTo, in sequence order: the versions, from the side collection alone. */
  changesCursor(afterSeq: number, upTo: number, batchSize: number): DocumentCursor {
    const metas = this.meta.find({ seq: { $gt: afterSeq, $lte: upTo } } as Filter<MetaDocument>, { projection: READ_PATH_PROJECTION }).sort({ seq: 1 }).batchSize(batchSize);
    return new JoinedCursor(metas, (batch) => this.versions(batch));
  }

  /**
   * Live versions whose queryable fields match `filter` (a filter on the documents, see
   * onQueryableState) and that `where` (on the side collection) selects, from the side
   * collection alone, in `_id` order (bootstraps, a change of permissions).
   */
  versionsCursor(filter: Filter<PlainDocument>, where: Filter<MetaDocument> = {}, options: { batchSize?: number; maxTimeMs?: number } = {}): DocumentCursor {
    let metas = this.meta.find(this.versionsQuery(filter, where), { projection: READ_PATH_PROJECTION }).sort({ _id: 1 });
    if (options.batchSize) metas = metas.batchSize(options.batchSize);
    if (options.maxTimeMs) metas = metas.maxTimeMS(options.maxTimeMs);
    return new JoinedCursor(metas, async (batch) => (await this.versions(batch)).filter((d) => !d._sync.deleted));
  }

  /** How many live versions `versionsCursor` would read. */
  countVersions(filter: Filter<PlainDocument>, where: Filter<MetaDocument> = {}, maxTimeMs?: number): Promise<number> {
    return this.meta.countDocuments(this.versionsQuery(filter, where), maxTimeMs ? { maxTimeMS: maxTimeMs } : {});
  }

  /** The side-collection query for the live versions that `filter` and `where` select. */
  private versionsQuery(filter: Filter<PlainDocument>, where: Filter<MetaDocument>): Filter<MetaDocument> {
    return { $and: [onQueryableState(filter as Record<string, unknown>), { deleted: false }, where] } as Filter<MetaDocument>;
  }

  /**
   * Side-collection entries as the engine sees them. Metadata written without its version (by
   * an older gateway) is joined with the document as it is now; a live one whose document is
   * gone was deleted since, and its tombstone comes later.
   */
  private async versions(batch: MetaDocument[]): Promise<StoredDocument[]> {
    const unversioned = batch.filter((m) => !m.deleted && !m.version);
    const docs = new Map((await this.readByIds(this.documents, unversioned.map((m) => m._id))).map((d) => [idKey(d._id), d]));
    return batch.flatMap((m) => {
      const doc = m.version ? versionOf(m) : docs.get(idKey(m._id));
      if (!m.deleted && !doc) return [];
      const joined = this.join(doc, m, Boolean(m.version))!;
      // A stored version's size is its BSON length: nothing to walk.
      if (m.version && !joined._sync.deleted) storedSize(joined, m.version.length() + (m.stamps?.length ?? 0));
      return [joined];
    });
  }

  /**
   * Documents from a query on the documents themselves (plain lists: any field, as they are
   * now), joined with their metadata; documents not adopted yet are left out.
   */
  documentsCursor(cursor: FindCursor<PlainDocument>): DocumentCursor {
    return new JoinedCursor(cursor, async (batch) => {
      const metas = await this.readMetas(batch.map((d) => d._id));
      const byId = new Map(metas.map((m) => [idKey(m._id), m]));
      return batch.flatMap((d) => {
        const meta = byId.get(idKey(d._id));
        const joined = meta ? this.join(d, meta) : null;
        return joined && !joined._sync.deleted ? [joined] : [];
      });
    });
  }
}

/** The filter of one document by its stored `_id`. */
export function byId<T>(id: StoredId): Filter<T> {
  return { _id: id } as unknown as Filter<T>;
}

/** The filter of documents by their stored `_id`s. */
export function byIds<T>(ids: StoredId[]): Filter<T> {
  return { _id: { $in: ids } } as unknown as Filter<T>;
}

/** A string for a stored `_id` of any type, for maps and locks (never sent anywhere). */
export function idKey(id: unknown): string {
  if (typeof id === 'string') return `s${id}`;
  return canonical(id);
}

/**
 * A string for a stored value that does not depend on how the driver promoted it: numbers of any
 * BSON type by value, other BSON types tagged, objects in key order.
 */
export function canonical(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
    case 'bigint':
      return `n${String(value)}`;
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object':
      break;
    default:
      return 'null';
  }
  if (value instanceof Date) return `t${value.getTime()}`;
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (ArrayBuffer.isView(value)) return `b${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64')}`;
  const bsonType = (value as { _bsontype?: string })._bsontype;
  switch (bsonType) {
    case 'Int32':
    case 'Double':
      return `n${String((value as { valueOf(): number }).valueOf())}`;
    case 'Long':
      return `n${String(value)}`;
    case 'Decimal128':
      return `d${String(value)}`;
    case 'ObjectId':
      return `o${(value as { toHexString(): string }).toHexString()}`;
    case 'Binary': {
      const b = value as { sub_type: number; buffer: Uint8Array };
      return `b${b.sub_type}:${Buffer.from(b.buffer).toString('base64')}`;
    }
    case undefined:
      break;
    default:
      return `${bsonType}:${String(value)}`;
  }
  const entries = Object.entries(value as Record<string, unknown>).map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`);
  return `{${entries.join(',')}}`;
}

/**
 * What the read paths (pulls, bootstraps, the change feed) leave out of the metadata: the field
 * hashes serve only writes and repairs (which read metadata by id, whole), and decoding them was
 * a tenth of a pulled document's cost.
 */
const READ_PATH_PROJECTION = { hashes: 0 } as const;

const JOIN_BATCH_BYTES = 1024 * 1024;
const JOIN_BATCH_DOCUMENTS = 1_000;

/**
 * Reads a cursor in the batches the store sends and joins each batch in one more read. Nothing
 * is read past what `next()` has been asked for beyond the current batch, so a cursor kept
 * between pages continues where the page ended.
 */
class JoinedCursor<T> implements DocumentCursor {
  private buffer: StoredDocument[] = [];
  private at = 0;
  /** A batch being read (by next() or prefetch()): one at a time. */
  private filling: Promise<boolean> | null = null;

  constructor(
    private readonly source: FindCursor<T>,
    private readonly joinBatch: (batch: T[]) => Promise<StoredDocument[]>,
  ) {}

  async next(): Promise<StoredDocument | null> {
    while (this.at === this.buffer.length) {
      if (!(await this.fill())) return null;
    }
    return this.buffer[this.at++]!;
  }

  prefetch(): void {
    // A failure here is met again by the next() that waits for it; nobody may (closed first).
    if (this.at === this.buffer.length) this.fill().catch(() => {});
  }

  close(): Promise<void> {
    return this.source.close();
  }

  drained(): boolean {
    // A cursor id of zero: the store sent its last batch (MongoDB and FerretDB alike).
    return this.at === this.buffer.length && !this.filling && this.source.bufferedCount() === 0 && this.source.id?.isZero() === true;
  }

  /** Reads and joins the next batch into the buffer; false once the source has no more. */
  private fill(): Promise<boolean> {
    this.filling ??= (async () => {
      try {
        const first = await this.source.next();
        if (first === null) return false;
        // What the driver has buffered, up to a mebibyte: a batch is joined (copied) at once, and
        // big documents must not be held twice over (pages are bounded in bytes: readPage).
        const batch: T[] = [first];
        for (let bytes = sizeOf(first); bytes < JOIN_BATCH_BYTES && batch.length < JOIN_BATCH_DOCUMENTS && this.source.bufferedCount() > 0; ) {
          const next = this.source.readBufferedDocuments(1)[0] as T;
          batch.push(next);
          bytes += sizeOf(next);
        }
        this.buffer = await this.joinBatch(batch);
        this.at = 0;
        return true;
      } finally {
        this.filling = null;
      }
    })();
    return this.filling;
  }
}

// The value codec (every field with its exact BSON type), imported here beside its only users.
import { putWireFields, toStoredFields, toStoredId, toWireId } from '../../protocol/bson-values.ts';

/**
 * The stored form of a wire document: `id` as `_id` with the key's BSON type (toStoredId), each
 * field's value with its BSON type (protocol/bson-values.ts). Throws a BsonValueError naming the
 * field for a value its type cannot hold; nothing is returned half converted.
 */
export function toStoredForm(model: CollectionModel, doc: SyncDocument): Omit<StoredDocument, '_sync'> {
  const { [PRIMARY_KEY]: id, [DELETED_FIELD]: _deleted, [STAMPS_FIELD]: _stamps, ...fields } = doc;
  return { _id: toStoredId(model, id) as string, ...toStoredFields(model.fields, fields) };
}

/**
 * The wire form: the fields of the type only. Other services may keep fields of their own in a
 * document; those are not part of the data model, no rule can hide them, and they never leave
 * (the write path keeps them: `outsideFields`). Each value in its JSON form (putWireFields); the
 * id from toWireId, which throws for an `_id` of another type than the key's. `withStamps`: the
 * stamps as `_stamps` (for clients that stamp, and the merge), else none.
 */
export function toWireForm(model: CollectionModel, stored: StoredDocument, withStamps = true): SyncDocument {
  const { _id, _sync } = stored;
  const wire: Record<string, unknown> = { [PRIMARY_KEY]: toWireId(model, _id) };
  putWireFields(model.fields, stored, wire);
  wire[DELETED_FIELD] = _sync.deleted;
  if (withStamps && _sync.stamps && Object.keys(_sync.stamps).length > 0) wire[STAMPS_FIELD] = _sync.stamps;
  return wire as SyncDocument;
}

/** The document without its stamps, for clients that do not stamp (RxDB's stock plugin). */
export function withoutStamps(doc: SyncDocument): SyncDocument {
  if (!(STAMPS_FIELD in doc)) return doc;
  const { [STAMPS_FIELD]: _stamps, ...rest } = doc;
  return rest as SyncDocument;
}
