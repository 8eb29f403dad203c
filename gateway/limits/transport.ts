// Yoga plugins for what plain HTTP may do and say.
//   - Subscriptions are served over graphql-ws only. A WebSocket session is what follows its
//     user: token expiry (4440), API key revocation (4401) and custom-data refresh act on open
//     sockets (server.ts). A subscription over HTTP (Server-Sent Events, multipart) would be a
//     session none of that reaches, so one is refused with BAD_REQUEST (400) before it subscribes
//     to anything, and no event stream is opened.
//   - No internal error text reaches a client: Yoga's answer to a malformed JSON body carries
//     `extensions.originalError` with the parser's message (which quotes the body).
import { GraphQLError, type ExecutionResult } from 'graphql';
import type { Plugin } from 'graphql-yoga';

export const SUBSCRIPTIONS_OVER_WEBSOCKET_ONLY = 'subscriptions are served over WebSocket (graphql-ws) only';

const refusals = new WeakSet<object>();

/** Refuses subscription operations that do not come over graphql-ws (its context has a `socket`). */
export function subscriptionsOverWebSocketOnly(): Plugin {
  return {
    onSubscribe: ({ args, setResultAndStopExecution }) => {
      if ((args.contextValue as { socket?: unknown }).socket) return;
      const result: ExecutionResult = {
        errors: [new GraphQLError(SUBSCRIPTIONS_OVER_WEBSOCKET_ONLY, { extensions: { code: 'BAD_REQUEST' } })],
      };
      refusals.add(result);
      setResultAndStopExecution(result);
    },
    // Answered as JSON, whatever the request accepts (Yoga would open an event stream for it).
    onResultProcess: ({ result, setResultProcessor }) => {
      if (typeof result !== 'object' || result === null || !refusals.has(result)) return;
      setResultProcessor(
        (refused, fetchAPI) =>
          new fetchAPI.Response(JSON.stringify({ errors: (refused as ExecutionResult).errors }), {
            status: 400,
            headers: { 'content-type': 'application/json; charset=utf-8' },
          }),
        'application/json',
      );
    },
  };
}

/** Drops `extensions.originalError` (internal error text) from every error a client is sent. */
export function noInternalErrorDetail(): Plugin {
  return {
    onResultProcess: ({ result, setResult }) => {
      const results = Array.isArray(result) ? result : [result];
      if (!results.some((r) => hasOriginalError(r))) return;
      const cleaned = results.map((r) => (hasOriginalError(r) ? { ...r, errors: r.errors!.map(withoutOriginalError) } : r));
      setResult((Array.isArray(result) ? cleaned : cleaned[0]) as never);
    },
  };
}

function hasOriginalError(result: unknown): result is ExecutionResult {
  const errors = (result as ExecutionResult | null)?.errors;
  return Array.isArray(errors) && errors.some((e) => e.extensions?.originalError !== undefined);
}

function withoutOriginalError(error: GraphQLError): GraphQLError {
  if (error.extensions?.originalError === undefined) return error;
  const { originalError: _internal, http, ...extensions } = error.extensions as Record<string, unknown> & { http?: { spec?: boolean; status?: number; headers?: Record<string, string> } };
  // Yoga answers an error marked `spec` with 200 to `accept: application/json` unless it carries
  // an originalError; without it, the request error keeps its own status (400).
  const { spec: _spec, ...httpKept } = http ?? {};
  return new GraphQLError(error.message, { nodes: error.nodes, source: error.source, positions: error.positions, path: error.path, extensions: http ? { ...extensions, http: httpKept } : extensions });
}
