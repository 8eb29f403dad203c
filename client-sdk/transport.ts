// One WebSocket per client (graphql-ws), carrying every operation: urql routes queries,
// mutations and subscriptions over it. The socket reconnects by itself with backoff; live
// subscriptions registered here outlive pause()/resume().
import { Client as UrqlClient, subscriptionExchange, type AnyVariables, type DocumentInput } from '@urql/core';
import { createClient, type Client as WsClient } from 'graphql-ws/client';
import { BehaviorSubject } from 'rxjs';
import { CLOSE_CODES } from '../protocol/messages.ts';
import { loadModel, type DataModel } from '../protocol/model.ts';
import { canonicalModel, type CanonicalModel } from '../protocol/schema-evolution.ts';
import type { SchemaOutdatedError } from './errors.ts';

export type ConnectionState = 'connecting' | 'connected' | 'disconnected' | 'paused' | 'closed';

export interface TransportOptions {
  /** ws:// or wss:// URL of the gateway's GraphQL endpoint. */
  url: string;
  /** WebSocket implementation where there is no global one (Node 20: `ws`). */
  webSocketImpl?: unknown;
  /** Sent in graphql-ws `connection_init` (authentication, later). */
  connectionParams?: Record<string, unknown> | (() => Record<string, unknown> | Promise<Record<string, unknown>>);
  retry?: { minDelayMs?: number; maxDelayMs?: number };
  /** The socket closed with this code (e.g. 4440: the token expired) and reason. */
  onClosed?: (code: number, reason: string) => void;
  /**
   * The app's data model: its canonical form goes in `connection_init` as `schema`, so the
   * gateway can tell an app built against an older schema.graphql (PROTOCOL.md, "Schema
   * versions"). Without it the gateway takes the client to know its current schema.
   */
  schema?: string | DataModel;
  /**
   * The gateway refused this app's data model (close code 4426: it has a breaking difference
   * against the gateway's): ask the user to update the app. Syncing stops; local reads and
   * writes go on. Called once.
   */
  onSchemaOutdated?: (error: SchemaOutdatedError) => void;
}

interface LiveSubscription {
  query: string;
  variables: Record<string, unknown>;
  onData: (data: Record<string, unknown>) => void;
  onError: (error: Error) => void;
  stop?: () => void;
}

export class GraphQLRequestError extends Error {
  override name = 'GraphQLRequestError';
  constructor(
    message: string,
    readonly graphQLErrors: readonly { message: string; extensions?: Record<string, unknown> }[] = [],
  ) {
    super(message);
  }
}

export class Transport {
  readonly state$ = new BehaviorSubject<ConnectionState>('disconnected');
  private ws: WsClient | null = null;
  /** Bumped per socket, so events of a disposed socket cannot overwrite the state. */
  private generation = 0;
  private readonly urql: UrqlClient;
  private readonly live = new Set<LiveSubscription>();
  /** Fails each operation in flight on the current socket. */
  private readonly inflight = new Set<(error: Error) => void>();
  /** What the gateway is told of the app's model (null: nothing). */
  private readonly schema: CanonicalModel | null;
  /** Set when the gateway refused the app's model: no socket is opened again. */
  private outdated: SchemaOutdatedError | null = null;

  constructor(private readonly options: TransportOptions) {
    this.schema = options.schema === undefined ? null : canonicalModel(typeof options.schema === 'string' ? loadModel(options.schema) : options.schema);
    this.urql = new UrqlClient({
      url: options.url,
      requestPolicy: 'network-only',
      exchanges: [
        subscriptionExchange({
          enableAllOperations: true,
          forwardSubscription: (request) => ({
            subscribe: (sink) => {
              const ws = this.ws;
              if (!ws) {
                sink.error(new Error(this.outdated ? `not connected: the gateway refused this app's schema (${this.outdated.reason}); update the app` : 'not connected: the sync session is paused or closed'));
                return { unsubscribe: () => {} };
              }
              // Every operation ends, one way or another: if the socket is disposed under it,
              // disconnect() fails it. Otherwise urql would keep the dead operation and hand
              // its never-coming result to the next identical query.
              let ended = false;
              const end = () => {
                ended = true;
                this.inflight.delete(fail);
              };
              const fail = (error: Error) => {
                if (ended) return;
                end();
                sink.error(error);
              };
              this.inflight.add(fail);
              const dispose = ws.subscribe(
                { ...request, query: request.query || '' },
                {
                  next: (value) => !ended && sink.next(value as Parameters<typeof sink.next>[0]),
                  error: (error) => !ended && (end(), sink.error(error)),
                  complete: () => !ended && (end(), sink.complete()),
                },
              );
              // urql unsubscribes synchronously inside a query's first `next`. When the server's
              // `complete` frame came in the same chunk, graphql-ws 6 then releases the operation
              // twice, its lock count drops to zero and it closes the socket under every other
              // operation. Deferring lets `complete` land first and makes this a no-op.
              return {
                unsubscribe: () => {
                  end();
                  setTimeout(dispose, 0);
                },
              };
            },
          }),
        }),
      ],
    });
  }

