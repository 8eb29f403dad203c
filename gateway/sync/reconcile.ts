// Brings the gateway's metadata (store/collection-store.ts, the side collection) up to what
// MongoDB holds, for documents the gateway did not write the way they are now:
//  - a document without metadata (there before the gateway, or inserted by another service) is
//    adopted: sequenced, so it reaches pulls, bootstraps, streams and plain queries;
//  - a document whose fields no longer hash as its metadata says was changed by another service
//    (any driver operation, a replaceOne included): the change is stamped like an unstamped
//    write, after every stamp it replaces, on the fields that changed only, so a device's
//    concurrent edit of another field survives and counters and sets count the difference;
//  - metadata of a live document that is gone means another service deleted it: a tombstone.
// Documents that fail schema.graphql are reported (log, and a count on /ready) and kept out of
// sync or synced as they are (TRIBUTARY_INVALID_DOCUMENTS).
//
// It runs for the ids an outside-change source reports (store/outside-changes.ts), over whole
// collections in the background (adoption at start, and a full comparison pass where changes may
// have been missed), and before every push reads its documents, so a write always merges into
// what is stored. Callers hold the documents' locks (push.ts), so a gateway write and a repair of
// one document never interleave. The gateway writes a document before its metadata, recording
// a write that changes a counter as pending first: a repair that finds a document as a pending write left it, over the
// metadata that write replaced, completes that write (its stamps, a device's counter increments
// included) instead of taking it for an outside change, so a crash in between loses nothing and
// a device that pushes the same change again is not counted twice.
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import type { AnyBulkWriteOperation } from 'mongodb';
import { allStamps, recordChange, recordOutsideChange, SERVER_NODE, type MergedFields, type Stamps } from '../../protocol/field-state.ts';
import type { HybridLogicalClock } from '../../protocol/hlc.ts';
import { byId, CollectionStore, fromMeta, idKey, toMeta, type MetaDocument, type PendingWrite, type PlainDocument, type StoredDocument, type StoredId } from '../store/collection-store.ts';
import { isStoredIdOf, keyScalar } from '../../protocol/bson-values.ts';
import { PRIMARY_KEY } from '../../protocol/model.ts';
import type { DocumentValidator, FieldViolation } from './validate.ts';

const MAX_RESEQUENCE_ATTEMPTS = 3;

export interface ReconcileCounts {
  adopted: number;
  changed: number;
  deleted: number;
}

export interface ReconcilerOptions {
  maxClockSkewMs: number;
  log: Logger;
  /** Called when a document is found to fail schema.graphql (or to pass again: null). */
  onInvalid?: (key: string, violation: FieldViolation | null) => void;
}

export class Reconciler {
  constructor(
    private readonly store: CollectionStore,
    private readonly fields: MergedFields,
    private readonly clock: HybridLogicalClock,
    private readonly validate: DocumentValidator,
    private readonly onCommitted: () => void,
    private readonly options: ReconcilerOptions,
  ) {}

