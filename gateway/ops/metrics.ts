// Prometheus metrics of one gateway (GET /metrics, README "Metrics"). Each gateway has its own
// Registry: several run in one process (tests, embedding apps), and the global default registry
// would mix them up. Labels are collection names, and codes and reasons from fixed lists, so the
// number of series stays bounded whatever clients send.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { MongoError } from 'mongodb';
import type { Logger } from 'pino';
import type { PushRejection } from '../../protocol/messages.ts';
import type { CollectionRuntime } from '../graphql/schema.ts';
import type { FeedObserver } from '../store/change-feed.ts';
import { compensatingReason } from '../sync/push.ts';
import { feedLag } from './feed-lag.ts';

/** Latencies from a millisecond to a minute. */
const SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

// Process metrics (CPU, memory, event loop, GC) are the same for every gateway in a process, and
// prom-client's collectors of them cannot be stopped (each set keeps an event-loop monitor and a
// GC observer): one registry of them per process, merged into every gateway's scrape.
let processRegistry: Registry | undefined;
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

export type StoreErrorSource = 'graphql' | 'change-feed' | 'ready' | 'background' | 'admin';

export interface MetricSources {
  /** Open WebSocket connections. */
  connections(): number;
  collections: Map<string, CollectionRuntime>;
}

export class GatewayMetrics {
  readonly registry = new Registry();
  private readonly pushes: Counter<'collection'>;
  private readonly pushedRows: Counter<'collection'>;
  private readonly pulledDocuments: Counter<'collection' | 'kind'>;
  private readonly pushSeconds: Histogram<'collection'>;
  private readonly pullSeconds: Histogram<'collection'>;
  private readonly deliverySeconds: Histogram<'collection'>;
  private readonly compensating: Counter<'collection' | 'reason'>;
  private readonly refused: Counter<'collection' | 'code'>;
  private readonly overflows: Counter<'collection' | 'outcome'>;
  private readonly rendered: Counter<'collection'>;
  private readonly socketsDropped: Counter;
  private readonly sessionsRefused: Counter<'reason'>;
  private readonly storeErrors: Counter<'source'>;

  constructor(sources: MetricSources) {
    const registers = [this.registry];
    new Gauge({
      name: 'tributary_connections',
      help: 'Open WebSocket connections',
      registers,
      collect() {
        this.set(sources.connections());
      },
    });
    new Gauge({
      name: 'tributary_active_subscriptions',
      help: 'Open live streams (GraphQL subscriptions: sync streams and plain watches), by collection',
      labelNames: ['collection'],
      registers,
      collect() {
        for (const [name, runtime] of sources.collections) this.set({ collection: name }, runtime.feed.listenerCount);
      },
    });
    // Both lag gauges come from one read per collection per scrape.
    let lagRead: Promise<Map<string, { sequences: number; seconds: number }>> | null = null;
    const readLag = () =>
      (lagRead ??= Promise.all(
        [...sources.collections].map(async ([name, runtime]) => {
          try {
            return [name, await feedLag(runtime)] as const;
          } catch (error) {
            this.storeError('change-feed', error);
            return null;
          }
        }),
      )
        .then((entries) => new Map(entries.filter((e) => e !== null)))
        .finally(() => setImmediate(() => (lagRead = null))));
    new Gauge({
      name: 'tributary_change_feed_lag_sequences',
      help: 'Committed changes the change feed has not yet handed to live streams, by collection',
      labelNames: ['collection'],
      registers,
      async collect() {
        for (const [name, lag] of await readLag()) this.set({ collection: name }, lag.sequences);
      },
    });
    new Gauge({
      name: 'tributary_change_feed_lag_seconds',
      help: 'Age of the oldest committed change the change feed has not yet handed to live streams (0: caught up), by collection',
      labelNames: ['collection'],
      registers,
      async collect() {
        for (const [name, lag] of await readLag()) this.set({ collection: name }, lag.seconds);
      },
    });
    this.pushes = new Counter({ name: 'tributary_pushes_total', help: 'Sync pushes, by collection', labelNames: ['collection'], registers });
    this.pushedRows = new Counter({ name: 'tributary_pushed_rows_total', help: 'Rows in sync pushes, by collection', labelNames: ['collection'], registers });
    this.pulledDocuments = new Counter({
      name: 'tributary_pulled_documents_total',
      help: 'Documents sent by pulls (kind="pull") and Flexible Sync bootstraps (kind="bootstrap"), by collection',
      labelNames: ['collection', 'kind'],
      registers,
    });
    this.pushSeconds = new Histogram({ name: 'tributary_push_duration_seconds', help: 'Time to execute a sync push, by collection', labelNames: ['collection'], buckets: SECONDS, registers });
    this.pullSeconds = new Histogram({ name: 'tributary_pull_duration_seconds', help: 'Time to execute a sync pull, by collection', labelNames: ['collection'], buckets: SECONDS, registers });
    this.deliverySeconds = new Histogram({
      name: 'tributary_live_delivery_seconds',
      help: 'From a change committed (or an outside write taken in) to its live event written to the socket, by collection',
      labelNames: ['collection'],
      buckets: SECONDS,
      registers,
    });
    this.compensating = new Counter({
      name: 'tributary_compensating_writes_total',
      help: 'Pushed rows the permission rules refused (compensating writes, Realm code 231), by collection and reason',
      labelNames: ['collection', 'reason'],
      registers,
    });
    this.refused = new Counter({
      name: 'tributary_refused_writes_total',
      help: 'Refused writes (pushed rows and plain mutations), by collection and code: PERMISSION_DENIED, SCHEMA_VIOLATION, BAD_ROW',
      labelNames: ['collection', 'code'],
      registers,
    });
    this.overflows = new Counter({
      name: 'tributary_stream_overflows_total',
      help: 'Live streams that fell too far behind: queue replaced by a resync (outcome="resync") or plain watch ended with SLOW_CONSUMER (outcome="ended")',
      labelNames: ['collection', 'outcome'],
      registers,
    });
    this.rendered = new Counter({
      name: 'tributary_stream_payloads_rendered_total',
      help: 'Sync stream payloads rendered (GraphQL execution and JSON) for graphql-ws subscribers, by collection: subscribers of the same view and operation share one per event',
      labelNames: ['collection'],
      registers,
    });
    this.sessionsRefused = new Counter({ name: 'tributary_sessions_refused_total', help: 'New WebSocket sessions closed at once: capacity or rate (1013, load shedding), draining (1012)', labelNames: ['reason'], registers });
    this.socketsDropped = new Counter({ name: 'tributary_slow_consumer_sockets_dropped_total', help: 'WebSockets dropped because their client stopped reading (TRIBUTARY_MAX_BUFFERED_BYTES)', registers });
    this.storeErrors = new Counter({ name: 'tributary_store_errors_total', help: 'MongoDB errors met, by where: graphql (an operation failed), change-feed, ready, background, admin', labelNames: ['source'], registers });
  }

