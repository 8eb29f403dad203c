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
import { syncOperations } from '../protocol/operations.ts';
import type { LocalDocument } from './database.ts';
import type { SyncError } from './errors.ts';
import type { Transport } from './transport.ts';
import type { CollectionView } from './view.ts';
import type { HybridLogicalClock } from '../protocol/hlc.ts';
import { fromWire, toWire } from './stamps.ts';

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
}

export interface CollectionReplication {
  state: RxReplicationState<LocalDocument, Checkpoint>;
  stop(): Promise<void>;
}

export function replicateCollection(o: CollectionReplicationOptions): CollectionReplication {
  const ops = syncOperations(o.model);
  const { view } = o;
  const stream$ = new Subject<RxReplicationPullStreamItem<LocalDocument, Checkpoint>>();
  const local = (doc: SyncDocument) => fromWire(doc, o.clock);

  let stopStream = () => {};
  const subscribeStream = () => {
    stopStream();
    stopStream = o.transport.subscribeLive(
      ops.stream,
      { view: view.queries, stamps: true },
      (data) => {
        const event = data[ops.fields.stream] as StreamEvent;
        if (event.resync || !event.checkpoint) {
          stream$.next('RESYNC');
          return;
        }
        o.onDownloaded(event.documents.length);
        stream$.next({ documents: event.documents.map(local) as never, checkpoint: event.checkpoint });
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
    for (;;) {
      const data = await o.transport.request(ops.pull, { checkpoint: checkpoint ? { seq: checkpoint.seq } : null, limit: batchSize, view: view.queries, stamps: true });
      const bulk = data[ops.fields.pull] as PullBulk;
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

  const localDocumentsOutsideView = async (): Promise<SyncDocument[]> => {
    const inView = new Query({ $or: view.queries!.length > 0 ? view.queries! : [{ $nor: [{}] }] });
    const local = await o.collection.find().exec();
    return local.filter((d) => !inView.test(d.toJSON())).map((d) => ({ ...(d.toMutableJSON() as LocalDocument), _deleted: true }));
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
        if (!view.flexible) {
          const { documents, checkpoint: next } = await pullChanges(checkpoint ?? null, batchSize);
          return { documents: documents.map(local) as never, checkpoint: next };
        }
        const generation = view.generation;
        let from: Checkpoint | null = checkpoint ?? (view.floor === null ? null : { seq: view.floor });
        const documents: SyncDocument[] = [];
        if (view.purgeDue) {
          documents.push(...(await localDocumentsOutsideView()));
          if (view.generation === generation) view.purgeDue = false;
          o.onViewProgress(0, 0);
        }
        const bootstrapped = await fetchBootstrapPages(from, batchSize);
        documents.push(...bootstrapped.documents);
        from = bootstrapped.from;
        if (documents.length >= batchSize) return { documents: documents.map(local) as never, checkpoint: from ?? { seq: 0 } };
        const changes = await pullChanges(from, batchSize - documents.length);
        documents.push(...changes.documents);
        if (view.pending.length === 0 && !changes.hasMore) view.markCaughtUp(generation);
        return { documents: documents.map(local) as never, checkpoint: changes.checkpoint };
      },
    },
    push: {
      batchSize: o.pushBatchSize,
      handler: async (rows) => {
        const wireRows: PushRow[] = rows.map((row) => ({
          assumedMasterState: toWire(row.assumedMasterState as Record<string, unknown> | undefined),
          newDocumentState: toWire(row.newDocumentState as Record<string, unknown>)!,
        }));
        const data = await o.transport.mutate(ops.push, { rows: wireRows });
        const result = data[ops.fields.push] as PushResult;
        o.onUploaded(rows.length - result.conflicts.length);
        for (const rejection of result.rejected) o.onError({ kind: 'rejected', collection: o.model.name, ...rejection });
        return result.conflicts.map(local) as never;
      },
    },
  });
  state.error$.subscribe((error) => o.onError({ kind: 'replication', collection: o.model.name, message: error.message }));

  return {
    state,
    async stop() {
      stopWatchingView();
      stopStream();
      stream$.complete();
      await state.cancel();
    },
  };
}
