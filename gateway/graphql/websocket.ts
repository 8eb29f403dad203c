// GraphQL over graphql-ws executed through Yoga's envelop pipeline (its plugins, parse,
// validate, context), following the graphql-yoga documentation's recipe. The gateway adds
// authentication in onConnect; the benchmark's bare server uses it as it is.
// Per socket, it bounds the subscriptions held and the queries and mutations running at once
// (counted by the work running, not by operation ids, which a client may complete and reuse at
// once): one socket must not grow the gateway's memory without bound. An operation over a bound is
// refused with a GraphQL error; the socket and its other operations go on.
import { createHash } from 'node:crypto';
import { execute, getOperationAST, GraphQLError, type DocumentNode, type ExecutionArgs, type ExecutionResult, type GraphQLSchema } from 'graphql';
import type { Context, ServerOptions } from 'graphql-ws';
import type { Extra } from 'graphql-ws/use/ws';
import type { YogaServerInstance } from 'graphql-yoga';
import { limitError } from '../limits/errors.ts';

type RootValue = { execute: (args: ExecutionArgs) => unknown; subscribe: (args: ExecutionArgs) => unknown; release: () => void; live: Set<AsyncGenerator<unknown>> };

export interface SocketLimits {
  /** Subscriptions one socket may hold at once. */
  maxSubscriptions: number;
  /** Queries and mutations one socket may have running at once. */
  maxInFlight: number;
}

/**
 * Lets a subscription's events skip graphql-ws's per-subscriber execution and serialization
 * (ARCHITECTURE.md, "Shared fan-out"). Given to every subscription over graphql-ws as
 * `context.frames`; a field's subscribe resolver that uses it writes the subscription's `next`
 * messages itself and returns an event stream that yields nothing.
 */
export interface FrameSink {
  /** Equal for subscriptions sending the same operation and variables: equal root values render equal payloads. */
  readonly shape: string;
  /** The `next` payload for this root value: the operation executed over it, as JSON. */
  render(rootValue: unknown): Buffer;
  /** Sends the payload as this subscription's `next` message; resolves once the socket took it. */
  write(payload: Buffer): Promise<void>;
}

const UNBOUNDED: SocketLimits = { maxSubscriptions: Infinity, maxInFlight: Infinity };

/** What each socket has running, by socket (a drain waits for its queries and mutations: server.ts). */
const runningBySocket = new WeakMap<object, Running>();

/** Queries and mutations running on `socket` now. */
export function operationsRunning(socket: object): number {
  return runningBySocket.get(socket)?.others ?? 0;
}

/**
 * What one socket has running. Counted by the work itself, not by operation ids: graphql-ws frees
 * an id when the client sends `complete` (or it is reused at once) while the query goes on
 * running, so a Set of ids would let one socket run any number of operations. A slot is taken
 * when an operation is let through and given back when its execution settles (queries,
 * mutations) or its event stream ends (subscriptions), whatever the client does with ids.
 */
interface Running {
  subscriptions: number;
  others: number;
  /** Event streams of this socket, ended when it closes (graphql-ws only ends those it still knows by id). */
  live: Set<AsyncGenerator<unknown>>;
}

/**
 * Runs an operation through Yoga's execute or subscribe, giving its slot back when a result
 * settles or fails; an event stream gives it back when it ends (guarded).
 */
function runReleasing(args: ExecutionArgs, run: 'execute' | 'subscribe'): Promise<unknown> {
  const root = args.rootValue as RootValue;
  let result: unknown;
  try {
    result = root[run](args);
  } catch (error) {
    root.release();
    throw error;
  }
  return Promise.resolve(result).then(
    (value) => (isAsyncIterable(value) ? guarded(value, root) : (root.release(), value)),
    (error: unknown) => {
      root.release();
      throw error;
    },
  );
}

export function yogaOverWebSocket<E extends Record<PropertyKey, unknown>>(
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  yoga: YogaServerInstance<any, any>,
  /** Extra server context for an operation, from its connection (e.g. the user). */
  contextOf: (extra: Extra & Partial<E>) => Record<string, unknown> = () => ({}),
  limits: SocketLimits = UNBOUNDED,
): Pick<ServerOptions<Record<string, unknown> | undefined, Extra & Partial<E>>, 'execute' | 'subscribe' | 'onSubscribe'> {
  const running = new WeakMap<Context<Record<string, unknown> | undefined, Extra & Partial<E>>, Running>();
  const runningOn = (ctx: Context<Record<string, unknown> | undefined, Extra & Partial<E>>) => {
    let counts = running.get(ctx);
    if (!counts) {
      const created: Running = { subscriptions: 0, others: 0, live: new Set() };
      running.set(ctx, (counts = created));
      runningBySocket.set(ctx.extra.socket, created);
      ctx.extra.socket.once('close', () => {
        for (const stream of [...created.live]) void stream.return(undefined).catch(() => {});
      });
    }
    return counts;
  };

  return {
    // graphql-ws calls these for every operation onSubscribe let through (completed by the client or not).
    execute: (args) => runReleasing(args, 'execute') as never,
    subscribe: (args) => runReleasing(args, 'subscribe') as never,
    onSubscribe: async (ctx, id, payload) => {
      const enveloped = yoga.getEnveloped({ ...ctx, req: ctx.extra.request, socket: ctx.extra.socket, params: payload, ...contextOf(ctx.extra) });
      let document;
      try {
        // The limit plugins refuse by throwing (a GraphQLError with a code): an error for this
        // operation, not a reason to close the socket.
        document = enveloped.parse(payload.query);
        const errors = enveloped.validate(enveloped.schema, document);
        if (errors.length > 0) return errors;
      } catch (error) {
        return [asClientError(yoga, error)];
      }

      const operation = getOperationAST(document, payload.operationName);
      if (!operation) return [new GraphQLError('Unable to identify operation')];
      const kind = operation.operation === 'subscription' ? 'subscriptions' : 'others';
      const counts = runningOn(ctx);
      if (kind === 'subscriptions' && counts.subscriptions >= limits.maxSubscriptions) {
        return [limitError('TOO_MANY_SUBSCRIPTIONS', `this socket already holds ${limits.maxSubscriptions} subscriptions; complete one first`)];
      }
      if (kind === 'others' && counts.others >= limits.maxInFlight) {
        return [limitError('TOO_MANY_OPERATIONS', `this socket already has ${limits.maxInFlight} queries and mutations running; wait for one to finish`)];
      }
      // Taken before the first await, so operations arriving together cannot all pass the check.
      counts[kind]++;
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        counts[kind]--;
      };
      try {
        return {
          schema: enveloped.schema,
          operationName: payload.operationName,
          document,
          variableValues: payload.variables,
          contextValue: await enveloped.contextFactory(kind === 'subscriptions' ? { frames: new SubscriptionFrames(yoga, ctx.extra.socket, id, enveloped.schema, document, payload) } : {}),
          rootValue: { execute: enveloped.execute, subscribe: enveloped.subscribe, release, live: counts.live } satisfies RootValue,
        } satisfies ExecutionArgs;
      } catch (error) {
        release();
        return [asClientError(yoga, error)];
      }
    },
  };
}

