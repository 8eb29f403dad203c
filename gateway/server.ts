// Assembles the gateway: MongoDB collections and their change feeds, the generated GraphQL
// schema, graphql-yoga over HTTP and graphql-ws over WebSocket on the same port.
import { watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { useServer } from 'graphql-ws/use/ws';
import { createYoga } from 'graphql-yoga';
import { MongoClient } from 'mongodb';
import { pino, type Logger } from 'pino';
import { WebSocketServer, type WebSocket } from 'ws';
import { getCollection, loadModel, type DataModel } from '../protocol/model.ts';
import { canonicalModel } from '../protocol/schema-evolution.ts';
import { DEFAULTS, type GatewayConfig } from './config.ts';
import { applyCors, originAllowed } from './cors.ts';
import { AuthError, Authenticator, type User } from './auth/authenticator.ts';
import { CLOSE_CODES } from '../protocol/messages.ts';
import { buildSchema, type CollectionRuntime } from './graphql/schema.ts';
import { operationsRunning, yogaOverWebSocket } from './graphql/websocket.ts';
import { SessionAdmission } from './limits/admission.ts';
import { operationLimitPlugins } from './limits/operation-limits.ts';
import { noInternalErrorDetail, subscriptionsOverWebSocketOnly } from './limits/transport.ts';
import { loadRules } from './rules/load.ts';
import { ClientResets } from './sync/client-reset.ts';
import { TombstoneRetention } from './store/retention.ts';
import { PermissionEngine } from './rules/permissions.ts';
import { ChangeFeed } from './store/change-feed.ts';
import { detectStoreLimits, Semaphore } from './store/store-limits.ts';
import { CollectionStore, COUNTERS_COLLECTION } from './store/collection-store.ts';
import { CollectionWriter } from './sync/push.ts';
import { createValidator } from './sync/validate.ts';
import { OutsideWrites } from './sync/outside-writes.ts';
import { detectOutsideChangeSource, NO_OUTSIDE_CHANGES } from './store/outside-changes.ts';
import { LEASES_COLLECTION, RoleLease, type LeaseDocument } from './store/role-lease.ts';
import { recordSchema } from './store/schema-history.ts';
import { LOCKS_COLLECTION, StoreLocks, type LockDocument } from './store/store-locks.ts';
import { DEFAULT_INSTANCES, Instances, INSTANCES_COLLECTION, type InstanceDocument } from './store/instances.ts';
import { detectCommitSignal } from './store/commit-signal.ts';
import { checkClientSchema, type SessionSchema } from './graphql/client-schema.ts';
import { Activity } from './ops/activity.ts';
import { handleOps, sendJson } from './ops/http.ts';
import { countingStoreErrors, GatewayMetrics } from './ops/metrics.ts';
import { instrumentSchema, opsPlugin } from './ops/plugin.ts';

/** Where outside-change sources keep their resume points. */
const RESUME_COLLECTION = '_tributary_resume';

export const GRAPHQL_PATH = '/graphql';

export interface Gateway {
  /** http://host:port/graphql */
  httpUrl: string;
  /** ws://host:port/graphql */
  wsUrl: string;
  port: number;
  model: DataModel;
  collections: Map<string, CollectionRuntime>;
  auth: Authenticator;
  /** Re-reads the rules folder; open sessions get the new permissions live. Bad rules are refused. */
  reloadRules(): Promise<void>;
  log: Logger;
  /** Adoption of existing documents and following of other services' writes. */
  outsideWrites: OutsideWrites;
  /**
   * Before a restart (SIGTERM, main.ts): /ready answers 503 and new sessions are refused (1012);
   * the open sockets are closed with 1012 spread over `ms`, each once its queries and mutations
   * have finished (at the latest at `ms`). Resolves when all are closed; `stop()` follows.
   */
  drain(ms?: number): Promise<void>;
  /** Stops accepting, closes sockets (1001), finishes writes under way, stops change feeds, closes the MongoDB client. */
  stop(): Promise<void>;
}

export type GatewayOptions = Partial<GatewayConfig> & { mongoUri: string; logger?: Logger };

export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const config: GatewayConfig = { ...DEFAULTS, ...stripUndefined(options), mongoUri: options.mongoUri };
  const log = options.logger ?? pino({ level: config.logLevel });
  const model = loadModel(await readFile(config.schemaPath, 'utf8'));

  const mongo = new MongoClient(config.mongoUri, { serverSelectionTimeoutMS: 10_000 });
  await mongo.connect();
  const db = mongo.db(config.database);
  // The schema served, against the one recorded before it: a breaking change is refused here,
  // before anything is created (store/schema-history.ts).
  const canonical = canonicalModel(model);
  await recordSchema(db, canonical, { acceptBreaking: config.acceptBreakingSchema, log }).catch(async (error: unknown) => {
    await mongo.close();
    throw error;
  });

  // Filled in below; the metrics read them when scraped.
  const collections = new Map<string, CollectionRuntime>();
  let wss: WebSocketServer | undefined;
  const metrics = new GatewayMetrics({ connections: () => wss?.clients.size ?? 0, collections });
  const backgroundLog = countingStoreErrors(log, () => metrics.storeError('background'));

  const limits = await detectStoreLimits(db);
  const updateCommands = new Semaphore(limits.concurrentUpdateCommands);
  // Set once the collections exist; writers report invalid documents to it.
  let outsideWrites: OutsideWrites | undefined;
  const resets = new ClientResets(db);
  // Shared with the other instances on this database: document writes, and sequence counters
  // where updates are not atomic (ARCHITECTURE.md, "Several instances").
  const storeLocks = new StoreLocks(db.collection<LockDocument>(LOCKS_COLLECTION));
  const instances = new Instances(db.collection<InstanceDocument>(INSTANCES_COLLECTION), storeLocks, DEFAULT_INSTANCES, (err) => backgroundLog.warn({ err }, 'instances: heartbeat failed'));
  await instances.start();
  for (const collectionModel of model.collections) {
    const store = new CollectionStore(collectionModel, db, { leaseTtlMs: config.leaseTtlMs, limits, updateCommands, invalidDocuments: config.invalidDocuments, locks: instances });
    await store.init();
    const feed = new ChangeFeed(store, { pollIntervalMs: config.pollIntervalMs, readBatchSize: 1_000, maxBatchBytes: config.maxPageBytes, observer: metrics.feedObserver(collectionModel.name) }, log);
    await feed.start();
    const writer = new CollectionWriter(store, createValidator(collectionModel), () => feed.wake(), {
      strategy: config.conflictStrategies[collectionModel.name] ?? 'field-lww',
      maxClockSkewMs: config.maxClockSkewMs,
    }, { log, onInvalid: (key, violation) => outsideWrites?.invalidReporter(collectionModel.name)(key, violation) });
    collections.set(collectionModel.name, { model: collectionModel, store, writer, feed, resets });
  }
  // Other instances' commits wake the feeds at once (the poll stays as the backstop); needed only
  // while there are other instances.
  const commitSignal = await detectCommitSignal(mongo, db, COUNTERS_COLLECTION, backgroundLog);
  const wakeFeeds = (collection: string | undefined) => {
    // (As the poll: a feed nobody listens to reads nothing.)
    for (const c of collection === undefined ? collections.values() : [collections.get(collection)]) if (c && c.feed.listenerCount > 0) c.feed.wake();
  };
  instances.onPeers((present) => (present ? commitSignal.start(wakeFeeds) : void commitSignal.stop()));
  // Documents already in MongoDB, and what other services write (sync/outside-writes.ts).
  const source = config.followOutsideChanges
    ? await detectOutsideChangeSource(mongo, db, { collections: model.collections.map((c) => c.name), resumeStore: db.collection(RESUME_COLLECTION), log: backgroundLog })
    : NO_OUTSIDE_CHANGES;
  const followerLease = new RoleLease(db.collection<LeaseDocument>(LEASES_COLLECTION), 'outside-changes', { ttlMs: config.followerLeaseMs });
  outsideWrites = new OutsideWrites(collections, source, followerLease, { fullPassIntervalMs: config.fullPassIntervalMs, batchSize: 500, log: backgroundLog, followingDisabled: !config.followOutsideChanges });
  await outsideWrites.start();
  const retention = config.tombstoneRetentionMs > 0
    ? new TombstoneRetention([...collections.values()], resets, { retentionMs: config.tombstoneRetentionMs, batchSize: 500, log: backgroundLog })
    : null;
  retention?.start();

  const auth = new Authenticator(config.auth, db);
  await auth.init();
  if (auth.devTokens) log.warn('DEV TOKENS ARE ACCEPTED: anyone can act as any user. Never run this in production.');

  const rules = await loadRules(config.rulesPath, model);
  log.info({ rules: rules.files, collections: [...rules.roles.keys()] }, 'permission rules loaded');
  const permissions = new PermissionEngine(model, rules);
  const activity = new Activity(config.rulesPath, rules);
  const schema = buildSchema(model, collections, config, {
    // A client on an older (compatible) schema sees and changes only the fields it knows.
    of: (context, collection) => {
      const base = permissions.forUser(context.user, collection);
      return context.clientSchema ? context.clientSchema.permissions(base, getCollection(model, collection)) : base;
    },
    watch: (context, changed) => permissions.onChange((user) => (user === null || user === context.user) && changed()),
  });
  instrumentSchema(schema, model, metrics, activity);
  const reloadRules = async () => {
    try {
      const next = await loadRules(config.rulesPath, model);
      permissions.reload(next);
      activity.rulesLoaded(next);
      log.info({ rules: next.files }, 'permission rules reloaded; open sessions re-evaluated');
    } catch (error) {
      activity.rulesRefused(error);
      log.error({ err: error }, 'new permission rules refused; the previous ones stay in force');
    }
  };
  // Development: pick up edits of rules/ at once. Production: send SIGHUP (main.ts).
  const rulesWatcher = config.watchRules ? watchFolder(config.rulesPath, reloadRules) : null;

  // Open sessions (a socket's user) follow their users' custom data: a change re-evaluates their
  // roles live.
  const sessions = new Map<User, WebSocket>();
  const customDataPoll = setInterval(() => {
    if (sessions.size === 0) return;
    void auth.refreshCustomData([...sessions.keys()]).then(
      (changed) => changed.forEach((user) => permissions.userChanged(user)),
      (error: unknown) => {
        metrics.storeError('background', error);
        log.warn({ err: error }, 'custom data refresh failed');
      },
    );
  }, config.customDataPollMs);
  customDataPoll.unref();
  // An API key has no expiry: a session opened with one ends when the key is revoked.
  let checkingKeys = false;
  const apiKeyCheck = setInterval(() => {
    const keyed = [...sessions].filter(([user]) => user.provider === 'api-key');
    if (keyed.length === 0 || checkingKeys) return;
    checkingKeys = true;
    void auth.apiKeys
      .invalidAmong(keyed.map(([user]) => String(user.data.keyId)))
      .then(
        (invalid) => {
          for (const [user, socket] of keyed) {
            const error = invalid.get(String(user.data.keyId));
            if (error) socket.close(CLOSE_CODES.UNAUTHORIZED, closeReason(`${error.reason}: ${error.message}`));
          }
        },
        (error: unknown) => {
          if (stopping) return;
          metrics.storeError('background', error);
          log.warn({ err: error }, 'API key revocation check failed');
        },
      )
      .finally(() => (checkingKeys = false));
  }, config.apiKeyCheckMs);
  apiKeyCheck.unref();
  const yoga = createYoga<{ req?: IncomingMessage & { user?: User }; user?: User; clientSchema?: SessionSchema | null }>({
    schema,
    graphqlEndpoint: GRAPHQL_PATH,
    logging: log,
    graphiql: { subscriptionsProtocol: 'WS' },
    // CORS is the HTTP server's, for every route alike (cors.ts).
    cors: false,
    // Unexpected errors reach clients as "Unexpected error." (code INTERNAL_SERVER_ERROR), in
    // development too; the log has them.
    maskedErrors: { isDev: false },
    maxRequestBodySize: config.maxPayloadBytes, // bodies without a content-length too
    // Subscriptions only over graphql-ws, where sessions end with their credentials (transport.ts);
    // no internal error text (Yoga's originalError) in any answer.
    plugins: [...operationLimitPlugins(config), subscriptionsOverWebSocketOnly(), noInternalErrorDetail(), opsPlugin(model, metrics, activity)],
    // Every operation runs as an authenticated user: HTTP requests were checked before Yoga saw
    // them, sockets when they connected.
    // Over WebSocket, what the client knows of the schema (graphql/client-schema.ts).
    context: ({ req, user, clientSchema }) => ({ user: user ?? req?.user, clientSchema: clientSchema ?? null }),
  });

  let draining = false;
  const admission = new SessionAdmission(config.maxConnections, config.maxSessionStartsPerSecond);
  const isReady = async () => {
    if (draining) return false;
    try {
      await db.command({ ping: 1 });
      return true;
    } catch (error) {
      metrics.storeError('ready', error);
      return false;
    }
  };

  const ops = { auth, metrics, activity, collections, metricsToken: config.metricsToken, adminClaim: config.adminClaim, log };
  const httpServer = createServer((req: IncomingMessage, res: ServerResponse) => {
    // Browser apps on other origins: headers on every answer, preflights answered here (cors.ts).
    if (applyCors(config.corsOrigins, req, res)) return;
    // /health, /metrics and /admin (gateway/ops/): before GraphQL and its authentication.
    if (handleOps(ops, req, res)) return;
    if (req.url === '/ready') {
      void isReady().then((ready) => {
        res.writeHead(ready ? 200 : 503, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ ready, ...(draining ? { draining } : {}), outsideWrites: outsideWrites!.status() }));
      });
      return;
    }
    if (Number(req.headers['content-length'] ?? 0) > config.maxPayloadBytes) {
      res.writeHead(413, { 'content-type': 'application/json', connection: 'close' });
      res.end(JSON.stringify({ errors: [{ message: `request body exceeds ${config.maxPayloadBytes} bytes` }] }));
      return;
    }
    if (req.url === '/auth/anonymous' && req.method === 'POST') {
      void auth.issueAnonymous().then(
        (issued) => sendJson(res, 200, issued),
        (error: unknown) => {
          if (error instanceof AuthError) return sendJson(res, 403, { errors: [{ message: error.message, extensions: { code: 'UNAUTHENTICATED', reason: error.reason } }] });
          log.error({ err: error }, 'issuing an anonymous token failed');
          sendJson(res, 500, { errors: [{ message: 'internal error' }] });
        },
      );
      return;
    }
    // The GraphiQL page itself runs nothing; every GraphQL request needs a user.
    if (req.method === 'GET' && req.headers.accept?.includes('text/html')) {
      void yoga.handle(req, res);
      return;
    }
    void auth.authenticateHeader(req.headers.authorization).then(
      (user) => {
        (req as IncomingMessage & { user?: User }).user = user;
        void yoga.handle(req, res);
      },
      (error: unknown) => {
        if (!(error instanceof AuthError)) {
          log.error({ err: error }, 'authentication failed unexpectedly');
          sendJson(res, 500, { errors: [{ message: 'authentication failed' }] });
          return;
        }
        sendJson(res, 401, { errors: [{ message: `unauthorized: ${error.message}`, extensions: { code: 'UNAUTHENTICATED', reason: error.reason } }] });
      },
    );
  });

  wss = new WebSocketServer({
    server: httpServer,
    path: GRAPHQL_PATH,
    maxPayload: config.maxPayloadBytes,
    // Browsers send their page's origin; apps outside TRIBUTARY_CORS_ORIGINS get no socket.
    verifyClient: ({ origin }: { origin?: string }) => originAllowed(config.corsOrigins, origin),
  });
  const wsServer = useServer<Record<string, unknown> | undefined, { user?: User; clientSchema?: SessionSchema | null }>(
    {
      // graphql-ws closes a socket with 4500 when a handler throws; with isProd the reason is
      // "Internal server error", never the error's message.
      isProd: true,
      // Nothing runs for a socket until its connection_init carries valid credentials.
      onConnect: async (ctx) => {
        const socket = ctx.extra.socket;
        // Shed load before the credentials are checked: that is most of a session's start.
        if (draining) {
          metrics.sessionRefused('draining');
          socket.close(CLOSE_CODES.SERVICE_RESTART, 'gateway restarting: reconnect');
          return false;
        }
        const refusal = admission.refuse(wss!.clients.size);
        if (refusal) {
          metrics.sessionRefused(refusal);
          socket.close(CLOSE_CODES.TRY_AGAIN_LATER, admission.reason(refusal));
          return false;
        }
        try {
          const user = await auth.authenticate(ctx.connectionParams?.authToken);
          if (socket.readyState !== socket.OPEN) return false; // gone while we checked: no session to keep
          // The client's data model (the SDK sends it): refused if it breaks against ours.
          const schemaCheck = checkClientSchema(canonical, ctx.connectionParams?.schema);
          if (!schemaCheck.ok) {
            socket.close(schemaCheck.malformed ? 4400 : CLOSE_CODES.SCHEMA_OUTDATED, closeReason(schemaCheck.reason));
            return false;
          }
          ctx.extra.clientSchema = schemaCheck.session;
          ctx.extra.user = user;
          sessions.set(user, socket);
          socket.once('close', () => sessions.delete(user));
          activity.opened(socket, user, ctx.extra.request);
          if (user.expiresAt !== null) {
            // An open session ends when its token does; the client reconnects with a fresh one.
            const cancel = runAt(user.expiresAt, () => socket.close(CLOSE_CODES.TOKEN_EXPIRED, 'token expired'));
            socket.once('close', cancel);
          }
          return true;
        } catch (error) {
          if (!(error instanceof AuthError)) {
            // e.g. MongoDB unreachable while checking an API key: a retry may succeed (1011 is retried).
            log.error({ err: error }, 'authentication failed unexpectedly');
            socket.close(1011, 'internal error');
            return false;
          }
          const code = error.reason === 'expired' ? CLOSE_CODES.TOKEN_EXPIRED : CLOSE_CODES.UNAUTHORIZED;
          socket.close(code, closeReason(`${error.reason}: ${error.message}`));
          return false;
        }
      },
      ...yogaOverWebSocket<{ user?: User; clientSchema?: SessionSchema | null }>(yoga, (extra) => ({ user: extra.user, clientSchema: extra.clientSchema ?? null }), {
        maxSubscriptions: config.maxSubscriptionsPerSocket,
        maxInFlight: config.maxInFlightPerSocket,
      }),
    },
    wss,
  );

  // Per-subscriber queues are bounded (sync/stream.ts), but graphql-ws writes into the socket
  // as fast as it can; a client that stops reading would grow its send buffer without bound.
  // Drop such sockets: the client reconnects and resyncs from its checkpoint.
  const slowSocketSweep = setInterval(() => {
    for (const socket of wss.clients) {
      if (socket.bufferedAmount > config.maxBufferedBytes) {
        log.warn({ bufferedBytes: socket.bufferedAmount }, 'dropping a WebSocket whose client stopped reading');
        metrics.socketDropped();
        socket.terminate();
      }
    }
  }, 1_000);
  slowSocketSweep.unref();

  await new Promise<void>((resolveListen, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(config.port, config.host, () => resolveListen());
  });
  const { port } = httpServer.address() as AddressInfo;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;
  log.info({ port, database: config.database, collections: [...collections.keys()] }, 'gateway listening');

  let drained: Promise<void> | null = null;
  const drain = (ms = config.drainMs) =>
    (drained ??= (async () => {
      draining = true;
      const sockets = [...wss.clients];
      log.info({ sockets: sockets.length, drainMs: ms }, 'draining: closing sockets (1012) for clients to reconnect elsewhere');
      const began = Date.now();
      const deadline = began + ms;
      // Spread over the first half, so that the clients do not all arrive at once elsewhere; each
      // socket first finishes its queries and mutations (its writes are acknowledged) if it can.
      await Promise.all(
        sockets.map(async (socket, i) => {
          await sleep(began + ((ms / 2) * i) / sockets.length - Date.now());
          while (operationsRunning(socket) > 0 && Date.now() < deadline) await sleep(20);
          socket.close(CLOSE_CODES.SERVICE_RESTART, 'gateway restarting: reconnect');
        }),
      );
    })());

  let stopping: Promise<void> | null = null;
  const stop = () =>
    (stopping ??= (async () => {
      clearInterval(slowSocketSweep);
      clearInterval(customDataPoll);
      clearInterval(apiKeyCheck);
      await retention?.stop();
      rulesWatcher?.close();
      for (const client of wss.clients) client.close(1001, 'gateway shutting down');
      await wsServer.dispose(); // also closes the WebSocketServer
      httpServer.closeAllConnections();
      await new Promise<void>((r) => httpServer.close(() => r()));
      // Writes under way finish first: a write cut off holding its sequence lease would hold
      // every reader back until the lease expires. But for at most TRIBUTARY_DRAIN_MS: a write
      // stuck on a failing store must not keep this process (and the store locks it renews)
      // alive for good. A write cut off is not acknowledged, so its client sends it again; its
      // locks are taken over at once (a dead process of this host) or after their TTL, and a
      // repair completes a document written without its metadata (sync/reconcile.ts).
      await outsideWrites!.stop();
      let timer: NodeJS.Timeout | undefined;
      const gaveUp = await Promise.race([
        Promise.all([...collections.values()].map((c) => c.writer.drain())).then(() => false),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), config.drainMs))),
      ]);
      clearTimeout(timer);
      if (gaveUp) log.warn({ waitedMs: config.drainMs }, 'stopping with writes still under way: their clients send them again');
      await Promise.all([...collections.values()].map((c) => Promise.all([c.feed.stop(), c.store.cursors.close(), c.store.flushPending()])));
      await commitSignal.stop();
      await instances.stop();
      storeLocks.close();
      await mongo.close();
      log.info('gateway stopped');
    })());

  return { httpUrl: `http://${host}:${port}${GRAPHQL_PATH}`, wsUrl: `ws://${host}:${port}${GRAPHQL_PATH}`, port, model, collections, auth, reloadRules, log, outsideWrites, drain, stop };
}

