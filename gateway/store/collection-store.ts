// One synced collection in MongoDB: how documents are stored, and the reads the sync engine
// needs. Stored form: the document's fields at top level (so other MongoDB users see plain
// data), `id` as `_id`, DateTime fields as BSON dates, and the gateway's metadata under `_sync`.
// Deletes are soft: a tombstone keeps the last fields with `_sync.deleted: true`, so clients
// that were offline still learn of the delete.
import { isDeepStrictEqual } from 'node:util';
import { MongoBulkWriteError, type AnyBulkWriteOperation, type Collection, type Db, type Filter, type FindCursor } from 'mongodb';
import type { Stamps } from '../../protocol/field-state.ts';
import { DELETED_FIELD, mapDateTimes, hasDateTimes, PRIMARY_KEY, queryableFields, STAMPS_FIELD, type CollectionModel } from '../../protocol/model.ts';
import type { SyncDocument } from '../../protocol/messages.ts';
import { CursorCache } from './cursor-cache.ts';
import { Sequencer, type CounterDocument } from './sequencer.ts';
import type { Semaphore, StoreLimits } from './store-limits.ts';

export interface SyncMetadata {
  /** Update sequence of the last write (see sequencer.ts). */
  seq: number;
  updatedAt: Date;
  deleted: boolean;
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
  /** Per field path, the stamp of its last change, or a counter's or set's state (sync/merge.ts). */
  stamps?: Stamps;
}

export type StoredDocument = { _id: string; _sync: SyncMetadata } & Record<string, unknown>;

export const COUNTERS_COLLECTION = '_tributary_sequences';

/** How many queryable states before the previous one a document remembers (`_sync.past`). */
export const PAST_STATES = 3;

export interface CollectionStoreOptions {
  leaseTtlMs: number;
  /** What the store can take at once (store-limits.ts). */
  limits: StoreLimits;
  /** Shared by every collection of the gateway: update commands in flight. */
  updateCommands: Semaphore;
}

export class CollectionStore {
  readonly documents: Collection<StoredDocument>;
  readonly sequencer: Sequencer;
  /** Cursors of multi-page reads (first syncs, bootstraps) between their pages. */
  readonly cursors: CursorCache;
  private readonly convertsDates: boolean;
  private readonly fieldNames: Set<string>;
  private readonly limits: StoreLimits;
  private readonly updateCommands: Semaphore;

  constructor(
    readonly model: CollectionModel,
    db: Db,
    private readonly options: CollectionStoreOptions,
  ) {
    this.documents = db.collection<StoredDocument>(model.name);
    this.sequencer = new Sequencer(db.collection<CounterDocument>(COUNTERS_COLLECTION), model.name, options);
    this.convertsDates = hasDateTimes(model.fields);
    this.fieldNames = new Set(model.fields.map((f) => f.name));
    this.limits = options.limits;
    this.updateCommands = options.updateCommands;
    this.cursors = new CursorCache(undefined, this.limits.cachedCursorsPerCollection);
  }

  async init(): Promise<void> {
    await this.sequencer.init();
    await this.documents.createIndex({ '_sync.seq': 1 }, { name: 'tributary_seq' });
    for (const field of queryableFields(this.model)) {
      if (field.name !== PRIMARY_KEY) await this.documents.createIndex({ [field.name]: 1 }, { name: `tributary_q_${field.name}` });
    }
  }

  /** The queryable fields of a stored version, as `_sync.prev` of the next one keeps them. */
  queryableSnapshot(stored: StoredDocument): Record<string, unknown> {
    return Object.fromEntries(queryableFields(this.model).map((f) => (f.name === PRIMARY_KEY ? ['_id', stored._id] : [f.name, stored[f.name] ?? null])));
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
    const prev = this.queryableSnapshot(stored);
    const older = [...(stored._sync.past ?? []), ...(stored._sync.prev ? [stored._sync.prev] : [])];
    const distinct = older.filter((state, i) => !isDeepStrictEqual(state, prev) && older.findIndex((s) => isDeepStrictEqual(s, state)) === i);
    return { prev, past: distinct.slice(-PAST_STATES) };
  }

  /** The fields of a stored document that are not the type's (another service's): kept on every write. */
  outsideFields(stored: StoredDocument | null): Record<string, unknown> {
    if (stored === null) return {};
    return Object.fromEntries(Object.entries(stored).filter(([key]) => key !== '_id' && key !== '_sync' && !this.fieldNames.has(key)));
  }

  /** A removal from a client's view: the id only, marked deleted. Nothing else leaves. */
  removal(stored: StoredDocument): SyncDocument {
    return { [PRIMARY_KEY]: stored._id, [DELETED_FIELD]: true } as SyncDocument;
  }

