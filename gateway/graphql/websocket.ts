// GraphQL over graphql-ws executed through Yoga's envelop pipeline (its plugins, parse,
// validate, context), following the graphql-yoga documentation's recipe. The gateway adds
// authentication in onConnect; the benchmark's bare server uses it as it is.
// Per socket, it bounds the subscriptions held and the queries and mutations running at once:
// one socket must not grow the gateway's memory without bound. An operation over a bound is
// refused with a GraphQL error; the socket and its other operations go on.
import { getOperationAST, GraphQLError, type ExecutionArgs } from 'graphql';
import type { Context, ServerOptions } from 'graphql-ws';
import type { Extra } from 'graphql-ws/use/ws';
import type { YogaServerInstance } from 'graphql-yoga';
import { limitError } from '../limits/errors.ts';

type RootValue = { execute: (args: ExecutionArgs) => unknown; subscribe: (args: ExecutionArgs) => unknown };

export interface SocketLimits {
  /** Subscriptions one socket may hold at once. */
  maxSubscriptions: number;
  /** Queries and mutations one socket may have running at once. */
  maxInFlight: number;
}

const UNBOUNDED: SocketLimits = { maxSubscriptions: Infinity, maxInFlight: Infinity };

export function yogaOverWebSocket<E extends Record<PropertyKey, unknown>>(
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  yoga: YogaServerInstance<any, any>,
  /** Extra server context for an operation, from its connection (e.g. the user). */
  contextOf: (extra: Extra & Partial<E>) => Record<string, unknown> = () => ({}),
  limits: SocketLimits = UNBOUNDED,
): Pick<ServerOptions<Record<string, unknown> | undefined, Extra & Partial<E>>, 'execute' | 'subscribe' | 'onSubscribe' | 'onComplete'> {
  // The ids of each socket's running operations, by kind; graphql-ws calls onComplete for every
  // operation onSubscribe let through (completed, failed, cancelled, or its socket closed).
  const running = new WeakMap<Context<Record<string, unknown> | undefined, Extra & Partial<E>>, { subscriptions: Set<string>; others: Set<string> }>();
  const runningOn = (ctx: Context<Record<string, unknown> | undefined, Extra & Partial<E>>) => {
    let sets = running.get(ctx);
    if (!sets) running.set(ctx, (sets = { subscriptions: new Set(), others: new Set() }));
    return sets;
  };

  return {
    execute: (args) => (args.rootValue as RootValue).execute(args) as never,
    subscribe: (args) => (args.rootValue as RootValue).subscribe(args) as never,
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

      const kind = getOperationAST(document, payload.operationName)?.operation;
      const sets = runningOn(ctx);
      const set = kind === 'subscription' ? sets.subscriptions : sets.others;
      if (kind === 'subscription' && set.size >= limits.maxSubscriptions) {
        return [limitError('TOO_MANY_SUBSCRIPTIONS', `this socket already holds ${limits.maxSubscriptions} subscriptions; complete one first`)];
      }
      if (kind !== 'subscription' && set.size >= limits.maxInFlight) {
        return [limitError('TOO_MANY_OPERATIONS', `this socket already has ${limits.maxInFlight} queries and mutations running; wait for one to finish`)];
      }
      // Counted before the first await, so operations arriving together cannot all pass the check.
      set.add(id);
      try {
        return {
          schema: enveloped.schema,
          operationName: payload.operationName,
          document,
          variableValues: payload.variables,
          contextValue: await enveloped.contextFactory(),
          rootValue: { execute: enveloped.execute, subscribe: enveloped.subscribe },
        } satisfies ExecutionArgs;
      } catch (error) {
        set.delete(id);
        return [asClientError(yoga, error)];
      }
    },
    onComplete: (ctx, id) => {
      const sets = running.get(ctx);
      sets?.subscriptions.delete(id);
      sets?.others.delete(id);
    },
  };
}

/** A GraphQLError goes to the client as it is; anything else is logged and masked. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
function asClientError(yoga: YogaServerInstance<any, any>, error: unknown): GraphQLError {
  if (error instanceof GraphQLError && !error.originalError) return error;
  yoga.logger.error(error);
  return new GraphQLError('Unexpected error.', { extensions: { code: 'INTERNAL_SERVER_ERROR' } });
}
