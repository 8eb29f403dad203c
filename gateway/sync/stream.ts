// Live streams over a collection's change feed, as async iterators for GraphQL subscriptions.
//
// The sync stream starts with a resync event (the client pulls from its checkpoint, covering
// whatever it missed while disconnected), then forwards every batch. Memory per client is
// bounded in documents and in bytes: graphql-ws sends one message at a time and waits until the
// socket took it, so events for a client that stops reading pile up here. Past either bound the
// sync stream drops its queue for a single resync event (the client catches up by pulling), and
// a plain watch subscription ends with an error.
import { GraphQLError } from 'graphql';
import type { StreamEvent, SyncDocument } from '../../protocol/messages.ts';
import type { ChangeBatch, ChangeFeed } from '../store/change-feed.ts';
import type { CollectionStore } from '../store/collection-store.ts';
import { sizeOf } from '../store/cursor-cache.ts';
import type { FrameSink } from '../graphql/websocket.ts';
import { forStream, viewDifference, type View } from './view.ts';

export interface StreamOptions {
  maxQueuedDocuments: number;
  /** Bytes (about: cursor-cache.ts sizeOf) of queued documents a client may have waiting. */
  maxQueuedBytes: number;
}

/** An event and what it weighs in the queue. */
export interface Sized<T> {
  event: T;
  documents: number;
  bytes: number;
  /** When the changes it holds were committed (ms); absent for resyncs and permission changes. */
  committedAt?: number;
}

const RESYNC: StreamEvent = { documents: [], checkpoint: null, resync: true };
/** What a removal (id and `_deleted`) weighs, near enough. */
const REMOVAL_BYTES = 64;

/** What a batch holds for a view: worked out once per batch for every subscriber with the same view key. */
export interface SharedEvent {
  event: StreamEvent;
  documents: number;
  bytes: number;
  /** Payloads rendered from it, by shape and epoch (frames: see syncStream). */
  rendered: Map<string, Buffer>;
}

/** Per batch, the shared event of each view key seen so far (dropped with the batch). */
const sharedEvents = new WeakMap<ChangeBatch, Map<string, SharedEvent | null>>();

/**
 * The batch's event for this view, shared by every subscriber whose view has the same key
 * (view.ts: the queries, stamps and the permissions' readKey decide what forStream sends).
 * Null: nothing in the batch for this view.
 */
export function sharedEvent(store: CollectionStore, view: View, batch: ChangeBatch): SharedEvent | null {
  let byView = sharedEvents.get(batch);
  if (!byView) sharedEvents.set(batch, (byView = new Map()));
  const known = byView.get(view.key);
  if (known !== undefined) return known;
  const documents: SyncDocument[] = [];
  let bytes = 0;
  batch.stored.forEach((stored, i) => {
    const sent = forStream(store, view, stored, batch.documents[i]!);
    if (sent === null) return;
    documents.push(sent);
    bytes += sent._deleted && !batch.documents[i]!._deleted ? REMOVAL_BYTES : batch.bytes(i);
  });
  const shared = documents.length > 0 ? { event: { documents, checkpoint: batch.checkpoint, resync: false }, documents: documents.length, bytes, rendered: new Map() } : null;
  byView.set(view.key, shared);
  return shared;
}

/**
 * A client's sync stream through its view. A batch with nothing for the client sends nothing:
 * its checkpoint lags until the next relevant batch, which is correct (the skipped changes held
 * nothing for it) and saves a message per change per uninterested client.
 *
 * With a frame sink (graphql-ws), events are not handed to GraphQL: each is rendered once per
 * shape and epoch for all subscribers of the view (SharedEvent.rendered) and written to the
 * socket by the stream itself; the iterator returned yields nothing and ends with the stream.
 */
export function syncStream(
  feed: ChangeFeed,
  store: CollectionStore,
  makeView: () => View,
  options: StreamOptions & {
    /** Calls back when the client's permissions may have changed; returns an unsubscribe. */
    watchPermissions?: (changed: () => void) => () => void;
    frames?: { sink: FrameSink; epoch: () => string };
  },
): AsyncIterableIterator<StreamEvent> {
  let view = makeView();
  // Live permission changes: switch to the new view and send the difference, without a resync.
  const differences = (emit: (event: Sized<StreamEvent>) => void, fail: (error: unknown) => void) =>
    options.watchPermissions!(() => {
      const before = view;
      try {
        view = makeView();
      } catch (error) {
        fail(error); // the view is no longer allowed (e.g. it filters on a field now hidden)
        return;
      }
      viewDifference(store, before, view).then((documents) => {
        // Current states, not changes up to a checkpoint: the client keeps its checkpoint.
        if (documents.length > 0) emit({ event: { documents, checkpoint: null, resync: false }, documents: documents.length, bytes: sizeOf(documents) });
      }, fail);
    });

  if (!options.frames) {
    const toEvent = (batch: ChangeBatch): Sized<StreamEvent> | null => {
      const shared = sharedEvent(store, view, batch);
      return shared && { event: shared.event, documents: shared.documents, bytes: shared.bytes };
    };
    return openStream<StreamEvent>(feed, toEvent, { ...options, first: RESYNC, onOverflow: RESYNC, source: options.watchPermissions && differences });
  }

  const { sink, epoch } = options.frames;
  const render = (event: StreamEvent) => {
    feed.observer?.rendered();
    return sink.render(event);
  };
  const resync = render(RESYNC);
  const toFrame = (batch: ChangeBatch): Sized<Buffer> | null => {
    const shared = sharedEvent(store, view, batch);
    if (!shared) return null;
    const current = epoch();
    const key = `${current}\n${sink.shape}`;
    let payload = shared.rendered.get(key);
    if (!payload) {
      const event = shared.event;
      payload = render({ ...event, checkpoint: { ...event.checkpoint!, epoch: current } });
      shared.rendered.set(key, payload);
    }
    return { event: payload, documents: shared.documents, bytes: shared.bytes };
  };
  const source = options.watchPermissions
    ? (emit: (frame: Sized<Buffer>) => void, fail: (error: unknown) => void) =>
        differences((sized) => {
          try {
            emit({ ...sized, event: render(sized.event) });
          } catch (error) {
            fail(error);
          }
        }, fail)
    : undefined;
  return writeFrames(openStream<Buffer>(feed, toFrame, { ...options, first: resync, onOverflow: resync, source }), sink) as AsyncIterableIterator<StreamEvent>;
}

