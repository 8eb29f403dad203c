// The write path. Every write, from a sync push or a plain GraphQL mutation, goes through
// `push()`: validate, check permissions, merge into the stored state (protocol/merge.ts), sequence,
// write with compare-and-set, and wake the change feed.
//
// Rows with stamps (our SDK) are merged whatever the client last saw. Rows without (RxDB's stock
// plugin, plain mutations) keep RxDB's conflict rule: a row applies when the client's
// `assumedMasterState` equals the stored state; otherwise the stored state is returned as a
// conflict and the client resolves it. A row whose `newDocumentState` already equals the stored
// state is acknowledged without writing: that is what makes a retried push (lost ack) harmless.
//
// Writes of one document run one at a time within the process (per-document locks), and each
// push first brings what it reads up to date with what other services wrote (sync/reconcile.ts).
// A document is written before its metadata (store/collection-store.ts), by `_id`; an insert
// that finds the `_id` taken, or an update whose document is gone, lost a race with another
// writer and is re-evaluated. No multi-document transactions: FerretDB v1 has none, and one
// gateway instance per database is what is supported until the locks are shared (ARCHITECTURE.md).
import type { AnyBulkWriteOperation, UpdateFilter } from 'mongodb';
import { pino, type Logger } from 'pino';
import { COMPENSATING_WRITE_CODE, REJECTION_CODES, type PushRejection, type PushResult, type PushRow, type SyncDocument } from '../../protocol/messages.ts';
import type { CompiledFilter } from '../query/filter.ts';
import { accessDenial, asStored, denialReason, hiddenFieldNamed, inSet, preMergeDenial, UNRESTRICTED, withHiddenFieldsOf, writeDenial, type CollectionPermissions, type WriteDenial } from '../rules/permissions.ts';
import { randomBytes } from 'node:crypto';
import { formatStamp, HybridLogicalClock, parseStamp } from '../../protocol/hlc.ts';
import { allStamps, mergedFields, recordChange, SERVER_NODE, stampsProblem, type MergedFields } from '../../protocol/field-state.ts';
import { unsafeKeyPath } from '../../protocol/paths.ts';
import { isDeepStrictEqual } from 'node:util';
import { DELETED_FIELD, PRIMARY_KEY, STAMPS_FIELD, type CollectionModel } from '../../protocol/model.ts';
import { toStoredFields } from '../../protocol/bson-values.ts';
import { byId, byIds, canonical, idKey, toMeta, withoutStamps, type CollectionStore, type MetaDocument, type PlainDocument, type StoredDocument, type StoredId } from '../store/collection-store.ts';
import { Reconciler, type ReconcileCounts } from './reconcile.ts';
import { merge, type ConflictStrategy, type Stamps, type Version } from '../../protocol/merge.ts';
import { sameState } from './same-state.ts';
import { DocumentLocks } from './keyed-lock.ts';
import type { DocumentValidator, FieldViolation } from './validate.ts';

const MAX_ROUNDS = 8;
const MAX_RESEQUENCE_ATTEMPTS = 3;

interface PlannedWrite {
  doc: SyncDocument;
  /** The stored version this write replaces; null for an insert. */
  replaces: StoredDocument | null;
  /** Field stamps (and counter and set states) to store. */
  stamps: Stamps;
  /** Sent back once written: the merged state, when it differs from what the client pushed. */
  reply?: SyncDocument;
  /** A new document planned without reading its id (applyOnce): it lands only if the id is free. */
  unread?: boolean;
}

export interface ConflictOptions {
  strategy: ConflictStrategy;
  /** Client stamps later than this ahead of the gateway's clock are pulled back to it. */
  maxClockSkewMs: number;
}

interface Outcome {
  conflicts: SyncDocument[];
  rejected: PushRejection[];
  permissions: CollectionPermissions;
}

export class PushError extends Error {
  override name = 'PushError';
}

export class CollectionWriter {
  /** Each document is written by one task at a time, among all instances (keyed-lock.ts). */
  private readonly documentLocks: DocumentLocks;
  /** Updates per sequence lease, adapted to the store's speed (see write()). */
  private partSize: number;

  /** Pushes under way: a graceful stop lets them finish, so their sequence leases are released. */
  private readonly inflight = new Set<Promise<unknown>>();

  /** Stamps the changes of clients that do not stamp (RxDB's stock plugin, plain mutations). */
  private readonly clock = new HybridLogicalClock(`gw${randomBytes(4).toString('hex')}`);

  /** Counters and add-wins sets of the collection. */
  private readonly fields: MergedFields;
  /** The fields that are counters (only top-level fields can be: field-state.ts mergedFields). */
  private readonly counterFields: string[];