  /**
   * Repairs the metadata of these documents (stored `_id`s) where it is behind what is stored,
   * and returns them joined (by idKey). The caller holds the documents' locks.
   * `known`: the documents and metadata as just read. With `metas` left out, the documents are
   * taken to have none (a full pass found none): their metadata is inserted, and any that
   * exists after all (written meanwhile) is read and repaired again.
   */
  async repair(
    ids: StoredId[],
    known?: { docs: Map<string, PlainDocument>; metas?: Map<string, MetaDocument> },
  ): Promise<{ current: Map<string, StoredDocument>; metas: Map<string, MetaDocument>; counts: ReconcileCounts }> {
    const read = known ?? (await this.store.readRaw(ids));
    const docs = read.docs;
    const metas = read.metas ?? new Map<string, MetaDocument>();
    const insertOnly = known !== undefined && known.metas === undefined;
    const counts: ReconcileCounts = { adopted: 0, changed: 0, deleted: 0 };
    const planned = new Map<string, { meta: MetaDocument; kind: keyof ReconcileCounts | 'completed' }>();
    const seen = new Set<string>();
    for (const id of ids) {
      const key = idKey(id);
      if (seen.has(key)) continue;
      seen.add(key);
      const next = this.nextMetadata(key, docs.get(key), metas.get(key));
      if (next) planned.set(key, next);
    }
    const pending = await this.store.readPending([...planned.values()].map((p) => p.meta._id));
    for (const [key, write] of pending) {
      const completed = this.completion(write, docs.get(key), metas.get(key));
      if (completed) planned.set(key, { meta: completed, kind: 'completed' });
    }
    const updates = [...planned.values()].map((p) => p.meta);
    for (const { kind } of planned.values()) if (kind !== 'completed') counts[kind]++;
    if (updates.length > 0) {
      // Metadata that did not exist is inserted (one command; an update is a statement each on FerretDB).
      const inserts = new Set(updates.filter((m) => insertOnly || !metas.has(idKey(m._id))).map((m) => idKey(m._id)));
      const { written, taken } = await this.writeMetadata(updates, inserts);
      for (const meta of written) metas.set(idKey(meta._id), meta);
      this.store.clearPending([...pending.values()]);
      if (taken.length > 0) {
        // Written meanwhile (a push adopted them first): read and repaired like any other.
        const again = await this.repair(taken);
        for (const [key, meta] of again.metas) metas.set(key, meta);
        counts.adopted -= taken.length;
        for (const [name, n] of Object.entries(again.counts)) counts[name as keyof ReconcileCounts] += n;
      }
    }
    const current = new Map<string, StoredDocument>();
    for (const key of seen) {
      const joined = this.store.join(docs.get(key), metas.get(key));
      if (joined) current.set(key, joined);
    }
    return { current, metas, counts };
  }

  /**
   * The metadata that completes a gateway write interrupted between its document and its
   * metadata: when the document is as the write left it, over the metadata it replaced. Null for
   * a write that did not land, or was overtaken since (then the document is repaired as it is).
   */
  private completion(write: PendingWrite, doc: PlainDocument | undefined, stored: MetaDocument | undefined): MetaDocument | null {
    if (write.base !== (stored?.seq ?? null)) return null;
    const landed = write.meta.deleted ? doc === undefined : doc !== undefined && CollectionStore.digest(this.store.fieldHashes(doc)) === CollectionStore.digest(write.meta.hashes ?? {});
    if (!landed) return null;
    this.options.log.info({ collection: this.store.model.name, id: String(write._id) }, 'completed a write interrupted between its document and its metadata');
    return toMeta(write._id, { ...fromMeta(write.meta), seq: 0, updatedAt: new Date() }, doc ?? null);
  }

  /** The metadata a document needs now (without its sequence), or null when it is up to date. */
  private nextMetadata(key: string, doc: PlainDocument | undefined, stored: MetaDocument | undefined): { meta: MetaDocument; kind: keyof ReconcileCounts } | null {
    const updatedAt = new Date();
    const meta = stored && fromMeta(stored);
    // The version the change replaces, as the engine sees it (for `prev` and `past`).
    const replaced = stored && this.store.join(doc, { ...stored, deleted: false, invalid: null });
    if (!doc) {
      if (!meta || meta.deleted) return null;
      return { kind: 'deleted', meta: toMeta(stored._id, { ...meta, seq: 0, updatedAt, deleted: true, ...this.store.history(replaced!), hashes: {}, invalid: null }, null) };
    }
    const hashes = this.store.fieldHashes(doc);
    if (meta && !meta.deleted && isDeepStrictEqual(hashes, meta.hashes ?? {})) return null;
    const violation = this.violation(doc);
    if (violation) this.options.log.warn({ collection: this.store.model.name, id: String(doc._id), field: violation.field, problem: violation.message }, 'document fails schema.graphql');
    if (violation || meta?.invalid) this.options.onInvalid?.(key, violation);
    let stamps: Stamps;
    let kind: keyof ReconcileCounts;
    const wire = violation?.field === PRIMARY_KEY ? {} : this.wireFields(doc);
    if (!meta || meta.deleted) {
      // Only counters and sets need a state from the start; unstamped fields are older than any stamp.
      const merged = Object.fromEntries(Object.entries(wire).filter(([name]) => Object.hasOwn(this.fields, name)));
      stamps = recordChange(this.fields, {}, merged, {}, () => this.tick(meta?.stamps), SERVER_NODE) ?? {};
      kind = 'adopted';
    } else {
      const was = meta.hashes ?? {};
      const changed = [...new Set([...Object.keys(was), ...Object.keys(hashes)])].filter((name) => was[name] !== hashes[name]);
      stamps = recordOutsideChange(this.fields, changed, meta.stamps ?? {}, wire, () => this.tick(meta.stamps), SERVER_NODE);
      kind = 'changed';
    }
    const history = replaced ? this.store.history(replaced) : { prev: null, past: [] };
    return { kind, meta: toMeta(doc._id, { seq: 0, updatedAt, deleted: false, state: this.store.queryableSnapshot(doc), ...history, stamps, hashes, invalid: violation }, doc) };
  }

