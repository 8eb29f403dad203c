// One synced collection in MongoDB: how documents are stored, and the reads the sync engine
// needs. Stored form: the document's fields at top level (so other MongoDB users see plain
// data), `id` as `_id`, DateTime fields as BSON dates, and the gateway's metadata under `_sync`.
// Deletes are soft: a tombstone keeps the last fields with `_sync.deleted: true`, so clients
// that were offline still learn of the delete.
import type { Collection, Db, Filter, FindCursor } from 'mongodb';
import { DELETED_FIELD, mapDateTimes, hasDateTimes, PRIMARY_KEY, queryableFields, STAMPS_FIELD, type CollectionModel } from '../../protocol/model.ts';
import type { SyncDocument } from '../../protocol/messages.ts';
import { CursorCache } from './cursor-cache.ts';
import { Sequencer, type CounterDocument } from './sequencer.ts';

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
  /** Hybrid-logical-clock stamp of the last change of each field path (sync/merge.ts). */
  stamps?: Record<string, string>;
}

export type StoredDocument = { _id: string; _sync: SyncMetadata } & Record<string, unknown>;

export const COUNTERS_COLLECTION = '_tributary_sequences';

export interface CollectionStoreOptions {
  leaseTtlMs: number;
}

export class CollectionStore {
  readonly documents: Collection<StoredDocument>;
  readonly sequencer: Sequencer;
  /** Cursors of multi-page reads (first syncs, bootstraps) between their pages. */
  readonly cursors = new CursorCache();
  private readonly convertsDates: boolean;

  constructor(
    readonly model: CollectionModel,
    db: Db,
    options: CollectionStoreOptions,
  ) {
    this.documents = db.collection<StoredDocument>(model.name);
    this.sequencer = new Sequencer(db.collection<CounterDocument>(COUNTERS_COLLECTION), model.name, options);
    this.convertsDates = hasDateTimes(model.fields);
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

export function toWireForm(model: CollectionModel, stored: StoredDocument, convertsDates = hasDateTimes(model.fields)): SyncDocument {
  const { _id, _sync, ...fields } = stored;
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
