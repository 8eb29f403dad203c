// GraphQL over graphql-ws executed through Yoga's envelop pipeline (its plugins, parse,
// validate, context), following the graphql-yoga documentation's recipe. The gateway adds
// authentication in onConnect; the benchmark's bare server uses it as it is.
import type { ExecutionArgs } from 'graphql';
import type { ServerOptions } from 'graphql-ws';
import type { Extra } from 'graphql-ws/use/ws';
import type { YogaServerInstance } from 'graphql-yoga';

type RootValue = { execute: (args: ExecutionArgs) => unknown; subscribe: (args: ExecutionArgs) => unknown };

export function yogaOverWebSocket<E extends Record<PropertyKey, unknown>>(
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  yoga: YogaServerInstance<any, any>,
  /** Extra server context for an operation, from its connection (e.g. the user). */
  contextOf: (extra: Extra & Partial<E>) => Record<string, unknown> = () => ({}),
): Pick<ServerOptions<Record<string, unknown> | undefined, Extra & Partial<E>>, 'execute' | 'subscribe' | 'onSubscribe'> {
  return {
    execute: (args) => (args.rootValue as RootValue).execute(args) as never,
    subscribe: (args) => (args.rootValue as RootValue).subscribe(args) as never,
    onSubscribe: async (ctx, _id, payload) => {
      const enveloped = yoga.getEnveloped({ ...ctx, req: ctx.extra.request, socket: ctx.extra.socket, params: payload, ...contextOf(ctx.extra) });
      const args: ExecutionArgs = {
        schema: enveloped.schema,
        operationName: payload.operationName,
        document: enveloped.parse(payload.query),
        variableValues: payload.variables,
        contextValue: await enveloped.contextFactory(),
        rootValue: { execute: enveloped.execute, subscribe: enveloped.subscribe },
      };
      const errors = enveloped.validate(args.schema, args.document);
      return errors.length > 0 ? errors : args;
    },
  };
}
