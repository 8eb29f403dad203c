// Live streams over a collection's change feed, as async iterators for GraphQL subscriptions.
//
// The sync stream starts with a resync event (the client pulls from its checkpoint, covering
// whatever it missed while disconnected), then forwards every batch. Memory per client is
// bounded in documents and in bytes: graphql-ws sends one message at a time and waits until the
// socket took it, so events for a client that stops reading pile up here. Past either bound the
// sync stream drops its queue for a single resync event (the client catches up by pulling), and
// a plain watch subscription ends with an error.
//
// Subscribers whose views have the same key share each batch's evaluation, and over graphql-ws
// its rendered payload (ARCHITECTURE.md, "Shared fan-out").
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
interface SharedEvent {
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
function sharedEvent(store: CollectionStore, view: View, batch: ChangeBatch): SharedEvent | null {
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

/** Where a sync stream's frames go (graphql-ws), and the user's epoch to stamp them with. */
interface StreamFrames {
  sink: FrameSink;
  /** The user's epoch: at once when known, else once read (sync/client-reset.ts). */
  epoch: () => string | Promise<string>;
}

/**
 * A client's sync stream through its view. A batch with nothing for the client sends nothing:
 * its checkpoint lags until the next relevant batch, which is correct (the skipped changes held
 * nothing for it) and saves a message per change per uninterested client.
 *
 * With frames (graphql-ws), events are not handed to GraphQL: each is rendered once per shape
 * and epoch for all subscribers of the view (SharedEvent.rendered) and written to the socket by
 * the stream itself; the iterator returned yields nothing and ends with the stream.
 *
 * Classes rather than closures throughout: a connection holds several streams, and each closure
 * is memory per subscriber (issue 16, point 3).
 */
export function syncStream(
  feed: ChangeFeed,
  store: CollectionStore,
  makeView: () => View,
  options: StreamOptions & {
    /** Calls back when the client's permissions may have changed; returns an unsubscribe. */
    watchPermissions?: (changed: () => void) => () => void;
    frames?: StreamFrames;
  },
): AsyncIterableIterator<StreamEvent> {
  if (!options.frames) return new SyncEvents(feed, store, makeView, options).queue;
  const frames = new SyncFrames(feed, store, makeView, options, options.frames);
  return new FrameWriter(frames.queue, options.frames.sink);
}

/** What a sync stream holds besides its queue: the view, and live permission changes. */
abstract class SyncStreamBase<T> implements EventSource<T> {
  protected view: View;
  queue!: StreamQueue<T>;
  private stopWatching?: () => void;

  constructor(
    protected readonly feed: ChangeFeed,
    protected readonly store: CollectionStore,
    private readonly makeView: () => View,
  ) {
    this.view = makeView();
  }

  /** Opens the queue, the resync first (called once the subclass is set up). */
  protected start(options: StreamOptions & { watchPermissions?: (changed: () => void) => () => void }): void {
    this.queue = new StreamQueue<T>(this.feed, this, options, this.resync());
    if (options.watchPermissions) this.stopWatching = options.watchPermissions(() => this.permissionsChanged());
  }

  abstract eventOf(batch: ChangeBatch): Sized<T> | null | Promise<Sized<T> | null>;
  /** The resync event, as this stream queues it. */
  abstract resync(): T;
  /** A difference of views, as this stream queues it. */
  protected abstract currentStates(event: Sized<StreamEvent>): Sized<T>;

  overflowEvent(): T {
    return this.resync();
  }

  stopped(): void {
    this.stopWatching?.();
  }

  /** Live permission changes: switch to the new view and send the difference, without a resync. */
  private permissionsChanged(): void {
    const before = this.view;
    try {
      this.view = this.makeView();
    } catch (error) {
      this.queue.fail(error); // the view is no longer allowed (e.g. it filters on a field now hidden)
      return;
    }
    viewDifference(this.store, before, this.view).then(
      (documents) => {
        // Current states, not changes up to a checkpoint: the client keeps its checkpoint.
        if (documents.length > 0) this.queue.deliver(this.currentStates({ event: { documents, checkpoint: null, resync: false }, documents: documents.length, bytes: sizeOf(documents) }));
      },
      (error: unknown) => this.queue.fail(error),
    );
  }
}

/** Events for GraphQL to execute per subscriber (HTTP subscriptions, Yoga's SSE). */
class SyncEvents extends SyncStreamBase<StreamEvent> {
  constructor(feed: ChangeFeed, store: CollectionStore, makeView: () => View, options: StreamOptions & { watchPermissions?: (changed: () => void) => () => void }) {
    super(feed, store, makeView);
    this.start(options);
  }

  eventOf(batch: ChangeBatch): Sized<StreamEvent> | null {
    const shared = sharedEvent(this.store, this.view, batch);
    return shared && { event: shared.event, documents: shared.documents, bytes: shared.bytes };
  }

  resync(): StreamEvent {
    return RESYNC;
  }

  protected currentStates(event: Sized<StreamEvent>): Sized<StreamEvent> {
    return event;
  }
}

/** Rendered payloads, shared per view, shape and epoch, written to the socket by a FrameWriter. */
class SyncFrames extends SyncStreamBase<Buffer> {
  constructor(
    feed: ChangeFeed,
    store: CollectionStore,
    makeView: () => View,
    options: StreamOptions & { watchPermissions?: (changed: () => void) => () => void },
    private readonly frames: StreamFrames,
  ) {
    super(feed, store, makeView);
    this.start(options);
  }

  eventOf(batch: ChangeBatch): Sized<Buffer> | null | Promise<Sized<Buffer> | null> {
    const shared = sharedEvent(this.store, this.view, batch);
    if (!shared) return null;
    const epoch = this.frames.epoch();
    return typeof epoch === 'string' ? this.rendered(shared, epoch) : epoch.then((read) => this.rendered(shared, read));
  }

  /** The shared event as this subscriber's operation renders it, rendered once per shape and epoch. */
  private rendered(shared: SharedEvent, epoch: string): Sized<Buffer> {
    const key = `${epoch}\n${this.frames.sink.shape}`;
    let payload = shared.rendered.get(key);
    if (!payload) {
      payload = this.render({ ...shared.event, checkpoint: { ...shared.event.checkpoint!, epoch } });
      shared.rendered.set(key, payload);
    }
    return { event: payload, documents: shared.documents, bytes: shared.bytes };
  }

  resync(): Buffer {
    return this.render(RESYNC);
  }

  protected currentStates(event: Sized<StreamEvent>): Sized<Buffer> {
    return { ...event, event: this.render(event.event) };
  }

  private render(event: StreamEvent): Buffer {
    this.feed.observer?.rendered();
    return this.frames.sink.render(event);
  }
}

/** What a stream's queue asks of the stream it belongs to. */
interface EventSource<T> {
  /** The batch's event for this subscriber; null: nothing in it for the subscriber. A promise keeps its place in the order. */
  eventOf(batch: ChangeBatch): Sized<T> | null | Promise<Sized<T> | null>;
  /** What replaces a queue past its bounds; absent: the stream ends with SLOW_CONSUMER. */
  overflowEvent?(): T;
  /** The stream ended (done, failed or returned): stop whatever else feeds it. */
  stopped?(): void;
}

/** Events derived from each batch (null: nothing for this client), queued per client. */
export function openStream<T>(feed: ChangeFeed, eventOf: (batch: ChangeBatch) => Sized<T> | null, options: StreamOptions): AsyncIterableIterator<T> {
  return new StreamQueue<T>(feed, { eventOf }, options);
}

/**
 * A subscriber's queue, bounded in documents and bytes, read as an async iterator: by GraphQL
 * (graphql-ws asks for the next event once the previous frame was written to the socket: it
 * awaits ws's send callback), or by a FrameWriter that does the same.
 */
class StreamQueue<T> implements AsyncIterableIterator<T> {
  private readonly queue: Array<Sized<T>> = [];
  private queuedDocuments = 0;
  private queuedBytes = 0;
  private waiting: { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void } | null = null;
  private failure: unknown = null;
  private done = false;
  /** When the changes of the event handed out last were committed: its delivery ends at the next next(). */
  private handedOut: number | undefined;
  private readonly unsubscribe: () => void;
  /** The last event still being made (eventOf returned a promise): later ones queue behind it. */
  private waitingFor: Promise<void> | null = null;

  constructor(
    private readonly feed: ChangeFeed,
    private readonly source: EventSource<T>,
    private readonly options: StreamOptions,
    first?: T,
  ) {
    if (first !== undefined) this.queue.push({ event: first, documents: 0, bytes: 0 });
    this.unsubscribe = feed.subscribe((batch) => this.onBatch(batch));
  }

  deliver(item: Sized<T>): void {
    if (this.done || this.failure) return;
    if (this.waiting) {
      const { resolve } = this.waiting;
      this.waiting = null;
      resolve({ value: this.handOut(item), done: false });
      return;
    }
    if (this.queuedDocuments + item.documents <= this.options.maxQueuedDocuments && this.queuedBytes + item.bytes <= this.options.maxQueuedBytes) {
      this.queue.push(item);
      this.queuedDocuments += item.documents;
      this.queuedBytes += item.bytes;
    } else if (this.source.overflowEvent) {
      this.queue.splice(0, this.queue.length, { event: this.source.overflowEvent(), documents: 0, bytes: 0 });
      this.queuedDocuments = 0;
      this.queuedBytes = 0;
      this.feed.observer?.overflowed(false);
    } else {
      this.feed.observer?.overflowed(true);
      this.fail(new GraphQLError('subscriber fell too far behind the change feed', { extensions: { code: 'SLOW_CONSUMER' } }));
    }
  }

  fail(error: unknown): void {
    if (this.done || this.failure) return;
    this.failure = error;
    this.stop();
    if (this.waiting) {
      const { reject } = this.waiting;
      this.waiting = null;
      this.done = true;
      reject(error);
    }
  }

  next(): Promise<IteratorResult<T>> {
    if (this.done) return Promise.resolve({ value: undefined, done: true });
    // The event handed out before was written to its socket: that ends its delivery latency.
    if (this.handedOut !== undefined) this.feed.observer?.delivered(this.handedOut);
    this.handedOut = undefined;
    const item = this.queue.shift();
    if (item) {
      this.queuedDocuments -= item.documents;
      this.queuedBytes -= item.bytes;
      return Promise.resolve({ value: this.handOut(item), done: false });
    }
    if (this.failure) {
      this.done = true;
      return Promise.reject(this.failure);
    }
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
    });
  }