  /** Brings metadata up to what other services wrote (sync/reconcile.ts). */
  private readonly reconciler: Reconciler;

  constructor(
    private readonly store: CollectionStore,
    private readonly validate: DocumentValidator,
    private readonly onCommitted: () => void,
    private readonly conflicts: ConflictOptions = { strategy: 'field-lww', maxClockSkewMs: 60_000 },
    outside: { log: Logger; onInvalid?: (key: string, violation: FieldViolation | null) => void } = { log: silentLog },
  ) {
    this.fields = mergedFields(store.model);
    this.counterFields = Object.keys(this.fields).filter((name) => this.fields[name] === 'counter');
    this.partSize = store.writesPerLease;
    this.documentLocks = new DocumentLocks(store.locks, store.model.name);
    this.reconciler = new Reconciler(store, this.fields, this.clock, validate, onCommitted, { maxClockSkewMs: conflicts.maxClockSkewMs, ...outside });
  }

  /** Runs `task` holding these documents' locks, as every write of them does. */
  locked<T>(ids: StoredId[], task: () => Promise<T>): Promise<T> {
    return this.documentLocks.run(
      ids.map((id) => idKey(id)),
      task,
    );
  }

  /**
   * Brings the metadata of these documents (stored `_id`s) up to what MongoDB holds: adoption,
   * and changes and deletes made by other services (sync/reconcile.ts).
   */
  reconcile(ids: StoredId[], known?: { docs: Map<string, PlainDocument>; metas?: Map<string, MetaDocument> }): Promise<ReconcileCounts> {
    const work = this.documentLocks.run(
      ids.map((id) => idKey(id)),
      async () => (await this.reconciler.repair(ids, known)).counts,
    );
    this.inflight.add(work);
    void work.finally(() => this.inflight.delete(work)).catch(() => {});
    return work;
  }

  /**
   * `view`: the pushing client's Flexible Sync subscriptions on this collection (their union);
   * as in Realm, a document it writes must stay inside them (absent: no such client, no check).
   */
  push(rows: readonly unknown[], permissions: CollectionPermissions = UNRESTRICTED, view: CompiledFilter | null = null): Promise<PushResult> {
    const pushing = this.pushNow(rows, permissions, view);
    this.inflight.add(pushing);
    void pushing.finally(() => this.inflight.delete(pushing)).catch(() => {});
    return pushing;
  }

  /**
   * A read-modify-write of one document (the plain API's mutations): `change` is given the
   * document as stored (undefined: none) and returns the row to push (null: nothing to write).
   * The document's lock is held from the read to the write, so no other write of it through a
   * gateway lands in between: an increment adds to what is stored, however many run at once.
   */
  change(id: StoredId, permissions: CollectionPermissions, change: (stored: StoredDocument | undefined) => PushRow | null): Promise<PushResult | null> {
    const key = idKey(id);
    const work = this.documentLocks.run([key], async () => {
      const row = change((await this.store.findByIds([id])).get(key));
      if (!row) return null;
      if (idKey(this.store.storedId(row.newDocumentState.id)) !== key) throw new PushError('a change must write the document it read');
      return this.pushNow([row], permissions, null, true);
    });
    this.inflight.add(work);
    void work.finally(() => this.inflight.delete(work)).catch(() => {});
    return work;
  }

