// The gateway's GraphQL API, generated from schema.graphql: per collection, the sync operations
// (pull / push / stream, see PROTOCOL.md) and a plain API (list, get, insert, update, delete,
// watch) for clients without RxDB. Both write through the same CollectionWriter.
import { makeExecutableSchema } from '@graphql-tools/schema';
import { GraphQLError, GraphQLScalarType, Kind, print, valueFromASTUntyped, type GraphQLSchema } from 'graphql';
import type { Filter } from 'mongodb';
import { DELETED_FIELD, type CollectionModel, type DataModel, type FieldModel, type FieldType } from '../../protocol/model.ts';
import { syncOperations } from '../../protocol/operations.ts';
import type { Checkpoint, PushResult, StreamEvent, SyncDocument } from '../../protocol/messages.ts';
import type { ClientResets } from '../sync/client-reset.ts';
import { QueryError } from '../../protocol/filter.ts';
import { keyScalar, toWireId } from '../../protocol/bson-values.ts';
import { BSON_SCALARS, missingScalarDefinitions } from './scalars.ts';
import { compileFilter } from '../query/filter.ts';
import type { User } from '../auth/authenticator.ts';
import type { SessionSchema } from './client-schema.ts';
import { MAX_JSON_DEPTH, nestsDeeperThan } from '../limits/json-depth.ts';
import { denialReason, inSet, UNRESTRICTED, writeDenial, type CollectionPermissions } from '../rules/permissions.ts';
import { idKey, type CollectionStore, type PlainDocument, type StoredDocument } from '../store/collection-store.ts';
import type { ChangeFeed } from '../store/change-feed.ts';
import { readPage } from '../store/cursor-cache.ts';
import { bootstrap, bootstrapKey } from '../sync/bootstrap.ts';
import { pull } from '../sync/pull.ts';
import { compileView } from '../sync/view.ts';
import type { CollectionWriter } from '../sync/push.ts';
import { openStream, syncStream } from '../sync/stream.ts';
import type { FrameSink } from './websocket.ts';

export interface CollectionRuntime {
  model: CollectionModel;
  store: CollectionStore;
  writer: CollectionWriter;
  feed: ChangeFeed;
  /** Whether a client's checkpoint can be continued (sync/client-reset.ts). */
  resets: ClientResets;
}

/** The permissions of the request's user (rules/permissions.ts), and word when they change. */
export interface PermissionSource {
  of(context: RequestContext, collection: string): CollectionPermissions;
  /** Calls `changed` when this user's permissions may have changed; returns an unsubscribe. */
  watch(context: RequestContext, changed: () => void): () => void;
}

export interface RequestContext {
  user: User;
  /** Over WebSocket, a client on an older compatible schema (graphql/client-schema.ts); else null. */
  clientSchema?: SessionSchema | null;
  /** Over graphql-ws, a subscription's own socket writer (websocket.ts): sync streams share rendered events. */
  frames?: FrameSink;
}

export interface ApiLimits {
  maxPullLimit: number;
  maxPushRows: number;
  maxListLimit: number;
  maxQueryTimeMs: number;
  maxQueuedDocuments: number;
  maxQueuedBytes: number;
  /** Stored bytes of one page (TRIBUTARY_MAX_PAGE_BYTES): a plain list past it is refused. */
  maxPageBytes: number;
}

