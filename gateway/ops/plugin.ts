// A Yoga plugin that watches the GraphQL operations pass (HTTP and graphql-ws alike: both run
// through Yoga's envelop pipeline) and feeds the metrics and the admin page: pulls and pushes
// with their latency, documents sent, refused writes with their reasons and users, live streams
// and bootstraps per session, and store errors. It reads operations and results; it changes
// nothing.
import { getArgumentValues, getOperationAST, Kind, type DocumentNode, type ExecutionArgs, type ExecutionResult, type FieldNode, type GraphQLError, type SelectionSetNode } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { User } from '../auth/authenticator.ts';
import { REJECTION_CODES, type PushRejection } from '../../protocol/messages.ts';
import type { DataModel } from '../../protocol/model.ts';
import { syncOperations } from '../../protocol/operations.ts';
import { plainOperationNames } from '../graphql/schema.ts';
import { bounded, type Activity, type LiveStream } from './activity.ts';
import { isStoreError, type GatewayMetrics } from './metrics.ts';

type Kind_ = 'pull' | 'push' | 'bootstrap' | 'stream' | 'write' | 'watch';

interface RootField {
  /** Where its answer is in `data`: the alias, or the name. */
  key: string;
  node: FieldNode;
  collection: string;
  kind: Kind_;
}

const REFUSAL_CODES = new Set<string>(Object.values(REJECTION_CODES));

export function opsPlugin(model: DataModel, metrics: GatewayMetrics, activity: Activity): Plugin {
  const operations = new Map<string, { collection: string; kind: Kind_ }>();
  for (const c of model.collections) {
    const sync = syncOperations(c).fields;
    const plain = plainOperationNames(c);
    const add = (field: string, kind: Kind_) => operations.set(field, { collection: c.name, kind });
    add(sync.pull, 'pull');
    add(sync.push, 'push');
    add(sync.bootstrap, 'bootstrap');
    add(sync.stream, 'stream');
    for (const write of [plain.insert, plain.update, plain.delete]) add(write, 'write');
    add(plain.watch, 'watch');
  }
  const rootFields = (args: ExecutionArgs): RootField[] => {
    const operation = getOperationAST(args.document, args.operationName);
    if (!operation) return [];
    const found: RootField[] = [];
    for (const node of fieldsOf(args.document, operation.selectionSet, new Set())) {
      const op = operations.get(node.name.value);
      if (op) found.push({ key: node.alias?.value ?? node.name.value, node, ...op });
    }
    return found;
  };

  return {
    onExecute: ({ args }) => {
      const started = performance.now();
      const fields = rootFields(args);
      const context = args.contextValue as { user?: User; socket?: unknown };
      return {
        onExecuteDone: ({ result }) => {
          if (isAsyncIterable(result)) return;
          const seconds = (performance.now() - started) / 1000;
          const { data, errors } = result as ExecutionResult<Record<string, any>>;
          const storeErrors = errors?.filter((e) => isStoreError(e)).length ?? 0;
          for (let i = 0; i < storeErrors; i++) metrics.storeError('graphql');
          const session = activity.session(context.socket);
          for (const field of fields) {
            const answer = data?.[field.key];
            if (field.kind === 'pull' && answer) {
              metrics.pulled(field.collection, 'pull', answer.documents.length, seconds);
              session?.lastPullAt.set(field.collection, Date.now());
            } else if (field.kind === 'bootstrap' && answer) {
              metrics.pulled(field.collection, 'bootstrap', answer.documents.length, null);
              const before = session?.bootstraps.get(field.collection);
              const documents = (before?.state === 'bootstrapping' ? before.documents : 0) + answer.documents.length;
              session?.bootstraps.set(field.collection, { state: answer.next ? 'bootstrapping' : 'complete', documents, estimatedTotal: answer.estimatedTotal ?? before?.estimatedTotal ?? null, at: Date.now() });
            } else if (field.kind === 'push' && answer) {
              const rows = argumentsOf(args, field, 'Mutation')?.rows;
              metrics.pushed(field.collection, Array.isArray(rows) ? rows.length : 0, seconds);
              for (const rejection of answer.rejected as PushRejection[]) {
                metrics.refusedWrite(field.collection, rejection, true);
                activity.refused(field.collection, rejection, context.user, 'push');
              }
            } else if (field.kind === 'write') {
              for (const error of errorsAt(errors, field.key)) {
                const code = String(error.extensions?.code);
                if (!REFUSAL_CODES.has(code)) continue;
                const refusal = { code: code as PushRejection['code'], field: typeof error.extensions?.field === 'string' ? error.extensions.field : null, message: error.message, realmCode: null };
                metrics.refusedWrite(field.collection, refusal, false);
                activity.refused(field.collection, { ...refusal, id: documentIdOf(argumentsOf(args, field, 'Mutation')) }, context.user, 'mutation');
              }
            }
          }
        },
      };
    },
    onSubscribe: ({ args }) => {
      const session = activity.session((args.contextValue as { socket?: unknown }).socket);
      if (!session) return;
      const streams: LiveStream[] = rootFields(args)
        .filter((field) => field.kind === 'stream' || field.kind === 'watch')
        .map((field) => {
          const values = argumentsOf(args, field, 'Subscription');
          const queries = field.kind === 'stream' ? values?.view : values?.filter;
          return { collection: field.collection, kind: field.kind === 'stream' ? 'sync' : 'watch', queries: queries === undefined || queries === null ? null : bounded(JSON.stringify(queries)), since: Date.now() };
        });
      if (streams.length === 0) return;
      const end = () => streams.forEach((stream) => session.streams.delete(stream));
      streams.forEach((stream) => session.streams.add(stream));
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

/** A root field's arguments as its resolver got them; undefined if they do not coerce (the operation failed). */
function argumentsOf(args: ExecutionArgs, field: RootField, root: 'Mutation' | 'Subscription'): Record<string, unknown> | undefined {
  const type = root === 'Mutation' ? args.schema.getMutationType() : args.schema.getSubscriptionType();
  const definition = type?.getFields()[field.node.name.value];
  if (!definition) return undefined;
  try {
    return getArgumentValues(definition, field.node, args.variableValues ?? undefined);
  } catch {
    return undefined;
  }
}

/** The document a plain mutation wrote: `id`, or its input's. */
function documentIdOf(values: Record<string, unknown> | undefined): string | null {
  const id = values?.id ?? (values?.input as { id?: unknown } | undefined)?.id;
  return id === undefined || id === null ? null : String(id);
}

function errorsAt(errors: readonly GraphQLError[] | undefined, key: string): GraphQLError[] {
  return errors?.filter((e) => e.path?.[0] === key) ?? [];
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function';
}