  return(): Promise<IteratorResult<T>> {
    this.done = true;
    this.stop();
    this.waiting?.resolve({ value: undefined, done: true });
    this.waiting = null;
    return Promise.resolve({ value: undefined, done: true });
  }

  throw(): Promise<IteratorResult<T>> {
    return this.return();
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private onBatch(batch: ChangeBatch): void {
    let item: Sized<T> | null | Promise<Sized<T> | null>;
    try {
      item = this.source.eventOf(batch);
    } catch (error) {
      this.fail(error); // e.g. the subscription's filter is no longer allowed for this user
      return;
    }
    if (item === null) return;
    if (!(item instanceof Promise) && !this.waitingFor) return this.deliverFrom(batch, item);
    // An event that needs a read first (an epoch): it, and every event after it, wait their turn.
    const ready = item;
    const turn: Promise<void> = (this.waitingFor ?? Promise.resolve())
      .then(() => ready)
      .then(
        (event) => {
          if (event) this.deliverFrom(batch, event);
        },
        (error: unknown) => this.fail(error),
      )
      .finally(() => {
        if (this.waitingFor === turn) this.waitingFor = null;
      });
    this.waitingFor = turn;
  }

  private deliverFrom(batch: ChangeBatch, item: Sized<T>): void {
    item.committedAt ??= batch.committedAt;
    this.deliver(item);
  }

  private handOut(item: Sized<T>): T {
    this.handedOut = item.committedAt;
    return item.event;
  }

  private stop(): void {
    this.unsubscribe();
    this.queue.length = 0;
    this.source.stopped?.();
  }
}

/**
 * Writes a stream of rendered payloads to the sink, one at a time (the next is taken once the
 * socket took the last, as graphql-ws would). What GraphQL gets yields nothing: it ends when the
 * stream ends and fails when it fails (graphql-ws then sends the operation's error), and
 * returning it (the client's complete, the socket's close) ends the stream.
 */
class FrameWriter implements AsyncIterableIterator<never> {
  private readonly ended: Promise<IteratorResult<never>>;

  constructor(
    private readonly frames: StreamQueue<Buffer>,
    private readonly sink: FrameSink,
  ) {
    this.ended = this.writeAll();
    this.ended.catch(() => {}); // handled by whoever asks next(); nobody may (already returned)
  }

  next(): Promise<IteratorResult<never>> {
    return this.ended;
  }

  async return(): Promise<IteratorResult<never>> {
    await this.frames.return();
    return { done: true, value: undefined };
  }

  throw(): Promise<IteratorResult<never>> {
    return this.return();
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private async writeAll(): Promise<IteratorResult<never>> {
    try {
      for (let step = await this.frames.next(); !step.done; step = await this.frames.next()) await this.sink.write(step.value);
    } catch (error) {
      await this.frames.return();
      throw error;
    }
    return { done: true, value: undefined };
  }
}