  /** Resolves when every push under way has finished (successfully or not). */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.inflight]);
  }

  /** `locked`: the caller holds the locks of every row's document (change). */
  private async pushNow(rows: readonly unknown[], permissions: CollectionPermissions, view: CompiledFilter | null, locked = false): Promise<PushResult> {
    const conflicts: SyncDocument[] = [];
    const rejected: PushRejection[] = [];
    const rejectedDocs: SyncDocument[] = [];
    let pending: PushRow[] = [];

    for (const row of rows) {
      const problem = checkRow(row, this.store);
      if (problem) {
        rejected.push(problem);
        continue;
      }
      const doc = (row as PushRow).newDocumentState;
      const hidden = hiddenFieldNamed(permissions, this.store.model, doc);
      if (hidden) {
        rejected.push({ id: doc.id, ...permissionDenied({ field: hidden, message: `the role may not write ${this.store.model.typeName}.${hidden}` }, this.store.model, doc.id) });
        rejectedDocs.push(doc);
        continue;
      }
      // A delete is checked against the schema only where its state would be stored (applyOnce);
      // an existing document's tombstone keeps the stored fields.
      const violation = doc._deleted ? null : this.schemaViolation(doc, permissions);
      if (violation) {
        rejected.push({ id: doc.id, ...violation });
        rejectedDocs.push(doc);
        continue;
      }
      if (view && !doc._deleted && !view.matches(asStored(this.store.model, doc))) {
        rejected.push({ id: doc.id, ...permissionDenied({ field: null, message: OUTSIDE_VIEW }, this.store.model, doc.id) });
        rejectedDocs.push(doc);
        continue;
      }
      pending.push(row as PushRow);
    }

    // Rounds that only apply a later row of the same document are bounded by the rows; rounds
    // of contention (another writer won) by MAX_ROUNDS.
    for (let contended = 0, round = 0; pending.length > 0; round++) {
      if (contended === MAX_ROUNDS) throw new PushError(`gave up after ${MAX_ROUNDS} rounds of write contention`);
      // A batch may hold several rows for one document; they apply one after another.
      const now: PushRow[] = [];
      const later: PushRow[] = [];
      const seen = new Set<string>();
      for (const row of pending) {
        const key = idKey(this.store.storedId(row.newDocumentState.id));
        (seen.has(key) ? later : now).push(row);
        seen.add(key);
      }
      const apply = () => this.applyOnce(now, { conflicts, rejected, permissions }, round === 0);
      const { lost, contention } = await (locked ? apply() : this.documentLocks.run(seen, apply));
      // A row that was read before its write and still lost met another writer.
      if (contention) contended++;
      pending = [...lost, ...later];
    }

    if (rejectedDocs.length > 0) conflicts.push(...(await this.authoritativeStates(rejectedDocs, permissions)));
    return { conflicts, rejected };
  }

  /**
   * Applies rows for distinct documents; returns the rows that lost a race and must be
   * re-evaluated, and whether any of them had been read (another writer won: contention).
   *
   * Rows read first: an id may be taken by a tombstone (kept beside the documents), or by a
   * document another service wrote, which is brought up to date before anything merges into it.
   * Except, in a push's first round, a row that says it creates a document (no assumed state):
   * it is planned as an insert without a read (on FerretDB a read by `$in` scans the whole
   * collection) and lands only if both the document's and the metadata's `_id` are free;
   * otherwise it comes back and is read like the others (writeDocuments).
   */
  private async applyOnce(rows: PushRow[], out: Outcome, optimistic: boolean): Promise<{ lost: PushRow[]; contention: boolean }> {
    const planned: Array<PlannedWrite & { row: PushRow }> = [];
    const unread = new Set(optimistic ? rows.filter((r) => r.assumedMasterState === null && !r.newDocumentState._deleted) : []);
    const { current } = await this.reconciler.repair(rows.filter((r) => !unread.has(r)).map((r) => this.store.storedId(r.newDocumentState.id)));
    for (const pushed of rows) {
      // (A row that loses a race goes back as it was pushed: it is read and completed again.)
      const stored = current.get(idKey(this.store.storedId(pushed.newDocumentState.id)));
      const row = this.withHiddenFields(pushed, stored, out.permissions);
      const { newDocumentState: doc, assumedMasterState: assumed } = row;
      if (doc._deleted && (!stored || stored._sync.deleted || !inSet(out.permissions.read, stored))) {
        // Nothing this user may know of to delete (already deleted: a retry). A delete of a free
        // id is a write like an insert: its tombstone must match the type and the role's insert
        // rights (a device deleted what it created offline). A delete of a document the user may
        // not read gets the same checks and the same answer, and writes nothing.
        const retry = stored !== undefined && inSet(out.permissions.read, stored);
        const refusal = retry ? null : this.tombstoneRefusal(doc, out.permissions);
        if (refusal) this.refuse(out, stored, doc, refusal);
        else if (!stored) planned.push({ row: pushed, doc: { ...withoutStamps(doc), _deleted: true }, replaces: null, stamps: {} });
        continue;
      }
      if (STAMPS_FIELD in doc) {
        // Permissions first: no merge work for a document this user may not change.
        const denial = preMergeDenial(out.permissions, this.store.model, stored, doc);
        if (denial) {
          this.refuse(out, stored, doc, permissionDenied(denial, this.store.model, doc.id));
          continue;
        }
        const merged = this.planMerge(row, stored, out);
        if (merged) planned.push({ ...merged, row: pushed });
        continue;
      }
      // Already applied: a retried push (acknowledged only to a user who may see the document).
      if (stored && sameState(this.stateOf(doc), this.stateOfStored(stored)) && inSet(out.permissions.read, stored)) continue;
      const denial = writeDenial(out.permissions, this.store.model, stored, doc);
      if (denial) {
        this.refuse(out, stored, doc, permissionDenied(denial, this.store.model, doc.id));
        continue;
      }
      if (!stored || (assumed && typeof assumed === 'object' && sameState(this.stateOf(assumed), this.stateOfStored(stored)))) {
        const merged = this.planMerge(row, stored, out);
        if (merged) planned.push({ ...merged, row: pushed });
      } else {
        out.conflicts.push(this.visibleState(stored, doc, out.permissions));
      }
    }
    if (planned.length === 0) return { lost: [], contention: false };

    for (const p of planned) if (unread.has(p.row)) p.unread = true;
    const written = await this.write(planned);
    planned.forEach((p, i) => written[i] && p.reply && out.conflicts.push(p.reply));
    const lost = planned.filter((_, i) => !written[i]);
    return { lost: lost.map((p) => p.row), contention: lost.some((p) => !p.unread) };
  }

  /**
   * The change merged into the stored document (protocol/merge.ts, for every write). A stamped change
   * is merged, not compared, so concurrent edits of different fields both stay. An unstamped one
   * (RxDB's stock plugin, plain mutations) comes here only when made on top of the stored state
   * (or as an insert): the gateway stamps what it changes. Null when there is nothing to write.
   */
  private planMerge(row: PushRow, stored: StoredDocument | undefined, out: Outcome): (PlannedWrite & { row: PushRow }) | null {
    const stamped = STAMPS_FIELD in row.newDocumentState;
    const doc = withoutStamps(row.newDocumentState);
    const server: Version | null = stored ? { doc: this.store.toWire(stored, false), stamps: stored._sync.stamps ?? {} } : null;
    const stamps = stamped ? this.clientStamps(row.newDocumentState) : this.gatewayStamps(server, doc);
    const base = row.assumedMasterState ? withoutStamps(row.assumedMasterState) : null;
    // Made on top of the stored state, or concurrently with another change?
    const concurrent = stamped && (!stored || !base || !sameState(this.stateOf(base as SyncDocument), this.stateOfStored(stored)));
    const merged = merge(server, { doc, stamps }, { strategy: this.conflicts.strategy, base, concurrent, fields: this.fields });
    const mergedDoc = { ...merged.doc, id: doc.id } as SyncDocument;
    const mergedWire = { ...mergedDoc, [STAMPS_FIELD]: merged.stamps } as SyncDocument;
    if (stored && sameState(this.stateOf(mergedDoc), this.stateOfStored(stored)) && isDeepStrictEqual(merged.stamps, stored._sync.stamps ?? {})) {
      // Nothing new (a retry, or a change that lost everywhere): answer with the stored state.
      if (!sameState(this.stateOf(doc), this.stateOfStored(stored))) out.conflicts.push(this.visibleState(stored, row.newDocumentState, out.permissions));
      return null;
    }
    // A set's state can name elements the pushed value did not: check what will be stored.
    const violation = mergedDoc._deleted ? null : this.schemaViolation(mergedDoc, out.permissions);
    if (violation) {
      this.refuse(out, stored, row.newDocumentState, violation);
      return null;
    }
    const denial = writeDenial(out.permissions, this.store.model, stored, mergedDoc);
    if (denial) {
      this.refuse(out, stored, row.newDocumentState, permissionDenied(denial, this.store.model, row.newDocumentState.id));
      return null;
    }
    // (Unstamped writers learn a normalized set from the change feed, like any write: a plain
    // mutation would take a reply for a conflict.) Stamps that differ from the pushed ones (pulled
    // back from a clock ahead, or the server's kept) are replied too: the client must hold the
    // stamps the server holds, as it compares later states with them (client-sdk/stamps.ts).
    const reply =
      !stamped || (sameState(this.stateOf(doc), this.stateOf(mergedDoc)) && isDeepStrictEqual(merged.stamps, row.newDocumentState[STAMPS_FIELD] ?? {}))
        ? undefined
        : out.permissions.project(mergedWire);
    return { row, doc: mergedDoc, replaces: stored ?? null, stamps: merged.stamps, reply };
  }

  /**
   * The client's stamps, with any too far in the future pulled back to the allowed skew (its
   * counter kept: a clock that observes one at its maximum moves on to the next millisecond).
   * Counter and set states are left alone: they never compare different devices' stamps, and
   * no clock observes another device's set stamps (gatewayStamps). checkRow has checked them all.
   */
  private clientStamps(doc: SyncDocument): Stamps {
    const limit = Date.now() + this.conflicts.maxClockSkewMs;
    return Object.fromEntries(
      Object.entries((doc[STAMPS_FIELD] as Stamps | undefined) ?? {}).flatMap(([path, stamp]): Array<[string, Stamps[string]]> => {
        if (typeof stamp !== 'string') return [[path, stamp]];
        const parsed = parseStamp(stamp);
        if (!parsed) return []; // refused by checkRow already; never trusted to parse
        return [[path, parsed.wall > limit ? formatStamp(limit, parsed.counter, parsed.node) : stamp]];
      }),
    );
  }

  /**
   * Stamps for a change that came without, made on top of `server`: the gateway's clock (moved
   * past every stored stamp first, so the change is later than what it was made on) on what
   * changed; a counter's difference counted as the server's; a set's additions and removals.
   */
  private gatewayStamps(server: Version | null, doc: SyncDocument): Stamps {
    const previous = server?.stamps ?? {};
    if (doc._deleted) return previous;
    // Stored stamps are at most the skew ahead (clientStamps), plus the millisecond a counter
    // overflow adds; the clock follows nothing further. Other devices' set stamps are never
    // compared with ours, so they do not move the clock.
    for (const stamp of allStamps(previous, this.clock.node)) this.clock.observe(stamp, this.conflicts.maxClockSkewMs + 1_000);
    return recordChange(this.fields, server?.doc ?? {}, doc, previous, () => this.clock.tick(), SERVER_NODE) ?? previous;
  }

  /**
   * Writes in parts, each under its own sequence lease (a lease held for the whole of a big push
   * on a slow store would outlive its TTL). Returns, per planned write, whether it landed (false:
   * another writer changed the document first).
   */
  private async write(planned: PlannedWrite[]): Promise<boolean[]> {
    const landed: boolean[] = [];
    for (let start = 0; start < planned.length; ) {
      // Updates are what is slow (inserts go in one command), so they are what a part counts.
      let end = start;
      let updates = 0;
      for (; end < planned.length && (updates < this.partSize || planned[end]!.replaces === null); end++) {
        if (planned[end]!.replaces !== null) updates++;
      }
      const began = Date.now();
      landed.push(...(await this.writeUnderOneLease(planned.slice(start, end))));
      start = end;
      this.adaptPartSize(updates, Date.now() - began);
    }
    return landed;
  }

  /**
   * Parts follow the store's speed: one that held its lease past a quarter of the TTL halves the
   * next, a quick full one doubles it (up to the store's limit).
   */
  private adaptPartSize(updates: number, elapsedMs: number): void {
    const target = this.store.leaseTtlMs / 4;
    if (elapsedMs > target) this.partSize = Math.max(1, Math.floor(Math.max(updates, 2) / 2));
    else if (elapsedMs < target / 4 && updates === this.partSize) this.partSize = Math.min(this.store.writesPerLease, this.partSize * 2);
  }

  private async writeUnderOneLease(planned: PlannedWrite[]): Promise<boolean[]> {
    const lease = await this.store.sequencer.allocate(planned.length);
    const updatedAt = new Date();
    const seqs = planned.map((_, i) => lease.lo + i);
    let landed: boolean[];
    try {
      landed = await this.writeDocuments(planned, seqs, updatedAt);
    } catch (error) {
      await lease.release();
      throw error;
    }
    const stillLeased = await lease.release();
    const writtenSeqs = planned.flatMap((p, i) => (landed[i] ? [{ id: this.store.storedId(p.doc.id), seq: seqs[i]! }] : []));
    if (!stillLeased) await this.resequence(writtenSeqs);
    if (writtenSeqs.length > 0) this.onCommitted();
    return landed;
  }

  /**
   * Writes the documents, then the metadata of those that landed. Returns, per planned write,
   * whether it landed: an insert whose `_id` was taken, or an update of a document that is gone,
   * met another service's write (the next round reads and repairs it).
   *
   * An update sets and unsets only the fields the merge changed, and adds a counter's
   * difference with `$inc`: another service's write that lands between this push's read and
   * its write keeps its other fields and its increments (the repair that its report triggers
   * then stamps what it changed; reconcile.ts).
   */
  private async writeDocuments(planned: PlannedWrite[], seqs: number[], updatedAt: Date): Promise<boolean[]> {
    const docOps: AnyBulkWriteOperation<PlainDocument>[] = [];
    const opOf: Array<number | null> = [];
    const metas = planned.map(({ doc, replaces, stamps }, i): MetaDocument => {
      const _id = this.store.storedId(doc.id);
      const deleted = doc._deleted === true;
      const plain = deleted ? null : ({ ...this.store.outsideFields(replaces), ...this.store.toStored(doc), _id } as PlainDocument);
      const update = plain && replaces ? this.fieldUpdate(replaces, plain) : null;
      const op: AnyBulkWriteOperation<PlainDocument> | null = plain
        ? replaces
          ? update && { updateOne: { filter: byId(_id), update } }
          : ({ insertOne: { document: plain } } as AnyBulkWriteOperation<PlainDocument>)
        : replaces
          ? { deleteOne: { filter: byId(_id) } }
          : null; // the tombstone of an id the store never had
      opOf.push(op ? docOps.push(op) - 1 : null);
      const state = plain ? this.store.queryableSnapshot(plain) : (replaces?._sync.state ?? this.store.queryableSnapshot({ ...this.store.toStored(doc), _id }));
      return toMeta(_id, { seq: seqs[i]!, updatedAt, deleted, state, ...this.store.history(replaces), stamps, hashes: plain ? this.store.fieldHashes(plain) : {}, invalid: null }, plain);
    });
    // Recorded before the write: its report from the oplog can come before the write returns, and
    // must not wait for these documents' locks. (A write that does not land is read again and
    // repaired by the next round, whatever the report did.)
    for (const meta of metas) this.store.wrote(meta._id, meta);
    // A crash between a document and its metadata leaves this record, and the next repair
    // completes the write with its stamps (reconcile.ts) rather than stamping it as another
    // service's change: a device that pushes it again must not count a counter twice. Only a
    // counter's change needs it: every other write, stamped anew and applied again, comes out
    // the same.
    const pending = metas.flatMap((meta, i) => (this.changesCounter(planned[i]!.replaces, meta) ? [{ _id: meta._id, base: planned[i]!.replaces?._sync.seq ?? null, meta }] : []));
    await this.store.recordPending(pending);
    const { matched, duplicates } = await this.store.writeMany(this.store.documents, docOps);
    const updating = planned.flatMap((p, i) => (p.replaces && !p.doc._deleted && opOf[i] !== null ? [i] : []));
    // An update that matched nothing found its document deleted by another service.
    const present = matched < updating.length ? (await this.store.readRaw(updating.map((i) => metas[i]!._id))).docs : null;
    const landed = planned.map((p, i) => {
      const op = opOf[i];
      if (op !== null && op !== undefined && duplicates.has(op)) return false;
      return !(present && updating.includes(i) && !present.has(idKey(metas[i]!._id)));
    });
    // A new document's metadata is inserted (one command for all: an update is a statement each
    // on FerretDB); one that exists after all (written by another instance) is replaced.
    const replace = (m: MetaDocument) => ({ replaceOne: { filter: byId<MetaDocument>(m._id), replacement: m, upsert: true } }) as AnyBulkWriteOperation<MetaDocument>;
    const insert = (m: MetaDocument) => ({ insertOne: { document: m } }) as unknown as AnyBulkWriteOperation<MetaDocument>;
    const landedAt = planned.flatMap((_, i) => (landed[i] ? [i] : []));
    const taken = [...(await this.store.writeMany(this.store.meta, landedAt.map((i) => (planned[i]!.replaces ? replace(metas[i]!) : insert(metas[i]!))))).duplicates].map((k) => landedAt[k]!);
    const replaced = taken.filter((i) => !planned[i]!.unread);
    if (replaced.length > 0) await this.store.writeMany(this.store.meta, replaced.map((i) => replace(metas[i]!)));
    // An unread insert whose metadata exists is read in the next round. Its document is taken
    // back only over a tombstone (the id was deleted: the row must merge with it). Metadata of a
    // live document came from a write that completed this one (a repair of its pending record)
    // or raced it: deleting the document there would lose a write that metadata says is stored.
    const unreadTaken = taken.filter((i) => planned[i]!.unread);
    for (const i of unreadTaken) landed[i] = false;
    const tombstones = unreadTaken.length > 0 ? await this.store.meta.find({ ...byIds<MetaDocument>(unreadTaken.map((i) => metas[i]!._id)), deleted: true }, { projection: { _id: 1 } }).toArray() : [];
    const undone = new Set(tombstones.map((m) => idKey(m._id)));
    if (undone.size > 0) await this.store.writeMany(this.store.documents, unreadTaken.filter((i) => undone.has(idKey(metas[i]!._id))).map((i) => ({ deleteOne: { filter: byId<PlainDocument>(metas[i]!._id) } })));
    this.store.clearPending(pending);
    return landed;
  }

  /** Whether this write changes a counter's value (by the field's hash). */
  private changesCounter(stored: StoredDocument | null, next: MetaDocument): boolean {
    if (next.deleted) return false;
    return this.counterFields.some((field) => stored?._sync.hashes?.[field] !== next.hashes?.[field]);
  }

  /** The update from the stored document to `next`, field by field; null when no field changed. */
  private fieldUpdate(stored: StoredDocument, next: PlainDocument): UpdateFilter<PlainDocument> | null {
    const set: Record<string, unknown> = {};
    const unset: Record<string, ''> = {};
    const inc: Record<string, number> = {};
    for (const { name, merge } of this.store.model.fields) {
      if (name === PRIMARY_KEY) continue;
      const had = Object.hasOwn(stored, name);
      const has = Object.hasOwn(next, name) && next[name] !== undefined;
      if (!has) {
        if (had) unset[name] = '';
        continue;
      }
      if (had && canonical(stored[name]) === canonical(next[name])) continue;
      const from = numberValue(stored[name]);
      const to = numberValue(next[name]);
      if (merge === 'counter' && from !== null && to !== null) inc[name] = to - from;
      else set[name] = next[name];
    }
    const update: UpdateFilter<PlainDocument> = {};
    if (Object.keys(set).length > 0) update.$set = set;
    if (Object.keys(unset).length > 0) update.$unset = unset;
    if (Object.keys(inc).length > 0) update.$inc = inc as UpdateFilter<PlainDocument>['$inc'];
    return Object.keys(update).length > 0 ? update : null;
  }

  /**
   * Our lease expired before the write committed, so a reader may already have passed these
   * sequences: give the documents fresh sequences above every reader's horizon.
   */
  private async resequence(written: Array<{ id: StoredId; seq: number }>): Promise<void> {
    // In parts of the current part size, each under its own lease, like the write itself.
    for (let start = 0; start < written.length; start += this.partSize) await this.resequencePart(written.slice(start, start + this.partSize));
  }

  private async resequencePart(written: Array<{ id: StoredId; seq: number }>): Promise<void> {
    let items = written;
    for (let attempt = 0; items.length > 0; attempt++) {
      // Each attempt is one small update per document; if even that cannot finish within the
      // lease's TTL the store is failing, and retrying would only push the sequence on.
      if (attempt === MAX_RESEQUENCE_ATTEMPTS) throw new PushError(`could not re-sequence ${items.length} writes within the lease TTL ${MAX_RESEQUENCE_ATTEMPTS} times`);
      const lease = await this.store.sequencer.allocate(items.length);
      const next = items.map((w, i) => ({ id: w.id, seq: lease.lo + i }));
      // (The documents' locks are held: no later write can have moved them on meanwhile.)
      await this.store.writeMany(
        this.store.meta,
        items.map((w, i) => ({ updateOne: { filter: byId<MetaDocument>(w.id), update: { $set: { seq: next[i]!.seq } } } })),
      );
      if (await lease.release()) return;
      items = next;
    }
  }

  /** Refuses a pushed row: the reason, and the state the client must hold instead. */
  private refuse(out: Outcome, stored: StoredDocument | undefined, pushed: SyncDocument, reason: Omit<PushRejection, 'id'>): void {
    out.rejected.push({ id: pushed.id, ...reason });
    out.conflicts.push(this.visibleState(stored, pushed, out.permissions));
  }

  /** What a client must hold instead of a document it pushed that was refused. */
  private async authoritativeStates(docs: SyncDocument[], permissions: CollectionPermissions): Promise<SyncDocument[]> {
    const stored = await this.store.findByIds(docs.map((d) => this.store.storedId(d.id)));
    return docs.map((doc) => {
      const current = stored.get(idKey(this.store.storedId(doc.id)));
      if (!current && permissions.unrestricted) return { ...doc, _deleted: true };
      return this.visibleState(current, doc, permissions);
    });
  }

  /**
   * The server state, as the user who pushed `pushed` may see it: the document (readable fields
   * only, with stamps if the client stamps its changes), or a removal.
   */
  private visibleState(stored: StoredDocument | undefined, pushed: SyncDocument, permissions: CollectionPermissions): SyncDocument {
    if (!stored || !inSet(permissions.read, stored)) return { id: pushed.id, _deleted: true };
    const visible = permissions.project(this.store.toWire(stored));
    return STAMPS_FIELD in pushed ? visible : withoutStamps(visible);
  }

  /**
   * How a document breaks its type, or null. Fields the user may not read are not checked: a
   * push cannot name them (they come from the stored document), and telling what is wrong with a
   * stored value would tell the value.
   */
  private schemaViolation(doc: SyncDocument, permissions: CollectionPermissions): Omit<PushRejection, 'id'> | null {
    const violation = this.validate(doc, (field) => !permissions.readableField(field));
    if (!violation) return null;
    return { code: REJECTION_CODES.SCHEMA_VIOLATION, field: violation.field, message: violation.message, realmCode: null };
  }

  /** Why the tombstone of a document the server does not have may not be stored, or null. */
  private tombstoneRefusal(doc: SyncDocument, permissions: CollectionPermissions): Omit<PushRejection, 'id'> | null {
    const live = { ...doc, _deleted: false } as SyncDocument;
    const violation = this.schemaViolation(live, permissions);
    if (violation) return violation;
    const denial = writeDenial(permissions, this.store.model, undefined, live) ?? accessDenial(permissions, this.store.model, undefined, doc);
    return denial ? permissionDenied(denial, this.store.model, doc.id) : null;
  }

  /** The row with the stored values of fields this user may not read (rules/permissions.ts). */
  private withHiddenFields(row: PushRow, stored: StoredDocument | undefined, permissions: CollectionPermissions): PushRow {
    const model = this.store.model;
    const assumed = row.assumedMasterState ? withHiddenFieldsOf(permissions, model, row.assumedMasterState, stored) : row.assumedMasterState;
    const next = withHiddenFieldsOf(permissions, model, row.newDocumentState, stored);
    return next === row.newDocumentState && assumed === row.assumedMasterState ? row : { assumedMasterState: assumed, newDocumentState: next };
  }

  /** The stored document's state as the protocol compares it: the type's fields only. */
  private stateOfStored(stored: StoredDocument): Record<string, unknown> {
    return this.stateOf(this.store.toWire(stored, false));
  }

  private stateOf(doc: SyncDocument): Record<string, unknown> {
    // Lenient: an assumedMasterState is not validated, and a state that does not convert is just unequal.
    const { id, [DELETED_FIELD]: _deleted, [STAMPS_FIELD]: _stamps, ...fields } = doc;
    return { id, ...toStoredFields(this.store.model.fields, fields, { lenient: true }), _deleted: doc._deleted === true };
  }
}



