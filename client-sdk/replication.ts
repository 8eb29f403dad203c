// Replicates one RxDB collection with the gateway through RxDB's replication protocol: pull by
// checkpoint, push with conflicts, and the stream (see PROTOCOL.md).
//
// With Flexible Sync, the pull handler also does the work a subscription change leaves (see
// view.ts): it purges local documents that left the view and returns bootstrap pages before
// the regular pull. Doing it there, and not by writing to the collection from outside, keeps it
// in RxDB's order of downstream tasks: purges and bootstraps are applied as changes from the
// server (never pushed back), and nothing older overwrites anything newer.
import { replicateRxCollection, type RxReplicationState } from 'rxdb/plugins/replication';
import type { RxCollection, RxReplicationPullStreamItem } from 'rxdb';
import { Query } from 'mingo';
import { Subject } from 'rxjs';
import type { BootstrapPage, Checkpoint, PullBulk, PushResult, PushRow, StreamEvent, SyncDocument } from '../protocol/messages.ts';
import type { CollectionModel } from '../protocol/model.ts';
import { rewriteFilter, type Filter } from '../protocol/filter.ts';
import { collectionNeedsMatchForm, matchForm, matchValue } from '../protocol/match-form.ts';
import { syncOperations } from '../protocol/operations.ts';
import type { LocalDocument } from './database.ts';
import type { SyncError } from './errors.ts';
import { GraphQLRequestError, type Transport } from './transport.ts';
import type { ClientResetReason } from './reset.ts';
import type { CollectionView } from './view.ts';
import type { HybridLogicalClock } from '../protocol/hlc.ts';
import { fromWire, isPassedState, toWire } from './stamps.ts';
import { mergedFields } from '../protocol/field-state.ts';

export interface CollectionReplicationOptions {
  collection: RxCollection<LocalDocument>;
  model: CollectionModel;
  transport: Transport;
  view: CollectionView;
  /** The device's clock: local changes are stamped with it (stamps.ts). */
  clock: HybridLogicalClock;
  /** Identifies this replication's checkpoints in the local database. */
  identifier: string;
  pullBatchSize: number;
  pushBatchSize: number;
  retryTimeMs: number;
  onDownloaded: (count: number) => void;
  onUploaded: (count: number) => void;
  onError: (error: SyncError) => void;
  /** Bootstrap documents arrived (and, on a first page, the estimate of all to come); the view's state moved. */
  onViewProgress: (received: number, estimated: number) => void;
  /** The gateway answered CLIENT_RESET: this device's state cannot be continued (reset.ts). */
  onResetRequired: (reason: ClientResetReason, message: string) => void;
}

export interface CollectionReplication {
  state: RxReplicationState<LocalDocument, Checkpoint>;
  stop(): Promise<void>;
  /** Stops, and forgets the replication's state (checkpoints, what the server was last known to hold). */
  remove(): Promise<void>;
}

/** A stream event kept for the pull handler; a null checkpoint marks current states (a permission change). */
type ReceivedEvent = Pick<StreamEvent, 'documents' | 'checkpoint'>;

/** Stream documents kept for the pull handler before a pull from the gateway is cheaper. */
const MAX_RECEIVED_DOCUMENTS = 10_000;
/** Ids of documents pushed lately whose later-arriving changes are compared with the local state. */
const MAX_PUSHED_IDS = 10_000;