const SYNC_SDL = /* GraphQL */ `
  "A JSON object: a document in the sync protocol, validated by the gateway against its type."
  scalar JSONObject

  "Position in a collection's change feed; opaque to clients. epoch: which history seq counts in; a checkpoint of another one gets CLIENT_RESET (PROTOCOL.md, Client reset)."
  type SyncCheckpoint { seq: Float!, epoch: String }
  input SyncCheckpointInput { seq: Float!, epoch: String }

  "hasMore: there is more (the page is full, or at its byte budget); pull again from checkpoint."
  type SyncPullBulk { documents: [JSONObject!]!, checkpoint: SyncCheckpoint!, hasMore: Boolean! }

  "A page of a subscription query's initial documents; see PROTOCOL.md, Bootstrap."
  type SyncBootstrapPage { documents: [JSONObject!]!, snapshot: Float!, next: ID, estimatedTotal: Int }

  "resync: true asks the client to pull from its checkpoint (first event of every stream)."
  type SyncStreamEvent { documents: [JSONObject!]!, checkpoint: SyncCheckpoint, resync: Boolean! }

  input SyncPushRow { assumedMasterState: JSONObject, newDocumentState: JSONObject! }

  "realmCode: 231 for a compensating write (PERMISSION_DENIED)."
  type PushRejection { id: String, code: String!, field: String, message: String!, realmCode: Int }

  "conflicts: server state of every document not applied (conflicting or rejected)."
  type SyncPushResult { conflicts: [JSONObject!]!, rejected: [PushRejection!]! }

  "The user a request runs as."
  type Viewer { id: ID!, provider: String!, data: JSONObject!, customData: JSONObject }

  type Query { viewer: Viewer! }
  type Mutation { _empty: Boolean }
  type Subscription { _empty: Boolean }
`;

export function buildSchema(model: DataModel, runtimes: Map<string, CollectionRuntime>, limits: ApiLimits, permissions: PermissionSource): GraphQLSchema {
  // The BSON scalars (and DateTime) work whether schema.graphql declares them or not.
  const typeDefs = [print(model.document), SYNC_SDL, ...missingScalarDefinitions(model.document), ...inputTypeDefs(model)];
  const resolvers: Record<string, object> & Record<'Query' | 'Mutation' | 'Subscription', Record<string, unknown>> = {
    JSONObject: jsonObjectScalar,
    DateTime: dateTimeScalar,
    ...BSON_SCALARS,
    Query: { viewer: (_: unknown, __: unknown, context: { user: User }) => context.user },
    Mutation: {},
    Subscription: {},
  };
  for (const collection of model.collections) {
    const runtime = runtimes.get(collection.name)!;
    const names = plainOperationNames(collection);
    typeDefs.push(collectionTypeDefs(collection, names));
    const perms = (context: RequestContext) => permissions.of(context, collection.name);
    Object.assign(resolvers.Query, queryResolvers(runtime, names, limits, perms));
    Object.assign(resolvers.Mutation, mutationResolvers(runtime, names, limits, perms));
    Object.assign(resolvers.Subscription, subscriptionResolvers(runtime, names, limits, perms, permissions.watch));
  }
  return makeExecutableSchema({ typeDefs, resolvers });
}

export interface PlainNames {
  list: string;
  get: string;
  insert: string;
  update: string;
  delete: string;
  watch: string;
}

export function plainOperationNames(c: CollectionModel): PlainNames {
  const type = c.typeName;
  const single = type[0]!.toLowerCase() + type.slice(1);
  if (single === c.name) throw new GraphQLError(`collection name "${c.name}" must differ from "${single}" (used for get by id)`);
  const plural = c.name[0]!.toUpperCase() + c.name.slice(1);
  return { list: c.name, get: single, insert: `insert${type}`, update: `update${type}`, delete: `delete${type}`, watch: `watch${plural}` };
}

function collectionTypeDefs(c: CollectionModel, n: PlainNames): string {
  const sync = syncOperations(c).fields;
  const t = c.typeName;
  // The key's own scalar (ID, ObjectId, UUID or Long): a malformed id is refused as input.
  const key = keyScalar(c);
  return /* GraphQL */ `
    type ${t}Change { id: ${key}!, deleted: Boolean!, document: ${t} }
    extend type Query {
      "view: the client's subscription queries on ${c.name} (absent: everything)."
      ${sync.pull}(checkpoint: SyncCheckpointInput, limit: Int!, view: [JSONObject!], stamps: Boolean = false): SyncPullBulk!
      ${sync.bootstrap}(query: JSONObject!, exclude: [JSONObject!], after: ID, snapshot: Float, limit: Int!, stamps: Boolean = false): SyncBootstrapPage!
      "Live documents matching filter (MongoDB query syntax on ${t}'s fields), ordered by id."
      ${n.list}(filter: JSONObject, limit: Int = 100): [${t}!]!
      ${n.get}(id: ${key}!): ${t}
    }
    extend type Mutation {
      "view: the pushing client's subscription queries on ${c.name}; a row whose document falls outside them is refused (compensating write), as in Realm."
      ${sync.push}(rows: [SyncPushRow!]!, view: [JSONObject!]): SyncPushResult!
      ${n.insert}(input: ${t}Input!): ${t}!
      ${hasCounters(c) ? `"inc: amounts to add to @counter fields; they add up with concurrent increments from anywhere."
      ${n.update}(id: ${key}!, set: ${t}Patch = {}, inc: ${t}Increment): ${t}!` : `${n.update}(id: ${key}!, set: ${t}Patch!): ${t}!`}
      "False when there was no such ${t}."
      ${n.delete}(id: ${key}!): Boolean!
    }
    extend type Subscription {
      "stamps: send documents' per-field clock stamps (_stamps), for clients that stamp their changes."
      ${sync.stream}(view: [JSONObject!], stamps: Boolean = false): SyncStreamEvent!
      "Each event lists the ${t} changes that match filter (deleted ones with document: null)."
      ${n.watch}(filter: JSONObject): [${t}Change!]!
    }
  `;
}