  /** Set once the gateway refused the app's data model (close code 4426). */
  get schemaOutdated(): SchemaOutdatedError | null {
    return this.outdated;
  }

  connect(): void {
    if (this.ws || this.outdated) return;
    const { minDelayMs = 250, maxDelayMs = 10_000 } = this.options.retry ?? {};
    const generation = ++this.generation;
    this.ws = createClient({
      url: this.options.url,
      webSocketImpl: this.options.webSocketImpl,
      connectionParams: this.withSchema(this.options.connectionParams),
      lazy: false,
      keepAlive: 10_000,
      retryAttempts: Number.POSITIVE_INFINITY,
      // Retrying with the same model cannot help (4401 and 4400 graphql-ws never retries).
      shouldRetry: (event) => (event as { code?: unknown } | undefined)?.code !== CLOSE_CODES.SCHEMA_OUTDATED,
      retryWait: (retries) => new Promise((r) => setTimeout(r, Math.min(maxDelayMs, minDelayMs * 2 ** retries) * (0.5 + Math.random() / 2))),
      on: {
        connecting: () => this.setState(generation, 'connecting'),
        connected: () => this.setState(generation, 'connected'),
        closed: (event) => {
          this.setState(generation, 'disconnected');
          const { code, reason } = (event ?? {}) as { code?: number; reason?: string };
          if (this.generation !== generation || code === undefined) return;
          if (code === CLOSE_CODES.SCHEMA_OUTDATED) this.refusedSchema(code, reason ?? '');
          this.options.onClosed?.(code, reason ?? '');
        },
      },
    });
    for (const sub of this.live) this.startLive(sub);
  }

  /** connection_init's payload: the app's, plus its canonical model as `schema`. */
  private withSchema(params: TransportOptions['connectionParams']): TransportOptions['connectionParams'] {
    const schema = this.schema;
    if (!schema) return params;
    return async () => ({ ...(typeof params === 'function' ? await params() : params), schema });
  }

  /** The gateway refused the app's model: stop using the socket (it would only be refused again). */
  private refusedSchema(code: number, reason: string): void {
    if (this.outdated) return;
    this.outdated = { kind: 'schema', code, reason };
    const ws = this.ws;
    this.ws = null;
    const generation = ++this.generation;
    for (const sub of this.live) sub.stop?.();
    for (const fail of [...this.inflight]) fail(new Error(`the gateway refused this app's schema (${reason}); update the app`));
    if (ws) void Promise.resolve(ws.dispose()).catch(() => {});
    this.state$.next('disconnected');
    this.options.onSchemaOutdated?.(this.outdated);
  }

  /** Closes the socket; `connect()` opens a new one and resumes the live subscriptions. */
  async disconnect(finalState: 'paused' | 'closed' | 'disconnected'): Promise<void> {
    const ws = this.ws;
    this.ws = null;
    const generation = ++this.generation;
    for (const sub of this.live) sub.stop?.();
    for (const fail of [...this.inflight]) fail(new Error('disconnected: the sync session was paused or closed'));
    // graphql-ws's dispose() waits for a connection attempt under way and rejects with its error
    // when it fails (the gateway is down or restarting): then there is no socket left to close.
    if (ws) await Promise.resolve(ws.dispose()).catch(() => {});
    // Unless a new socket was opened meanwhile (the browser came back online while the old one
    // was still closing): its state is the one that holds.
    if (this.generation === generation) this.state$.next(finalState);
  }

  /** A query or mutation; resolves with `data`, rejects with the GraphQL or transport error. */
  async request<T = Record<string, unknown>>(query: DocumentInput, variables: AnyVariables): Promise<T> {
    const result = await this.urql.query(query, variables).toPromise();
    if (result.error) {
      throw new GraphQLRequestError(result.error.message, result.error.graphQLErrors);
    }
    return result.data as T;
  }

  async mutate<T = Record<string, unknown>>(mutation: DocumentInput, variables: AnyVariables): Promise<T> {
    const result = await this.urql.mutation(mutation, variables).toPromise();
    if (result.error) throw new GraphQLRequestError(result.error.message, result.error.graphQLErrors);
    return result.data as T;
  }

  /** A subscription kept for the transport's lifetime, resumed after every connect(). */
  subscribeLive(
    query: string,
    variables: Record<string, unknown>,
    onData: (data: Record<string, unknown>) => void,
    onError: (error: Error) => void,
  ): () => void {
    const sub: LiveSubscription = { query, variables, onData, onError };
    this.live.add(sub);
    if (this.ws) this.startLive(sub);
    return () => {
      this.live.delete(sub);
      sub.stop?.();
    };
  }

  private startLive(sub: LiveSubscription): void {
    const { unsubscribe } = this.urql.subscription(sub.query, sub.variables).subscribe((result) => {
      if (result.error) sub.onError(new GraphQLRequestError(result.error.message, result.error.graphQLErrors));
      else if (result.data) sub.onData(result.data as Record<string, unknown>);
    });
    sub.stop = unsubscribe;
  }

  private setState(generation: number, state: ConnectionState): void {
    if (this.generation === generation) this.state$.next(state);
  }
}
