// How the metrics and the admin page see GraphQL work (HTTP and graphql-ws alike):
//   - instrumentSchema wraps the resolvers of the sync pull, bootstrap and push fields and of
//     the plain writes: their timings, documents sent, refused rows and refused mutations with
//     their user, from what the resolvers return or throw (whatever the client selected);
//   - opsPlugin, a Yoga plugin, records the live streams each socket opens and counts the store
//     errors operations fail on.
// Neither changes a result.
import { getOperationAST, GraphQLError, Kind, valueFromASTUntyped, type DocumentNode, type ExecutionArgs, type FieldNode, type GraphQLField, type GraphQLSchema, type SelectionSetNode } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { User } from '../auth/authenticator.ts';
import { REJECTION_CODES, type BootstrapPage, type PullBulk, type PushRejection, type PushResult } from '../../protocol/messages.ts';
import type { DataModel } from '../../protocol/model.ts';
import { syncOperations } from '../../protocol/operations.ts';
import { plainOperationNames } from '../graphql/schema.ts';
import { bounded, type Activity, type LiveStream } from './activity.ts';
import { isStoreError, type GatewayMetrics } from './metrics.ts';

interface Context {
  user?: User;
  /** The graphql-ws socket, over WebSocket. */
  socket?: unknown;
}

type Resolve = (source: unknown, args: Record<string, any>, context: Context, info: unknown) => unknown;

const REFUSAL_CODES = new Set<string>(Object.values(REJECTION_CODES));

export function instrumentSchema(schema: GraphQLSchema, model: DataModel, metrics: GatewayMetrics, activity: Activity): void {
  const queries = schema.getQueryType()!.getFields();
  const mutations = schema.getMutationType()!.getFields();
  for (const c of model.collections) {
    const sync = syncOperations(c).fields;
    const plain = plainOperationNames(c);
    const collection = c.name;
    observe(queries[sync.pull], {
      done: (result: PullBulk, _args, context, seconds) => {
        metrics.pulled(collection, 'pull', result.documents.length, seconds);
        activity.session(context.socket)?.lastPullAt.set(collection, Date.now());
      },
    });
    observe(queries[sync.bootstrap], {
      done: (page: BootstrapPage, _args, context) => {
        metrics.pulled(collection, 'bootstrap', page.documents.length, null);
        const session = activity.session(context.socket);
        if (!session) return;
        const before = session.bootstraps.get(collection);
        const documents = (before?.state === 'bootstrapping' ? before.documents : 0) + page.documents.length;
        session.bootstraps.set(collection, { state: page.next ? 'bootstrapping' : 'complete', documents, estimatedTotal: page.estimatedTotal ?? before?.estimatedTotal ?? null, at: Date.now() });
      },
    });
    observe(mutations[sync.push], {
      done: (result: PushResult, args, context, seconds) => {
        metrics.pushed(collection, Array.isArray(args.rows) ? args.rows.length : 0, seconds);
        for (const rejection of result.rejected) {
          metrics.refusedWrite(collection, rejection, true);
          activity.refused(collection, rejection, context.user, 'push');
        }
      },
    });
    for (const write of [plain.insert, plain.update, plain.delete]) {
      observe(mutations[write], {
        failed: (error, args, context) => {
          const code = error instanceof GraphQLError ? String(error.extensions?.code) : '';
          if (!REFUSAL_CODES.has(code)) return;
          const refusal = { code: code as PushRejection['code'], field: typeof (error as GraphQLError).extensions?.field === 'string' ? ((error as GraphQLError).extensions.field as string) : null, message: (error as Error).message, realmCode: null };
          metrics.refusedWrite(collection, refusal, false);
          const id = args.id ?? args.input?.id;
          activity.refused(collection, { ...refusal, id: id === undefined || id === null ? null : String(id) }, context.user, 'mutation');
        },
      });
    }
  }
}