/** `TaskInput`, `TaskPatch` per collection and `XInput` for each embedded object type. */
function inputTypeDefs(model: DataModel): string[] {
  const embedded = new Map<string, FieldModel[]>();
  const collect = (type: FieldType) => {
    if (type.kind === 'list') collect(type.of);
    if (type.kind === 'object' && !embedded.has(type.name)) {
      embedded.set(type.name, type.fields);
      type.fields.forEach((f) => collect(f.type));
    }
  };
  model.collections.forEach((c) => c.fields.forEach((f) => collect(f.type)));

  const inputField = (f: FieldModel, forceNullable: boolean) => `${f.name}: ${inputTypeRef(f.type)}${f.nullable || forceNullable ? '' : '!'}`;
  const defs: string[] = [];
  for (const [name, fields] of embedded) defs.push(`input ${name}Input { ${fields.map((f) => inputField(f, false)).join(', ')} }`);
  for (const c of model.collections) {
    defs.push(`input ${c.typeName}Input { ${c.fields.map((f) => inputField(f, false)).join(', ')} }`);
    const patchable = c.fields.filter((f) => f.name !== 'id');
    defs.push(`"Fields to change; omitted fields keep their value." input ${c.typeName}Patch { ${patchable.map((f) => inputField(f, true)).join(', ')} }`);
    const counters = c.fields.filter((f) => f.merge === 'counter');
    if (counters.length > 0) defs.push(`"Amounts to add to @counter fields (negative to subtract)." input ${c.typeName}Increment { ${counters.map((f) => inputField(f, true)).join(', ')} }`);
  }
  return defs;
}

function hasCounters(c: CollectionModel): boolean {
  return c.fields.some((f) => f.merge === 'counter');
}

function inputTypeRef(type: FieldType): string {
  switch (type.kind) {
    case 'scalar':
    case 'enum':
      return type.name;
    case 'object':
      return `${type.name}Input`;
    case 'list':
      return `[${inputTypeRef(type.of)}${type.itemNullable ? '' : '!'}]`;
  }
}

type Perms = (context: RequestContext) => CollectionPermissions;