/** Realm's reason for a write outside the client's subscriptions. */
const OUTSIDE_VIEW = 'object is outside of the current query view';

/**
 * Why the rules refused a row (a compensating write), as a metric label: outside the client's
 * subscriptions, a field the role may not write, or the role's document rights; null for
 * refusals that are not compensating writes (schema, malformed rows).
 */
export function compensatingReason(rejection: Pick<PushRejection, 'code' | 'field' | 'message'>): 'outside-subscriptions' | 'field-permission' | 'role' | null {
  if (rejection.code !== REJECTION_CODES.PERMISSION_DENIED) return null;
  if (rejection.message.endsWith(OUTSIDE_VIEW)) return 'outside-subscriptions';
  return rejection.field === null ? 'role' : 'field-permission';
}

function permissionDenied(denial: WriteDenial, model: CollectionModel, id: unknown): Omit<PushRejection, 'id'> {
  return { code: REJECTION_CODES.PERMISSION_DENIED, field: denial.field, message: denialReason(model, id, denial), realmCode: COMPENSATING_WRITE_CODE };
}

function checkRow(row: unknown, store: CollectionStore): PushRejection | null {
  const collection = store.model;
  const bad = (message: string, id: string | null = null): PushRejection => ({ id, code: REJECTION_CODES.BAD_ROW, field: null, message, realmCode: null });
  if (typeof row !== 'object' || row === null) return bad('push row must be an object');
  const { newDocumentState: doc, assumedMasterState: assumed } = row as Record<string, unknown>;
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return bad('newDocumentState must be an object');
  const id = (doc as Record<string, unknown>).id;
  if (typeof id !== 'string' || id.length === 0) return bad('newDocumentState.id must be a non-empty string');
  try {
    store.storedId(id);
  } catch (error) {
    return bad(`newDocumentState.id: ${(error as Error).message}`, id);
  }
  if (assumed !== null && assumed !== undefined && (typeof assumed !== 'object' || Array.isArray(assumed))) {
    return bad('assumedMasterState must be an object or null', id);
  }
  const deleted = (doc as Record<string, unknown>)._deleted;
  if (deleted !== undefined && typeof deleted !== 'boolean') return bad('newDocumentState._deleted must be a boolean', id);
  const stamps = (doc as Record<string, unknown>)[STAMPS_FIELD];
  const problem = stamps === undefined ? null : stampsProblem(collection, stamps);
  if (problem) return bad(`newDocumentState.${STAMPS_FIELD}: ${problem}`, id);
  // A key through which a write reaches shared prototypes is no field of any type.
  for (const [name, state] of [['newDocumentState', doc], ['assumedMasterState', assumed]] as const) {
    const unsafe = unsafeKeyPath(state);
    if (unsafe) return bad(`${name}.${unsafe}: "${unsafe.split('.').pop()}" may not be used as a key`, id);
  }
  return null;
}

const silentLog: Logger = pino({ enabled: false });

/** A stored number of any BSON type as a number, or null. */
function numberValue(value: unknown): number | null {
  if (typeof value === 'number') return value;
  const type = (value as { _bsontype?: string } | null)?._bsontype;
  return type === 'Int32' || type === 'Double' ? Number(value!.valueOf()) : null;
}