/** Wraps a field's resolver: `done` with its result and how long it took, `failed` with what it threw. */
function observe<T>(
  field: GraphQLField<unknown, unknown> | undefined,
  hooks: { done?: (result: T, args: Record<string, any>, context: Context, seconds: number) => void; failed?: (error: unknown, args: Record<string, any>, context: Context) => void },
): void {
  const resolve = field?.resolve as Resolve | undefined;
  if (!field || !resolve) return;
  field.resolve = (source, args, context, info) => {
    const started = performance.now();
    return Promise.resolve()
      .then(() => resolve(source, args, context as Context, info))
      .then(
        (result) => {
          quietly(() => hooks.done?.(result as T, args, context as Context, (performance.now() - started) / 1000));
          return result;
        },
        (error: unknown) => {
          quietly(() => hooks.failed?.(error, args, context as Context));
          throw error;
        },
      );
  };
}

/** Observing never changes an answer: a failure to record is dropped. */
function quietly(record: () => void): void {
  try {
    record();
  } catch {
    // (nothing to do: the request goes on as if unobserved)
  }
}

/** Live streams per socket, and store errors in operation results. */
export function opsPlugin(model: DataModel, metrics: GatewayMetrics, activity: Activity): Plugin {
  const streams = new Map<string, { collection: string; kind: LiveStream['kind']; argument: 'view' | 'filter' }>();
  for (const c of model.collections) {
    streams.set(syncOperations(c).fields.stream, { collection: c.name, kind: 'sync', argument: 'view' });
    streams.set(plainOperationNames(c).watch, { collection: c.name, kind: 'watch', argument: 'filter' });
  }
  return {
    onExecute: () => ({
      onExecuteDone: ({ result }) => {
        if (isAsyncIterable(result)) return;
        for (const error of result.errors ?? []) if (isStoreError(error)) metrics.storeError('graphql');
      },
    }),
    onSubscribe: ({ args }) => {
      const session = activity.session((args.contextValue as Context).socket);
      if (!session) return;
      const opened: LiveStream[] = [];
      for (const node of rootFields(args)) {
        const stream = streams.get(node.name.value);
        if (!stream) continue;
        // The view or filter as sent, inline or in a variable.
        const argument = node.arguments?.find((a) => a.name.value === stream.argument)?.value;
        const value: unknown = argument ? valueFromASTUntyped(argument, args.variableValues ?? undefined) : null;
        opened.push({ collection: stream.collection, kind: stream.kind, queries: value === null || value === undefined ? null : bounded(JSON.stringify(value)), since: Date.now() });
      }
      if (opened.length === 0) return;
      const end = () => opened.forEach((stream) => session.streams.delete(stream));
      opened.forEach((stream) => session.streams.add(stream));
      return {
        onSubscribeResult: ({ result }) => {
          if (!isAsyncIterable(result)) return end(); // refused: no stream opened
          return { onEnd: end };
        },
        onSubscribeError: end,
      };
    },
  };
}

function rootFields(args: ExecutionArgs) {
  const operation = getOperationAST(args.document, args.operationName);
  return operation ? fieldsOf(args.document, operation.selectionSet, new Set()) : [];
}

/** The root fields of a selection set, through fragments (each fragment once). */
function fieldsOf(document: DocumentNode, selectionSet: SelectionSetNode, seen: Set<string>): FieldNode[] {
  const fields: FieldNode[] = [];
  for (const selection of selectionSet.selections) {
    if (selection.kind === Kind.FIELD) fields.push(selection);
    else if (selection.kind === Kind.INLINE_FRAGMENT) fields.push(...fieldsOf(document, selection.selectionSet, seen));
    else if (!seen.has(selection.name.value)) {
      seen.add(selection.name.value);
      const fragment = document.definitions.find((d) => d.kind === Kind.FRAGMENT_DEFINITION && d.name.value === selection.name.value);
      if (fragment?.kind === Kind.FRAGMENT_DEFINITION) fields.push(...fieldsOf(document, fragment.selectionSet, seen));
    }
  }
  return fields;
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function';
}
