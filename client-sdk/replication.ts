// Replicates one RxDB collection with the gateway through RxDB's replication protocol:
// pull by checkpoint, push with conflicts, and the stream (see PROTOCOL.md).
import { replicateRxCollection, type RxReplicationState } from 'rxdb/plugins/replication';
import type { RxCollection, RxReplicationPullStreamItem } from 'rxdb';
import { Subject } from 'rxjs';
import type { Checkpoint, PullBulk, PushResult, PushRow, StreamEvent, SyncDocument } from '../protocol/messages.ts';
import type { CollectionModel } from '../protocol/model.ts';
import { syncOperations } from '../protocol/operations.ts';
import type { LocalDocument } from './database.ts';
import type { SyncError } from './errors.ts';
import type { Transport } from './transport.ts';

export interface CollectionReplicationOptions {
  collection: RxCollection<LocalDocument>;
  model: CollectionModel;
  transport: Transport;
  /** Identifies this replication's checkpoints in the local database. */
  identifier: string;
  pullBatchSize: number;
  pushBatchSize: number;
  retryTimeMs: number;
  onDownloaded: (count: number) => void;
  onUploaded: (count: number) => void;
  onError: (error: SyncError) => void;
}

export interface CollectionReplication {
  state: RxReplicationState<LocalDocument, Checkpoint>;
  stop(): Promise<void>;
}

export function replicateCollection(o: CollectionReplicationOptions): CollectionReplication {
  const ops = syncOperations(o.model);
  const stream$ = new Subject<RxReplicationPullStreamItem<LocalDocument, Checkpoint>>();

  const stopStream = o.transport.subscribeLive(
    ops.stream,
    (data) => {
      const event = data[ops.fields.stream] as StreamEvent;
      if (event.resync || !event.checkpoint) {
        stream$.next('RESYNC');
        return;
      }
      o.onDownloaded(event.documents.length);
      stream$.next({ documents: event.documents as SyncDocument[] as never, checkpoint: event.checkpoint });
    },
    (error) => o.onError({ kind: 'replication', collection: o.model.name, message: error.message }),
  );

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
        const data = await o.transport.request(ops.pull, { checkpoint: checkpoint ? { seq: checkpoint.seq } : null, limit: batchSize });
        const bulk = data[ops.fields.pull] as PullBulk;
        o.onDownloaded(bulk.documents.length);
        return { documents: bulk.documents as never, checkpoint: bulk.checkpoint };
      },
    },
    push: {
      batchSize: o.pushBatchSize,
      handler: async (rows) => {
        const data = await o.transport.mutate(ops.push, { rows: rows as unknown as PushRow[] });
        const result = data[ops.fields.push] as PushResult;
        o.onUploaded(rows.length - result.conflicts.length);
        for (const rejection of result.rejected) o.onError({ kind: 'rejected', collection: o.model.name, ...rejection });
        return result.conflicts as never;
      },
    },
  });
  state.error$.subscribe((error) => o.onError({ kind: 'replication', collection: o.model.name, message: error.message }));

  return {
    state,
    async stop() {
      stopStream();
      stream$.complete();
      await state.cancel();
    },
  };
}