const NEXT_END = Buffer.from('}');

/** A subscription's frame sink: a class, not closures, as it is memory per subscription. */
class SubscriptionFrames implements FrameSink {
  private shapeKey: string | undefined;

  constructor(
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    private readonly yoga: YogaServerInstance<any, any>,
    private readonly socket: Extra['socket'],
    private readonly id: string,
    private readonly schema: GraphQLSchema,
    private readonly document: DocumentNode,
    private readonly payload: { query: string; operationName?: string | null; variables?: Record<string, unknown> | null },
  ) {}

  get shape(): string {
    return (this.shapeKey ??= createHash('sha256')
      .update(JSON.stringify([this.payload.query, this.payload.operationName ?? null, this.payload.variables ?? null]))
      .digest('base64url'));
  }

  render(rootValue: unknown): Buffer {
    const { schema, document, payload } = this;
    // Shared by subscribers: no context (the stream's resolve needs none once the event is whole).
    const result = execute({ schema, document, rootValue, contextValue: {}, variableValues: payload.variables, operationName: payload.operationName });
    if (result instanceof Promise) throw new Error('a shared stream event must resolve synchronously');
    const { errors, ...rest } = result as ExecutionResult;
    return Buffer.from(JSON.stringify(errors ? { ...rest, errors: errors.map((e) => asClientError(this.yoga, e).toJSON()) } : rest));
  }

  write(rendered: Buffer): Promise<void> {
    const { socket } = this;
    return new Promise((resolve, reject) => {
      if (socket.readyState !== socket.OPEN) return resolve();
      // graphql-ws's own message: {"id":…,"type":"next","payload":…} (its stringifyMessage).
      const prefix = `{"id":${JSON.stringify(this.id)},"type":"next","payload":`;
      const frame = Buffer.allocUnsafe(Buffer.byteLength(prefix) + rendered.length + NEXT_END.length);
      const at = frame.write(prefix);
      rendered.copy(frame, at);
      NEXT_END.copy(frame, at + rendered.length);
      socket.send(frame, { binary: false }, (error) => (error ? reject(error) : resolve()));
    });
  }
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function';
}

/**
 * An event stream that gives its slot back when it ends: done, failed, or returned (also when
 * returned before it was ever read, which an async generator function would not notice).
 */
function guarded(source: AsyncIterable<unknown>, root: RootValue): AsyncGenerator<unknown> {
  const stream = new GuardedStream(source[Symbol.asyncIterator](), root);
  root.live.add(stream);
  return stream;
}

class GuardedStream implements AsyncGenerator<unknown> {
  private ended = false;

  constructor(
    private readonly inner: AsyncIterator<unknown>,
    private readonly root: RootValue,
  ) {}

  async next(): Promise<IteratorResult<unknown>> {
    if (this.ended) return { done: true, value: undefined };
    try {
      const step = await this.inner.next();
      if (step.done) this.end();
      return step;
    } catch (error) {
      this.end();
      throw error;
    }
  }

  async return(value?: unknown): Promise<IteratorResult<unknown>> {
    const wasEnded = this.ended;
    this.end();
    if (!wasEnded && this.inner.return) await this.inner.return(value);
    return { done: true, value };
  }

  async throw(error?: unknown): Promise<IteratorResult<unknown>> {
    this.end();
    if (this.inner.throw) return this.inner.throw(error);
    throw error;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.return();
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    this.root.live.delete(this);
    this.root.release();
  }
}

/** A GraphQLError goes to the client as it is; anything else is logged and masked. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
function asClientError(yoga: YogaServerInstance<any, any>, error: unknown): GraphQLError {
  if (error instanceof GraphQLError && !error.originalError) return error;
  yoga.logger.error(error);
  return new GraphQLError('Unexpected error.', { extensions: { code: 'INTERNAL_SERVER_ERROR' } });
}