/**
 * Writes a stream of rendered payloads to the sink, one at a time (the next is taken once the
 * socket took the last, as graphql-ws would). What GraphQL gets yields nothing: it ends when the
 * stream ends and fails when it fails (graphql-ws then sends the operation's error), and
 * returning it (the client's complete, the socket's close) ends the stream.
 */
function writeFrames(frames: AsyncIterableIterator<Buffer>, sink: FrameSink): AsyncIterableIterator<never> {
  const written = (async () => {
    try {
      for (let step = await frames.next(); !step.done; step = await frames.next()) await sink.write(step.value);
    } catch (error) {
      await frames.return?.();
      throw error;
    }
  })();
  const ended = written.then((): IteratorResult<never> => ({ done: true, value: undefined }));
  ended.catch(() => {}); // handled by whoever asks next(); nobody may (already returned)
  const stop = async (): Promise<IteratorResult<never>> => {
    await frames.return?.();
    return { done: true, value: undefined };
  };
  return {
    next: () => ended,
    return: stop,
    throw: stop,
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}

/** Events derived from each batch (null: nothing for this client), queued per client. */
export function openStream<T>(
  feed: ChangeFeed,
  toEvent: (batch: ChangeBatch) => Sized<T> | null,
  options: StreamOptions & {
    first?: T;
    onOverflow?: T;
    source?: (emit: (event: Sized<T>) => void, fail: (error: unknown) => void) => () => void;
  },
): AsyncIterableIterator<T> {
  const queue: Array<Sized<T>> = options.first ? [{ event: options.first, documents: 0, bytes: 0 }] : [];
  let queuedDocuments = 0;
  let queuedBytes = 0;
  let waiting: { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void } | null = null;
  let failure: unknown = null;
  let done = false;
  // graphql-ws asks for the next event only once the previous frame was written to the socket
  // (it awaits ws's send callback): that moment ends the delivery latency of the event handed out.
  let handedOut: number | undefined;
  const handOut = (item: Sized<T>): T => {
    handedOut = item.committedAt;
    return item.event;
  };
  const written = () => {
    if (handedOut !== undefined) feed.observer?.delivered(handedOut);
    handedOut = undefined;
  };

  const fail = (error: unknown) => {
    if (done || failure) return;
    failure = error;
    unsubscribe();
    queue.length = 0;
    if (waiting) {
      const { reject } = waiting;
      waiting = null;
      done = true;
      reject(error);
    }
  };
  const deliver = (item: Sized<T>) => {
    if (done || failure) return;
    if (waiting) {
      const { resolve } = waiting;
      waiting = null;
      resolve({ value: handOut(item), done: false });
      return;
    }
    if (queuedDocuments + item.documents <= options.maxQueuedDocuments && queuedBytes + item.bytes <= options.maxQueuedBytes) {
      queue.push(item);
      queuedDocuments += item.documents;
      queuedBytes += item.bytes;
    } else if (options.onOverflow) {
      queue.splice(0, queue.length, { event: options.onOverflow, documents: 0, bytes: 0 });
      queuedDocuments = 0;
      queuedBytes = 0;
      feed.observer?.overflowed(false);
    } else {
      feed.observer?.overflowed(true);
      fail(new GraphQLError('subscriber fell too far behind the change feed', { extensions: { code: 'SLOW_CONSUMER' } }));
    }
  };
  const unsubscribeFeed = feed.subscribe((batch) => {
    let item: Sized<T> | null;
    try {
      item = toEvent(batch);
    } catch (error) {
      fail(error); // e.g. the subscription's filter is no longer allowed for this user
      return;
    }
    if (item === null) return;
    item.committedAt ??= batch.committedAt;
    deliver(item);
  });
  const unsubscribeSource = options.source?.(deliver, fail);
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
      written();
      const item = queue.shift();
      if (item) {
        queuedDocuments -= item.documents;
        queuedBytes -= item.bytes;
        return Promise.resolve({ value: handOut(item), done: false });
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