  /** How a stored document breaks schema.graphql, its key's type included, or null. */
  private violation(doc: PlainDocument): FieldViolation | null {
    if (!isStoredIdOf(this.store.model, doc._id)) return { field: PRIMARY_KEY, message: `${this.store.model.typeName}.${PRIMARY_KEY}: the stored _id is not of the key's type (${keyScalar(this.store.model)})` };
    try {
      return this.validate(this.store.toWire({ ...doc, _sync: { seq: 0, updatedAt: new Date(), deleted: false } } as StoredDocument, false));
    } catch (error) {
      // A value of another BSON type than its field's has no wire form.
      return { field: null, message: `${this.store.model.typeName}: ${(error as Error).message}` };
    }
  }

  /** The wire form's fields of a stored document, as far as they convert (for counters and sets). */
  private wireFields(doc: PlainDocument): Record<string, unknown> {
    try {
      return this.store.toWire({ ...doc, _sync: { seq: 0, updatedAt: new Date(), deleted: false } } as StoredDocument, false);
    } catch {
      return {};
    }
  }

  /** The gateway's clock, moved past the stamps the change replaces first. */
  private tick(previous: Stamps | undefined): string {
    for (const stamp of allStamps(previous ?? {}, this.clock.node)) this.clock.observe(stamp, this.options.maxClockSkewMs + 1_000);
    return this.clock.tick();
  }

  /**
   * Sequences and writes metadata under one lease (re-sequenced if the lease expired first).
   * Those in `inserts` are inserted, and the ids whose metadata exists after all come back as `taken`.
   */
  private async writeMetadata(updates: MetaDocument[], inserts: Set<string>): Promise<{ written: MetaDocument[]; taken: StoredId[] }> {
    let metas: MetaDocument[] = [];
    let taken: StoredId[] = [];
    for (let attempt = 0, pending = updates; pending.length > 0; attempt++) {
      if (attempt === MAX_RESEQUENCE_ATTEMPTS) throw new Error(`could not sequence ${pending.length} outside changes within the lease TTL ${attempt} times`);
      const lease = await this.store.sequencer.allocate(pending.length);
      metas = pending.map((m, i) => ({ ...m, seq: lease.lo + i }) as MetaDocument);
      const ops = metas.map((m): AnyBulkWriteOperation<MetaDocument> => (inserts.has(idKey(m._id)) && attempt === 0 ? ({ insertOne: { document: m } } as unknown as AnyBulkWriteOperation<MetaDocument>) : { replaceOne: { filter: byId(m._id), replacement: m, upsert: true } }));
      try {
        const { duplicates } = await this.store.writeMany(this.store.meta, ops);
        if (duplicates.size > 0) {
          taken = metas.filter((_, i) => duplicates.has(i)).map((m) => m._id);
          metas = metas.filter((_, i) => !duplicates.has(i));
        }
      } finally {
        const held = await lease.release();
        if (held) pending = [];
        else pending = metas;
      }
    }
    for (const meta of metas) this.store.wrote(meta._id, meta);
    this.onCommitted();
    return { written: metas, taken };
  }
}