function queryResolvers({ model, store, resets }: CollectionRuntime, n: PlainNames, limits: ApiLimits, perms: Perms) {
  const sync = syncOperations(model).fields;
  return {
    [sync.pull]: async (_: unknown, args: { checkpoint: Checkpoint | null; limit: number; view?: unknown[] | null; stamps: boolean }, context: RequestContext) => {
      checkLimit('limit', args.limit, limits.maxPullLimit);
      const view = asBadQuery(() => compileView(model, args.view, perms(context), args.stamps));
      const epoch = await resets.admit(store, args.checkpoint, context.user?.id ?? null);
      const result = await pull(store, args.checkpoint, args.limit, view, limits.maxPageBytes);
      return { ...result, checkpoint: { ...result.checkpoint, epoch } };
    },
    [sync.bootstrap]: (
      _: unknown,
      args: { query: unknown; exclude?: unknown[] | null; after?: string | null; snapshot?: number | null; limit: number; stamps: boolean },
      context: RequestContext,
    ) => {
      checkLimit('limit', args.limit, limits.maxPullLimit);
      const permissions = perms(context);
      const query = asBadQuery(() => compileFilter(model, args.query, { queryableOnly: true, subscription: true, readableField: (f) => permissions.readableField(f) }));
      const exclude = args.exclude?.length ? asBadQuery(() => compileView(model, args.exclude, permissions)).filter : null;
      const key = bootstrapKey(args.query, args.exclude ?? null);
      const view = compileView(model, null, permissions, args.stamps);
      return withinQueryTime(limits, () => bootstrap(store, { query, exclude, after: args.after ?? null, snapshot: args.snapshot ?? null, limit: args.limit, key, view, maxTimeMs: limits.maxQueryTimeMs, maxBytes: limits.maxPageBytes }));
    },
    [n.list]: async (_: unknown, args: { filter?: unknown; limit: number }, context: RequestContext) => {
      checkLimit('limit', args.limit, limits.maxListLimit);
      const permissions = perms(context);
      const { read } = permissions;
      const filter = asBadQuery(() => compileFilter(model, args.filter, { queryableOnly: false, readableField: (f) => permissions.readableField(f) }));
      if (read === 'none') return [];
      const selection = read === 'all' ? filter.stored : ({ $and: [filter.stored, read.stored] } as Filter<StoredDocument>);
      // Read up to the byte budget only: a list has no next page to continue on, so one that would
      // hold more is refused rather than cut short (a client would take it for the whole answer).
      const cursor = store.documentsCursor(store.documents.find(selection as Filter<PlainDocument>).sort({ _id: 1 }).limit(args.limit).maxTimeMS(limits.maxQueryTimeMs));
      const page = await withinQueryTime(limits, () => readPage(cursor, args.limit, limits.maxPageBytes)).finally(() => cursor.close());
      if (!page.exhausted && page.documents.length < args.limit) {
        throw new GraphQLError(`the answer would exceed ${limits.maxPageBytes} bytes; ask for fewer documents`, { extensions: { code: 'TOO_LARGE' } });
      }
      return page.documents.map((d) => permissions.project(store.toWire(d)));
    },
    [n.get]: async (_: unknown, args: { id: string }, context: RequestContext) => {
      const id = asBadQuery(() => store.storedId(args.id));
      const found = (await store.findByIds([id])).get(idKey(id));
      const permissions = perms(context);
      return found && !found._sync.deleted && inSet(permissions.read, found) ? permissions.project(store.toWire(found)) : null;
    },
  };
}