  /** Stored form of a wire document (without metadata). */
  toStored(doc: SyncDocument): Omit<StoredDocument, '_sync'> {
    return toStoredForm(this.model, doc, this.convertsDates);
  }

  toWire(stored: StoredDocument): SyncDocument {
    return toWireForm(this.model, stored, this.convertsDates);
  }

  /**
   * The filter of a write that replaces the version with sequence `seq`: a compare-and-set where
   * the store does it well (store-limits.ts); by `_id` on FerretDB, where the gateway's
   * per-document lock is what keeps writes of one document in order.
   */
  versionFilter(id: string, seq: number): Filter<StoredDocument> {
    return (this.limits.compareAndSet ? { _id: id, '_sync.seq': seq } : { _id: id }) as Filter<StoredDocument>;
  }

  /**
   * An unordered bulk write, in as many commands as the store's limits on updates need
   * (store-limits.ts). Returns how many updates and replacements matched, and the indexes of
   * inserts whose `_id` existed; any other write error throws.
   */
  async writeMany(ops: AnyBulkWriteOperation<StoredDocument>[]): Promise<{ matched: number; duplicates: Set<number> }> {
    let matched = 0;
    const duplicates = new Set<number>();
    for (let start = 0; start < ops.length; ) {
      let end = start;
      let updates = 0;
      for (; end < ops.length && (updates < this.limits.updatesPerCommand || 'insertOne' in ops[end]!); end++) {
        if (!('insertOne' in ops[end]!)) updates++;
      }
      const chunk = ops.slice(start, end);
      const write = () => this.documents.bulkWrite(chunk, { ordered: false });
      try {
        matched += (await (updates > 0 ? this.updateCommands.run(write) : write())).matchedCount;
      } catch (error) {
        if (!(error instanceof MongoBulkWriteError) || error.writeErrors === undefined) throw error;
        const writeErrors = Array.isArray(error.writeErrors) ? error.writeErrors : [error.writeErrors];
        if (writeErrors.some((e) => e.code !== 11000)) throw error;
        for (const e of writeErrors) duplicates.add(start + e.index);
        matched += error.result.matchedCount;
      }
      start = end;
    }
    return { matched, duplicates };
  }

  async findByIds(ids: string[]): Promise<Map<string, StoredDocument>> {
    const found = await this.documents.find({ _id: { $in: ids } } as Filter<StoredDocument>).toArray();
    return new Map(found.map((d) => [d._id, d]));
  }

  /** Changes with afterSeq < seq <= upTo, in sequence order. */
  changesCursor(afterSeq: number, upTo: number, batchSize: number): FindCursor<StoredDocument> {
    return this.documents
      .find({ '_sync.seq': { $gt: afterSeq, $lte: upTo } } as Filter<StoredDocument>)
      .sort({ '_sync.seq': 1 })
      .batchSize(batchSize);
  }
}

export function toStoredForm(model: CollectionModel, doc: SyncDocument, convertsDates = hasDateTimes(model.fields)): Omit<StoredDocument, '_sync'> {
  const { [PRIMARY_KEY]: id, [DELETED_FIELD]: _deleted, [STAMPS_FIELD]: _stamps, ...fields } = doc;
  const converted = convertsDates ? mapDateTimes(model.fields, fields, toDate) : fields;
  return { _id: id as string, ...converted };
}

/**
 * The wire form: the fields of the type only. Other services may keep fields of their own in a
 * document; those are not part of the data model, no rule can hide them, and they never leave
 * (the write path keeps them: `outsideFields`).
 */
export function toWireForm(model: CollectionModel, stored: StoredDocument, convertsDates = hasDateTimes(model.fields)): SyncDocument {
  const { _id, _sync } = stored;
  const fields: Record<string, unknown> = {};
  for (const { name } of model.fields) if (name !== PRIMARY_KEY && Object.hasOwn(stored, name)) fields[name] = stored[name];
  const converted = convertsDates ? mapDateTimes(model.fields, fields, toIsoString) : fields;
  const wire = { [PRIMARY_KEY]: _id, ...converted, [DELETED_FIELD]: _sync.deleted } as SyncDocument;
  if (_sync.stamps && Object.keys(_sync.stamps).length > 0) wire[STAMPS_FIELD] = _sync.stamps;
  return wire;
}

/** The document without its stamps, for clients that do not stamp (RxDB's stock plugin). */
export function withoutStamps(doc: SyncDocument): SyncDocument {
  if (!(STAMPS_FIELD in doc)) return doc;
  const { [STAMPS_FIELD]: _stamps, ...rest } = doc;
  return rest as SyncDocument;
}

function toDate(value: unknown): unknown {
  return typeof value === 'string' ? new Date(value) : value;
}

function toIsoString(value: unknown): unknown {
  return value instanceof Date ? value.toISOString() : value;
}