/** Calls `changed` (debounced) when anything in `folder` changes. */
function watchFolder(folder: string, changed: () => void): { close(): void } {
  let timer: NodeJS.Timeout | undefined;
  const watcher = watch(folder, { recursive: true }, () => {
    clearTimeout(timer);
    timer = setTimeout(changed, 100);
  });
  return { close: () => (clearTimeout(timer), watcher.close()) };
}

/** Calls `run` at `time` (ms since epoch), however far away: setTimeout alone overflows past ~24.8 days. */
function runAt(time: number, run: () => void): () => void {
  const MAX_DELAY = 2 ** 31 - 1;
  let timer: NodeJS.Timeout;
  const schedule = () => {
    const delay = time - Date.now();
    timer = delay > MAX_DELAY ? setTimeout(schedule, MAX_DELAY) : setTimeout(run, Math.max(0, delay));
  };
  schedule();
  return () => clearTimeout(timer);
}

const sleep = (ms: number) => new Promise<void>((resolve) => (ms > 0 ? setTimeout(resolve, ms) : resolve()));

/** WebSocket close reasons are limited to 123 bytes. */
function closeReason(text: string): string {
  return Buffer.byteLength(text) <= 123 ? text : `${Buffer.from(text).subarray(0, 120).toString()}...`;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