function mutationResolvers({ model, store, writer }: CollectionRuntime, n: PlainNames, limits: ApiLimits, perms: Perms) {
  const sync = syncOperations(model).fields;
  const t = model.typeName;
  /**
   * Server-side read-modify-write through the sync write path (and its permission checks),
   * retried if another write wins. A document the user may not read does not exist for it (only
   * its id is taken).
   */
  const writeDocument = async (
    context: RequestContext,
    id: string,
    /** `current`: what the user may read of it (null: nothing); `taken`: whether the id is in use at all. */
    next: (current: SyncDocument | null, taken: boolean) => SyncDocument | null,
  ): Promise<SyncDocument | null> => {
    const permissions = perms(context);
    const storedId = asBadQuery(() => store.storedId(id));
    // Read and written holding the document's lock (writer.change): a conflict can only come
    // from another service writing it directly, and is tried again on what it wrote.
    for (let attempt = 0; attempt < 5; attempt++) {
      let doc: SyncDocument | null = null;
      const result = await writer.change(storedId, permissions, (stored) => {
        const visible = stored && inSet(permissions.read, stored) ? stored : undefined;
        // What the user may see of it, as a sync client would hold it: hidden fields stay out (the
        // write path keeps their stored values), and so do stamps (a plain mutation is an
        // unstamped change, stamped by the gateway).
        const current = visible ? permissions.project(store.toWire(visible, false)) : null;
        doc = next(current, stored !== undefined);
        return doc && { assumedMasterState: current, newDocumentState: doc };
      });
      if (!result || !doc) return null;
      throwIfRejected(result);
      if (result.conflicts.length === 0) {
        // The answer passes the read rules now: another write may have landed since ours. Then
        // the user is told what it wrote, no more.
        const written = (await store.findByIds([storedId])).get(idKey(storedId));
        return permissions.project(written && inSet(permissions.read, written) ? store.toWire(written) : doc);
      }
    }
    throw new GraphQLError(`${t} ${id} is being changed concurrently; try again`, { extensions: { code: 'CONFLICT' } });
  };

  return {
    [sync.push]: (_: unknown, args: { rows: unknown[]; view?: unknown[] | null }, context: RequestContext) => {
      checkLimit('rows', args.rows.length, limits.maxPushRows);
      const permissions = perms(context);
      return writer.push(args.rows, permissions, asBadQuery(() => compileView(model, args.view, permissions)).filter);
    },
    [n.insert]: async (_: unknown, args: { input: Record<string, unknown> }, context: RequestContext) => {
      const id = String(args.input.id);
      const doc = { ...args.input, [DELETED_FIELD]: false } as SyncDocument;
      // What the document itself may not be is said first, and an id in use gets one answer
      // whoever's document holds it, live or deleted (deletes win: a deleted id stays deleted):
      // the refusal tells nothing more about documents this user cannot read.
      const denial = writeDenial(perms(context), model, undefined, doc);
      if (denial) throw new GraphQLError(denialReason(model, id, denial), { extensions: { code: 'PERMISSION_DENIED', field: denial.field } });
      return writeDocument(context, id, (_current, taken) => {
        if (taken) throw new GraphQLError(`${t} ${id} already exists (ids are never reused)`, { extensions: { code: 'ALREADY_EXISTS' } });
        return doc;
      });
    },
    [n.update]: (_: unknown, args: { id: string; set: Record<string, unknown>; inc?: Record<string, number | null> | null }, context: RequestContext) =>
      writeDocument(context, args.id, (current) => {
        if (!current || current[DELETED_FIELD]) throw new GraphQLError(`${t} ${args.id} not found`, { extensions: { code: 'NOT_FOUND' } });
        const next: Record<string, unknown> = { ...current, ...args.set };
        // Added to the state as stored: writeDocument reads it holding the document's lock.
        for (const [field, amount] of Object.entries(args.inc ?? {})) {
          if (amount !== null) next[field] = ((next[field] as number | null | undefined) ?? 0) + amount;
        }
        return next as SyncDocument;
      }),
    [n.delete]: async (_: unknown, args: { id: string }, context: RequestContext) =>
      (await writeDocument(context, args.id, (current) => (current && !current[DELETED_FIELD] ? { ...current, [DELETED_FIELD]: true } : null))) !== null,
  };
}

function subscriptionResolvers({ model, store, feed, resets }: CollectionRuntime, n: PlainNames, limits: ApiLimits, perms: Perms, watch: PermissionSource['watch']) {
  const sync = syncOperations(model).fields;
  return {
    [sync.stream]: {
      subscribe: (_: unknown, args: { view?: unknown[] | null; stamps: boolean }, context: RequestContext) => {
        const makeView = () => asBadQuery(() => compileView(model, args.view, perms(context), args.stamps));
        makeView(); // a bad view fails the subscription here, before it starts
        const userId = context.user?.id ?? null;
        const frames = context.frames && { sink: context.frames, epoch: () => resets.knownEpoch(store, userId) ?? resets.epochFor(store, userId) };
        return syncStream(feed, store, makeView, { ...limits, watchPermissions: (changed) => watch(context, changed), frames });
      },
      // Rendered frames carry their epoch already; per-subscriber events get the user's here.
      resolve: (event: StreamEvent, _: unknown, context: RequestContext) =>
        !event.checkpoint || event.checkpoint.epoch !== undefined
          ? event
          : resets.epochFor(store, context.user?.id ?? null).then((epoch) => ({ ...event, checkpoint: { ...event.checkpoint!, epoch } })),
    },
    [n.watch]: {
      subscribe: (_: unknown, args: { filter?: unknown }, context: RequestContext) => {
        const compile = (permissions: CollectionPermissions) => asBadQuery(() => compileFilter(model, args.filter, { queryableOnly: false, readableField: (f) => permissions.readableField(f) }));
        let checkedFor = perms(context);
        let filter = compile(checkedFor);
        return openStream(
          feed,
          (batch) => {
            // The permissions as they are now, for every batch: a user whose access was revoked
            // stops receiving at once (rules/permissions.ts decides once per change, not per call),
            // and a filter on a field it may no longer read ends the subscription.
            const permissions = perms(context);
            if (permissions !== checkedFor) {
              filter = compile(permissions);
              checkedFor = permissions;
            }
            const { read } = permissions;
            let bytes = 0;
            const changes = batch.stored.flatMap((stored, i) => {
              if (!filter.matches(stored) || !inSet(read, stored)) return [];
              const deleted = stored._sync.deleted;
              bytes += deleted ? 64 : batch.bytes(i);
              return [{ id: toWireId(model, stored._id), deleted, document: deleted ? null : permissions.project(batch.documents[i]!) }];
            });
            return changes.length > 0 ? { event: changes, documents: changes.length, bytes } : null;
          },
          limits,
        );
      },
      resolve: (changes: unknown) => changes,
    },
  };
}