export function replicateCollection(o: CollectionReplicationOptions): CollectionReplication {
  const ops = syncOperations(o.model);
  const { view } = o;
  const stream$ = new Subject<RxReplicationPullStreamItem<LocalDocument, Checkpoint>>();
  const local = (doc: SyncDocument) => fromWire(doc, o.clock);

  // Stream events are not handed to RxDB: RxDB holds them back while it pushes and may then
  // apply one after a pull that went past it, an older version over a newer one. They wait in
  // `received`, RxDB is told to pull, and the pull handler answers from them (in RxDB's one
  // queue of downstream work, in order). That answer is complete once a pull from the gateway
  // has finished since the stream's last resync event: every later change comes on the stream.
  let received: ReceivedEvent[] = [];
  let receivedDocuments = 0;
  const keepReceived = (event: ReceivedEvent) => {
    received.push(event);
    receivedDocuments += event.documents.length;
  };
  const takeReceived = () => {
    const taken = received;
    received = [];
    receivedDocuments = 0;
    return taken;
  };
  /** Drops the changes received (a pull from the gateway will cover them), keeps current states. */
  const dropReceivedChanges = () => {
    for (const event of takeReceived()) if (event.checkpoint === null) keepReceived(event);
  };
  /** Bumped by each resync event; `caughtUp` is the one a pull from the gateway completed in. */
  let streamGeneration = 0;
  let caughtUp = -1;

  // Nothing is pushed before a pull of this run has been answered: a device whose state the
  // gateway cannot continue (CLIENT_RESET) must not write its old changes into the new history.
  let admit!: () => void;
  let refuse!: (error: Error) => void;
  const admitted = new Promise<void>((resolve, reject) => {
    admit = resolve;
    refuse = reject;
  });
  admitted.catch(() => {});
  let resetRequired = false;

  // The epoch of the history this replication follows (PROTOCOL.md, 3a), kept apart from RxDB's
  // checkpoint: RxDB stores none for an empty page and writes it without waiting, so a device
  // that has pulled may start again with no checkpoint. It then sends this epoch, and a reset
  // forced since is not missed. A stream event of another epoch (a reset forced while online)
  // makes the next pull ask the gateway, from the stored checkpoint: that pull is refused.
  const epochDocument = `tributary-epoch:${o.model.name}`;
  let knownEpoch: string | undefined;
  // (Never rejects: without it, pulls go on with the checkpoint alone.)
  const epochLoaded = o.collection.database
    .getLocal<{ identifier: string; epoch: string }>(epochDocument)
    .then((doc) => {
      const saved = doc?.toJSON().data;
      if (saved?.identifier === o.identifier) knownEpoch ??= saved.epoch;
    })
    .catch(() => {});
  const followEpoch = async (epoch: string | null | undefined) => {
    if (!epoch || epoch === knownEpoch) return;
    knownEpoch = epoch;
    await o.collection.database.upsertLocal(epochDocument, { identifier: o.identifier, epoch });
  };

  let stopStream = () => {};
  const subscribeStream = () => {
    stopStream();
    stopStream = o.transport.subscribeLive(
      ops.stream,
      { view: view.queries, stamps: true },
      (data) => {
        const event = data[ops.fields.stream] as StreamEvent;
        const otherEpoch = knownEpoch !== undefined && !!event.checkpoint?.epoch && event.checkpoint.epoch !== knownEpoch;
        if (event.resync || otherEpoch) {
          // The pull it asks for covers the changes received so far (not current states).
          streamGeneration++;
          dropReceivedChanges();
        } else {
          o.onDownloaded(event.documents.length);
          keepReceived({ documents: event.documents, checkpoint: event.checkpoint });
          // RxDB busy for long (a big push): past a bound, pull from the gateway instead, as
          // after a resync (a pull under way does not count: it may end before these changes).
          if (receivedDocuments > MAX_RECEIVED_DOCUMENTS) {
            streamGeneration++;
            dropReceivedChanges();
          }
        }
        stream$.next('RESYNC');
      },
      (error) => o.onError({ kind: 'replication', collection: o.model.name, message: error.message }),
    );
  };
  subscribeStream();
  // A new view: a new stream (its first event makes RxDB pull, which does the view's work).
  const stopWatchingView = view.onChange(subscribeStream);

  /** Documents changed after `from` through the view, without removals of documents not held. */
  const pullChanges = async (from: Checkpoint | null, batchSize: number): Promise<{ documents: SyncDocument[]; checkpoint: Checkpoint; hasMore: boolean }> => {
    const documents: SyncDocument[] = [];
    let checkpoint: Checkpoint | null = from;
    await epochLoaded;
    for (;;) {
      const epoch = checkpoint?.epoch ?? knownEpoch;
      const sent = checkpoint || epoch ? { seq: checkpoint?.seq ?? 0, ...(epoch ? { epoch } : {}) } : null;
      const data = await o.transport.request(ops.pull, { checkpoint: sent, limit: batchSize, view: view.queries, stamps: true });
      const bulk = data[ops.fields.pull] as PullBulk;
      await followEpoch(bulk.checkpoint.epoch);
      o.onDownloaded(bulk.documents.length);
      documents.push(...(view.flexible ? await withoutUnheldRemovals(bulk.documents) : bulk.documents));
      checkpoint = bulk.checkpoint;
      // Dropping removals may leave the page short; RxDB reads a short page as "done".
      if (!bulk.hasMore || documents.length >= batchSize) return { documents, checkpoint: bulk.checkpoint, hasMore: bulk.hasMore };
    }
  };

  const withoutUnheldRemovals = async (documents: SyncDocument[]): Promise<SyncDocument[]> => {
    const removals = documents.filter((d) => d._deleted).map((d) => d.id);
    if (removals.length === 0) return documents;
    const held = await o.collection.findByIds(removals).exec();
    return documents.filter((d) => !d._deleted || held.has(d.id));
  };

  // Matched as the gateway matches: Long and Decimal values by number, not by their spelling
  // (protocol/match-form.ts; dates are ISO strings of one form on both sides, queries.ts).
  const typed = collectionNeedsMatchForm(o.model);
  const inMatchForm = (query: Filter) => (typed ? rewriteFilter(o.model, query, { operand: (type, v) => (type === 'DateTime' ? v : matchValue(type, v, 'wire')) }) : query);
  const localDocumentsOutsideView = async (): Promise<SyncDocument[]> => {
    const inView = new Query({ $or: view.queries!.length > 0 ? view.queries!.map(inMatchForm) : [{ $nor: [{}] }] });
    const local = await o.collection.find().exec();
    return local
      .filter((d) => !inView.test(typed ? matchForm(o.model, d.toJSON() as Record<string, unknown>, 'wire') : d.toJSON()))
      .map((d) => ({ ...(d.toMutableJSON() as LocalDocument), _deleted: true }));
  };

  const fetchBootstrapPages = async (from: Checkpoint | null, batchSize: number): Promise<{ documents: SyncDocument[]; from: Checkpoint | null }> => {
    const documents: SyncDocument[] = [];
    while (view.pending.length > 0 && documents.length < batchSize) {
      const next = view.pending[0]!;
      const data = await o.transport.request(ops.bootstrap, {
        query: next.query,
        exclude: next.exclude,
        after: next.after,
        snapshot: next.snapshot,
        limit: batchSize,
        stamps: true,
      });
      const page = data[ops.fields.bootstrap] as BootstrapPage;
      // The set changed while this page was on its way: the next pull starts on the new view
      // (and its purge drops whatever of this page the new view does not hold).
      if (view.pending[0] !== next) return { documents: [...documents, ...page.documents], from };
      const firstPage = next.snapshot === null;
      if (firstPage) {
        next.snapshot = page.snapshot;
        next.estimatedTotal = page.estimatedTotal;
      }
      if (from === null && view.floor === null) view.floor = page.snapshot; // a first sync starts pulling here
      from ??= view.floor === null ? null : { seq: view.floor };
      next.received += page.documents.length;
      next.after = page.next;
      if (page.next === null) {
        view.pending.shift();
        view.held.push(next.query);
      }
      o.onDownloaded(page.documents.length);
      o.onViewProgress(page.documents.length, firstPage ? (page.estimatedTotal ?? 0) : 0);
      documents.push(...page.documents);
    }
    return { documents, from };
  };

  /** A pull from the gateway, with a view's purge and bootstraps first; `caughtUp` once at the horizon. */
  const pullFromGateway = async (from: Checkpoint | null, batchSize: number): Promise<{ documents: SyncDocument[]; checkpoint: Checkpoint; caughtUp: boolean }> => {
    if (!view.flexible) {
      const changes = await pullChanges(from, batchSize);
      return { documents: changes.documents, checkpoint: changes.checkpoint, caughtUp: !changes.hasMore };
    }
    const generation = view.generation;
    from ??= view.floor === null ? null : { seq: view.floor };
    const documents: SyncDocument[] = [];
    if (view.purgeDue) {
      documents.push(...(await localDocumentsOutsideView()));
      if (view.generation === generation) view.purgeDue = false;
      o.onViewProgress(0, 0);
    }
    const bootstrapped = await fetchBootstrapPages(from, batchSize);
    documents.push(...bootstrapped.documents);
    from = bootstrapped.from;
    if (documents.length >= batchSize) return { documents, checkpoint: from ?? { seq: 0 }, caughtUp: false };
    const changes = await pullChanges(from, batchSize - documents.length);
    documents.push(...changes.documents);
    const caughtUp = view.pending.length === 0 && !changes.hasMore;
    if (caughtUp) view.markCaughtUp(generation);
    return { documents, checkpoint: changes.checkpoint, caughtUp };
  };

  const fields = mergedFields(o.model);
  // Only a document this replication pushed can be held in a state past a change that arrives
  // (every other local state came from the gateway, in order): those are the ones read back.
  // Bounded: an echo comes within seconds, not after thousands of other pushes.
  const pushedIds = new Set<string>();
  const notePushed = (id: string) => {
    pushedIds.delete(id);
    pushedIds.add(id);
    if (pushedIds.size > MAX_PUSHED_IDS) pushedIds.delete(pushedIds.values().next().value!);
  };
  /** The changes without the states this device has gone past (stamps.ts, isPassedState). */
  const withoutPassedStates = async (documents: SyncDocument[]): Promise<SyncDocument[]> => {
    const pushed = documents.filter((d) => pushedIds.has(d.id));
    if (pushed.length === 0) return documents;
    const held = await o.collection.findByIds(pushed.map((d) => d.id)).exec();
    if (held.size === 0) return documents;
    return documents.filter((d) => {
      const local = held.get(d.id);
      return !local || !isPassedState(fields, d, toWire(local.toJSON() as Record<string, unknown>)!);
    });
  };

  /**
   * The stream events received since, as one pull answer. An event at or below the checkpoint is
   * older than what was stored since and is dropped; one without a checkpoint holds current
   * states (a permission change) and is always applied, keeping the checkpoint. A change this
   * device has gone past is dropped (withoutPassedStates).
   */
  const fromReceived = async (from: Checkpoint | null) => {
    const documents: SyncDocument[] = [];
    const changes = new Set<SyncDocument>();
    let checkpoint = from ?? { seq: 0 };
    for (const event of takeReceived()) {
      if (event.checkpoint && event.checkpoint.seq <= checkpoint.seq) continue;
      documents.push(...event.documents);
      if (event.checkpoint) {
        checkpoint = event.checkpoint;
        for (const doc of event.documents) changes.add(doc);
      }
    }
    const kept = new Set(await withoutPassedStates([...changes]));
    return { documents: documents.filter((d) => !changes.has(d) || kept.has(d)).map(local) as never, checkpoint };
  };

  const state = replicateRxCollection<LocalDocument, Checkpoint>({
    collection: o.collection,
    replicationIdentifier: o.identifier,
    live: true,
    retryTime: o.retryTimeMs,
    waitForLeadership: false,
    autoStart: true,
    pull: {
      batchSize: o.pullBatchSize,
      stream$: stream$.asObservable(),
      handler: async (checkpoint, batchSize) => {
        const viewWorkDue = view.flexible && (view.purgeDue || view.pending.length > 0);
        if (caughtUp === streamGeneration && !viewWorkDue) return fromReceived(checkpoint ?? null);
        // Changes received before this pull are in it (PROTOCOL.md, section 4); current states
        // (a permission change) are not, and go first. Events received from now on are kept.
        const generation = streamGeneration;
        const currentStates = takeReceived().flatMap((e) => (e.checkpoint === null ? e.documents : []));
        const result = await pullFromGateway(checkpoint ?? null, batchSize).catch((error: unknown) => {
          const reset = error instanceof GraphQLRequestError ? error.graphQLErrors.find((e) => e.extensions?.code === 'CLIENT_RESET') : undefined;
          if (reset) {
            resetRequired = true;
            o.onResetRequired(reset.extensions!.reason as ClientResetReason, reset.message);
          }
          throw error;
        });
        admit();
        if (result.caughtUp && generation === streamGeneration) caughtUp = generation;
        return { documents: [...currentStates, ...(await withoutPassedStates(result.documents))].map(local) as never, checkpoint: result.checkpoint };
      },
    },
    push: {
      batchSize: o.pushBatchSize,
      handler: async (rows) => {
        await admitted;
        const wireRows: PushRow[] = rows.map((row) => ({
          assumedMasterState: toWire(row.assumedMasterState as Record<string, unknown> | undefined),
          newDocumentState: toWire(row.newDocumentState as Record<string, unknown>)!,
        }));
        for (const row of wireRows) notePushed(row.newDocumentState.id);
        // With Flexible Sync, a write must stay inside the subscriptions (Realm's "query view").
        const data = await o.transport.mutate(ops.push, { rows: wireRows, view: view.flexible ? view.queries : null });
        const result = data[ops.fields.push] as PushResult;
        o.onUploaded(rows.length - result.conflicts.length);
        for (const rejection of result.rejected) o.onError({ kind: 'rejected', collection: o.model.name, ...rejection });
        return result.conflicts.map(local) as never;
      },
    },
  });
  // (A pull refused with CLIENT_RESET is reported as the reset, not again as a failure.)
  state.error$.subscribe((error) => resetRequired || o.onError({ kind: 'replication', collection: o.model.name, message: error.message }));

  const stopSyncing = () => {
    refuse(new Error('replication stopped'));
    stopWatchingView();
    stopStream();
    stream$.complete();
  };
  return {
    state,
    async stop() {
      stopSyncing();
      await state.cancel();
    },
    async remove() {
      stopSyncing();
      await state.remove();
    },
  };
}
