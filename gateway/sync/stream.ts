// Live streams over a collection's change feed, as async iterators for GraphQL subscriptions.
//
// The sync stream starts with a resync event (the client pulls from its checkpoint, covering
// whatever it missed while disconnected), then forwards every batch. Memory per client is
// bounded: when more than `maxQueuedDocuments` pile up for a client that reads slower than
// changes arrive, the sync stream drops its queue for a single resync event (the client catches
// up by pulling), and a plain watch subscription ends with an error.
import { GraphQLError } from 'graphql';
import type { StreamEvent } from '../../protocol/messages.ts';
import type { ChangeBatch, ChangeFeed } from '../store/change-feed.ts';
import type { CollectionStore } from '../store/collection-store.ts';
import { forStream, viewDifference, type View } from './view.ts';

export interface StreamOptions {
  maxQueuedDocuments: number;
}

const RESYNC: StreamEvent = { documents: [], checkpoint: null, resync: true };

/**
 * A client's sync stream through its view. A batch with nothing for the client sends nothing:
 * its checkpoint lags until the next relevant batch, which is correct (the skipped changes held
 * nothing for it) and saves a message per change per uninterested client.
 */
export function syncStream(
  feed: ChangeFeed,
  store: CollectionStore,
  makeView: () => View,
  options: StreamOptions & {
    /** Calls back when the client's permissions may have changed; returns an unsubscribe. */
    watchPermissions?: (changed: () => void) => () => void;
  },
): AsyncIterableIterator<StreamEvent> {
  let view = makeView();
  const toEvent = (batch: ChangeBatch): StreamEvent | null => {
    const documents = batch.stored.flatMap((stored, i) => forStream(store, view, stored, batch.documents[i]!) ?? []);
    return documents.length > 0 ? { documents, checkpoint: batch.checkpoint, resync: false } : null;
  };
  // Live permission changes: switch to the new view and send the difference, without a resync.
  const source = options.watchPermissions
    ? (emit: (event: StreamEvent) => void) =>
        options.watchPermissions!(() => {
          const before = view;
          view = makeView();
          void viewDifference(store, before, view).then((documents) => {
            // Current states, not changes up to a checkpoint: the client keeps its checkpoint.
            if (documents.length > 0) emit({ documents, checkpoint: null, resync: false });
          });
        })
    : undefined;
  return openStream<StreamEvent>(feed, toEvent, { ...options, first: RESYNC, onOverflow: RESYNC, source });
}

/** Events derived from each batch (null: nothing for this client), queued per client. */
export function openStream<T>(
  feed: ChangeFeed,
  toEvent: (batch: ChangeBatch) => T | null,
  options: StreamOptions & { first?: T; onOverflow?: T; source?: (emit: (event: T) => void) => () => void },
): AsyncIterableIterator<T> {
  const queue: Array<{ event: T; size: number }> = options.first ? [{ event: options.first, size: 0 }] : [];
  let queuedDocuments = 0;
  let waiting: { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void } | null = null;
  let failure: GraphQLError | null = null;
  let done = false;

  const deliver = (event: T, size: number) => {
    if (waiting) {
      const { resolve } = waiting;
      waiting = null;
      resolve({ value: event, done: false });
      return;
    }
    if (queuedDocuments + size <= options.maxQueuedDocuments) {
      queue.push({ event, size });
      queuedDocuments += size;
    } else if (options.onOverflow) {
      queue.splice(0, queue.length, { event: options.onOverflow, size: 0 });
      queuedDocuments = 0;
    } else {
      failure = new GraphQLError('subscriber fell too far behind the change feed', { extensions: { code: 'SLOW_CONSUMER' } });
      unsubscribe();
    }
  };
  const unsubscribeFeed = feed.subscribe((batch) => {
    const event = toEvent(batch);
    if (event !== null) deliver(event, batch.documents.length);
  });
  const unsubscribeSource = options.source?.((event) => !done && deliver(event, 0));
  const unsubscribe = () => {
    unsubscribeFeed();
    unsubscribeSource?.();
  };

  const finish = (): Promise<IteratorResult<T>> => {
    done = true;
    unsubscribe();
    queue.length = 0;
    waiting?.resolve({ value: undefined, done: true });
    waiting = null;
    return Promise.resolve({ value: undefined, done: true });
  };

  return {
    next() {
      if (done) return Promise.resolve({ value: undefined, done: true });
      const item = queue.shift();
      if (item) {
        queuedDocuments -= item.size;
        return Promise.resolve({ value: item.event, done: false });
      }
      if (failure) {
        done = true;
        return Promise.reject(failure);
      }
      return new Promise((resolve, reject) => {
        waiting = { resolve, reject };
      });
    },
    return: finish,
    throw: finish,
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}