/** Runs `compile`, turning a QueryError into a GraphQL error with code BAD_QUERY (Realm's 226). */
function asBadQuery<T>(compile: () => T): T {
  try {
    return compile();
  } catch (error) {
    if (error instanceof QueryError) throw new GraphQLError(`bad filter: ${error.message}`, { extensions: { code: error.code, realmCode: error.realmCode } });
    throw error;
  }
}

/**
 * Runs a store query built from a client's filter, which the store stops after maxQueryTimeMs
 * (a pattern can backtrack in MongoDB's regex engine): that becomes a clear QUERY_TIMEOUT.
 */
async function withinQueryTime<T>(limits: ApiLimits, query: () => Promise<T>): Promise<T> {
  try {
    return await query();
  } catch (error) {
    // (Number: read with promoteValues off, a server error's code is an Int32.)
    if (Number((error as { code?: unknown }).code) === MAX_TIME_EXPIRED) {
      throw new GraphQLError(`the query took longer than ${limits.maxQueryTimeMs} ms; narrow the filter`, { extensions: { code: 'QUERY_TIMEOUT' } });
    }
    throw error;
  }
}

/** MongoDB's error code for an operation stopped by its maxTimeMS. */
const MAX_TIME_EXPIRED = 50;

function throwIfRejected(result: PushResult): void {
  const rejection = result.rejected[0];
  if (rejection) throw new GraphQLError(rejection.message, { extensions: { code: rejection.code, field: rejection.field } });
}

function checkLimit(name: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw new GraphQLError(`${name} must be between 1 and ${max}`, { extensions: { code: 'BAD_REQUEST' } });
  }
}

// Nesting is bounded (MAX_JSON_DEPTH, gateway/limits/json-depth.ts): storing and serializing recurse.
const jsonObjectScalar = new GraphQLScalarType({
  name: 'JSONObject',
  serialize: (value) => value,
  parseValue: (value) => {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new GraphQLError('JSONObject must be an object');
    return checkJsonDepth(value);
  },
  parseLiteral: (ast, variables) => {
    if (ast.kind !== Kind.OBJECT) throw new GraphQLError('JSONObject must be an object');
    return checkJsonDepth(valueFromASTUntyped(ast, variables));
  },
});

function checkJsonDepth<T>(value: T): T {
  if (nestsDeeperThan(value, MAX_JSON_DEPTH)) {
    throw new GraphQLError(`JSONObject nests deeper than ${MAX_JSON_DEPTH} levels`, { extensions: { code: 'BAD_REQUEST' } });
  }
  return value;
}

const dateTimeScalar = new GraphQLScalarType({
  name: 'DateTime',
  description: 'An instant in ISO 8601 with a time zone, e.g. 2026-11-26T09:30:00Z.',
  serialize: (value) => (value instanceof Date ? value.toISOString() : value),
  parseValue: (value) => parseDateTime(value),
  parseLiteral: (ast) => parseDateTime(ast.kind === Kind.STRING ? ast.value : null),
});

function parseDateTime(value: unknown): string {
  if (typeof value !== 'string' || !/^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)$/i.test(value) || Number.isNaN(Date.parse(value))) {
    throw new GraphQLError(`DateTime must be an ISO 8601 instant with a time zone, got ${JSON.stringify(value)}`);
  }
  return value;
}