  /** The text a scrape gets: this gateway's metrics and the process's. */
  scrape(): Promise<string> {
    return Registry.merge([processMetrics(), this.registry]).metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  pushed(collection: string, rows: number, seconds: number): void {
    this.pushes.inc({ collection });
    this.pushedRows.inc({ collection }, rows);
    this.pushSeconds.observe({ collection }, seconds);
  }

  pulled(collection: string, kind: 'pull' | 'bootstrap', documents: number, seconds: number | null): void {
    this.pulledDocuments.inc({ collection, kind }, documents);
    if (seconds !== null) this.pullSeconds.observe({ collection }, seconds);
  }

  /** A write refused; a pushed row the rules refused is also a compensating write. */
  refusedWrite(collection: string, rejection: Pick<PushRejection, 'code' | 'field' | 'message' | 'realmCode'>, pushed: boolean): void {
    this.refused.inc({ collection, code: rejection.code });
    const reason = pushed ? compensatingReason(rejection) : null;
    if (reason) this.compensating.inc({ collection, reason });
  }

  /** A new session was closed at once: 'capacity' or 'rate' (limits/admission.ts), 'draining'. */
  sessionRefused(reason: 'capacity' | 'rate' | 'draining'): void {
    this.sessionsRefused.inc({ reason });
  }

  socketDropped(): void {
    this.socketsDropped.inc();
  }

  /** Counts `error` if it comes from the MongoDB driver (anywhere in its cause chain). */
  storeError(source: StoreErrorSource, error?: unknown): void {
    if (error === undefined || isStoreError(error)) this.storeErrors.inc({ source });
  }

  feedObserver(collection: string): FeedObserver {
    // Bound once: called per event per live client.
    const delivery = this.deliverySeconds.labels({ collection });
    const rendered = this.rendered.labels({ collection });
    return {
      delivered: (committedAt) => delivery.observe(Math.max(0, Date.now() - committedAt) / 1000),
      overflowed: (ended) => this.overflows.inc({ collection, outcome: ended ? 'ended' : 'resync' }),
      rendered: () => rendered.inc(),
      readFailed: (error) => this.storeError('change-feed', error),
    };
  }
}

/**
 * `log`, whose warnings and errors about a MongoDB error also call `count`: background work
 * (following outside writes, the follower lease, tombstone retention) reports its failures by
 * logging them and retrying.
 */
export function countingStoreErrors(log: Logger, count: () => void): Logger {
  return new Proxy(log, {
    get(target, property, receiver) {
      const value: unknown = Reflect.get(target, property, receiver);
      if ((property !== 'warn' && property !== 'error') || typeof value !== 'function') return value;
      return (first: unknown, ...rest: unknown[]) => {
        if (isStoreError((first as { err?: unknown } | null)?.err)) count();
        return (value as (...args: unknown[]) => unknown).call(target, first, ...rest);
      };
    },
  });
}

export function isStoreError(error: unknown): boolean {
  for (let e = error, depth = 0; e && depth < 5; depth++) {
    if (e instanceof MongoError) return true;
    e = (e as { originalError?: unknown; cause?: unknown }).originalError ?? (e as { cause?: unknown }).cause;
  }
  return false;
}
