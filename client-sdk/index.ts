// Tributary client SDK: a local RxDB database kept in sync with a Tributary gateway.
//
//   const client = await openTributary({ url, schema, storage: getRxStorageMemory() });
//   await client.collections.tasks.insert({ ... });   // local first, online or offline
//   client.connection$.subscribe(console.log);         // connecting / connected / ...
//   await client.close();
//
// In browsers (storage: getRxStorageDexie(), multiInstance: true) every tab of the app opens the
// client on the same IndexedDB database; RxDB elects one leader tab, and only it opens the socket
// and runs the replications. The other tabs read and write the same database (RxDB's
// BroadcastChannel shows each write in every tab at once) and see the leader's connection state
// and pending writes through local documents. When the leader tab closes, another one leads.
import type { RxCollection, RxDatabase, RxQuery, RxStorage } from 'rxdb';
import { BehaviorSubject, merge, Observable, Subject } from 'rxjs';
import { loadModel, type DataModel } from '../protocol/model.ts';
import { localCollectionName, openDatabase, type LocalDocument } from './database.ts';
import { tokenExpiry, type AuthenticatedUser } from './auth.ts';
import type { SyncError } from './errors.ts';
import { FlexibleSync } from './flexible-sync.ts';
import { claimTab, deviceClock, randomHex, stampChanges } from './stamps.ts';
import { createLogger, type LogLevel, type LogSink } from './logger.ts';
import { countPendingWrites, shareSyncStatus } from './status.ts';
import { mergedFields } from '../protocol/field-state.ts';
import { CLOSE_CODES } from '../protocol/messages.ts';
import { replicateCollection, type CollectionReplication } from './replication.ts';
import { clearPendingReset, dropLocalDocuments, liveDocuments, nextReplicationGeneration, readPendingReset, recordWrites, recover, replicationGeneration, restoreAcknowledged, savePendingReset, unsyncedChanges, type PendingReset, type ClientResetMode, type ClientResetOptions, type ClientResetReason, type ClientResetRequired, type ClientResetResult, type UnsyncedChange } from './reset.ts';
import { SubscriptionSet, type AddOptions, type MutableSubscriptionSet } from './subscriptions.ts';
import { Transport, type ConnectionState, type TransportOptions } from './transport.ts';
import { CollectionView } from './view.ts';

export type { ConnectionState } from './transport.ts';
export type { LogLevel, LogSink } from './logger.ts';
export type { SchemaOutdatedError, SyncError } from './errors.ts';
export type { ClientResetMode, ClientResetOptions, ClientResetReason, ClientResetRequired, ClientResetResult, ClientResetState, UnsyncedChange } from './reset.ts';
export type { LocalDocument } from './database.ts';
export { BadQueryError, type SubscriptionQuery } from './queries.ts';
export { SupersededError } from './flexible-sync.ts';
export { Credentials, LogInError, TributaryAuth, type AuthenticatedUser } from './auth.ts';
export type { AddOptions, MutableSubscriptionSet, Subscription, SubscriptionSet, SubscriptionSetSnapshot, SubscriptionSetState } from './subscriptions.ts';

export interface FlexibleSyncOptions {
  /** Subscriptions to set when the database is first opened (and on every open with rerunOnOpen). */
  initialSubscriptions?: {
    update: (mutable: MutableSubscriptionSet) => void;
    /** Run `update` on every open, e.g. for a window such as "due in the next 7 days". */
    rerunOnOpen?: boolean;
  };
}

export interface TributaryOptions extends TransportOptions {
  /** schema.graphql text (or a model loaded from it): the collections to open and sync. */
  schema: string | DataModel;
  /** RxDB storage: memory in Node tests, Dexie (IndexedDB) in browsers. */
  storage: RxStorage<unknown, unknown>;
  /** Local database name; also keys the stored checkpoints. Default "tributary". */
  databaseName?: string;
  /**
   * The signed-in user (TributaryAuth.logIn). Its token goes in connection_init, and its data
   * lives in its own local database (`<databaseName>-<user id>`): another user on the same
   * device never sees it.
   */
  user?: AuthenticatedUser;
  /** Asked for a fresh token when the current one expires; the session resumes with it. */
  refreshToken?: (user: AuthenticatedUser) => Promise<string>;
  /** The device's wall clock for change stamps (tests simulate a wrong clock). Default Date.now. */
  clock?: () => number;
  /** Documents per pull request. Default 1000 (smaller batches make RxDB itself slow). */
  pullBatchSize?: number;
  /** Local changes per push request. Default 100. */
  pushBatchSize?: number;
  /** Wait before RxDB retries a failed pull or push. Default 2000 ms. */
  retryTimeMs?: number;
  /**
   * Flexible Sync: sync only what the subscription set selects (client.subscriptions). Without
   * it, every collection syncs whole.
   */
  flexibleSync?: FlexibleSyncOptions | true;
  /**
   * What to do when the gateway says this device's state cannot be continued (restored or
   * replaced database, offline past tombstone retention, a forced reset): Realm's modes,
   * recoverUnsyncedChanges by default (client-sdk/reset.ts).
   */
  clientReset?: ClientResetOptions;
  /**
   * Several tabs (or workers) of the app open this database at once (browsers: true). The tabs
   * elect a leader that alone syncs for all of them; writes show in every tab at once. Default
   * false: one client per database (Node, tests).
   */
  multiInstance?: boolean;
  /** The SDK's log on the console: 'silent' (default), 'error', 'warn', 'info' or 'debug'. */
  logLevel?: LogLevel;
  /** Where log lines go instead of the console. */
  logSink?: LogSink;
}

export interface SyncCounters {
  /** Documents received from the gateway (pulls and stream), per collection. */
  downloaded: Record<string, number>;
  /** Local changes the gateway accepted, per collection. */
  uploaded: Record<string, number>;
}

export interface TributaryClient {
  /** The local database's name (per user when a user is given). */
  databaseName: string;
  database: RxDatabase;
  collections: Record<string, RxCollection<LocalDocument>>;
  /** The socket's state; in a follower tab (multiInstance), the leader tab's. */
  connection$: Observable<ConnectionState>;
  readonly connectionState: ConnectionState;
  /**
   * Whether this client syncs: always without multiInstance; with it, whether this tab is the
   * leader (a follower becomes the leader when the leader tab closes).
   */
  leader$: Observable<boolean>;
  /**
   * Local changes the gateway has not acknowledged yet (documents written while offline, or on
   * their way), counted by the leader tab while its replications run (not while paused); 0
   * before the first count. Each count reads every local document: it runs only while observed
   * (always with multiInstance, for the other tabs).
   */
  pendingWrites$: Observable<number>;
  /** Rejected writes and replication failures. */
  errors$: Observable<SyncError>;
  counters: SyncCounters;
  /**
   * Resolves when local changes are pushed and the server's changes pulled (needs a connection),
   * after any client reset under way; rejects while a manual reset waits for resetNow().
   * In a follower tab it resolves at once (the leader syncs).
   */
  waitForSync(): Promise<void>;
  /** Stops syncing and closes the socket; local reads and writes go on. */
  pause(): Promise<void>;
  resume(): Promise<void>;
  /** Stops syncing and closes the local database, releasing its RxDB collections. */
  close(): Promise<void>;
  /** The Flexible Sync subscription set (only with the `flexibleSync` option). */
  readonly subscriptions: SubscriptionSet;
  /** Subscribes to what an RxDB query selects (its selector); resolves when it is synced. */
  subscribe(query: RxQuery, options?: AddOptions): Promise<void>;
  /** Removes the subscriptions with that query's selector. */
  unsubscribe(query: RxQuery): Promise<void>;
  /**
   * Carries out a client reset the gateway asked for, in `mode` (with clientReset.mode manual,
   * syncing waits for this call). Resolves with what was recovered and discarded.
   */
  resetNow(mode: Exclude<ClientResetMode, 'manual'>): Promise<ClientResetResult>;
}

export async function openTributary(options: TributaryOptions): Promise<TributaryClient> {
  const model = typeof options.schema === 'string' ? loadModel(options.schema) : options.schema;
  const baseName = options.databaseName ?? 'tributary';
  const { user, refreshToken } = options;
  const databaseName = user ? `${baseName}-${user.id.toLowerCase().replace(/[^a-z0-9_$()+/-]/g, '_')}` : baseName;
  const log = createLogger(options.logLevel, databaseName, options.logSink);
  const multiInstance = options.multiInstance ?? false;
  const { database, collections } = await openDatabase(databaseName, options.storage, model, multiInstance);
  /** The MongoDB name of an RxDB collection (client-sdk/database.ts localCollectionName). */
  const modelName = (local: string) => model.collections.find((c) => localCollectionName(c.name) === local)?.name ?? local;

  // Each tab stamps its own writes: its own node id (stamps.ts).
  const tab = multiInstance ? await claimTab(databaseName) : null;
  const clock = await deviceClock(database, options.clock, tab?.tab);
  for (const c of model.collections) stampChanges(collections[c.name]!, clock, mergedFields(c));

  const errors$ = new Subject<SyncError>();
  const flexible = options.flexibleSync ? await FlexibleSync.open(database, model, !multiInstance, tab ? randomHex(6) : '') : null;
  const views = flexible?.views ?? new Map(model.collections.map((c) => [c.name, new CollectionView(c.name)]));
  const subscriptions = flexible ? new SubscriptionSet(model, flexible.state$, flexible) : null;

  // With a user: send its token, and get a fresh one once it has expired (the gateway closes
  // the session with 4440). graphql-ws reconnects and calls connectionParams again.
  let tokenExpired = false;
  const transport = new Transport({
    ...options,
    connectionParams: user
      ? async () => {
          const expired = user.expiresAt !== null && user.expiresAt <= Date.now();
          if ((tokenExpired || expired) && refreshToken) {
            user.token = await refreshToken(user);
            user.expiresAt = tokenExpiry(user.token);
            tokenExpired = false;
          }
          return { authToken: user.token };
        }
      : options.connectionParams,
    onClosed: (code, reason) => {
      log.info(`socket closed: ${code} ${reason}`);
      if (code === CLOSE_CODES.TOKEN_EXPIRED) tokenExpired = true;
      if (code === CLOSE_CODES.UNAUTHORIZED) errors$.next({ kind: 'auth', code, reason });
      if (code === CLOSE_CODES.SCHEMA_OUTDATED) errors$.next({ kind: 'schema', code, reason });
      options.onClosed?.(code, reason);
    },
  });
  const counters: SyncCounters = {
    downloaded: Object.fromEntries(model.collections.map((c) => [c.name, 0])),
    uploaded: Object.fromEntries(model.collections.map((c) => [c.name, 0])),
  };

  // Pausing cancels the RxDB replications and resuming starts new ones with the same
  // identifiers: they continue from the checkpoints stored in the local database. (RxDB's own
  // pause() can leave a replication waiting on a push that never finishes.)
  let generation = await replicationGeneration(database);
  /** Each replication's steps: the pending writes are counted again (status.ts). */
  const activity$ = new Subject<unknown>();
  const startReplications = () => {
    const started = generation;
    const started$ = model.collections.map((collectionModel) =>
      replicateCollection({
        collection: collections[collectionModel.name]!,
        model: collectionModel,
        transport,
        view: views.get(collectionModel.name)!,
        clock,
        // A client reset starts a new generation: its replications begin with no checkpoint.
        identifier: `tributary:${collectionModel.name}:${options.url}${generation > 0 ? `:${generation}` : ''}`,
        pullBatchSize: options.pullBatchSize ?? 1_000,
        pushBatchSize: options.pushBatchSize ?? 100,
        retryTimeMs: options.retryTimeMs ?? 2_000,
        onDownloaded: (n) => (counters.downloaded[collectionModel.name]! += n),
        onUploaded: (n) => (counters.uploaded[collectionModel.name]! += n),
        onError: (error) => {
          if (error.kind === 'rejected') log.warn(`the gateway refused a write to ${error.collection} ${error.id}: ${error.message}`);
          else log.debug(`${error.kind} error`, error);
          errors$.next(error);
        },
        onViewProgress: (received, estimated) => flexible?.onViewProgress(received, estimated),
        onResetRequired: (reason, message) => resetRequired(reason, message, started),
      }),
    );
    for (const r of started$) r.state.active$.subscribe(activity$);
    return started$;
  };
  const stopReplications = async () => {
    const running = replications;
    setReplications([]);
    await Promise.all(running.map((r) => r.stop()));
  };

  let replications: CollectionReplication[] = [];
  /** Whether this client syncs (multiInstance: this tab leads). */
  let leading = false;
  const leader$ = new BehaviorSubject(false);
  // Replaced by pause, resume and a client reset; a reset waiting for a download follows along.
  const signal = () => {
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    return { promise, resolve };
  };
  let replicationsChanged = signal();
  const setReplications = (next: CollectionReplication[]) => {
    replications = next;
    replicationsChanged.resolve();
    replicationsChanged = signal();
  };
  let paused = false;
  /**
   * Resolves true once the running replications are `ready` (downloaded, in sync); a pause
   * meanwhile waits for the resume, whose replications then count. False once `abandoned` settles.
   */
  const replicationsReady = async (ready: (r: CollectionReplication) => Promise<unknown>, abandoned: Promise<unknown>): Promise<boolean> => {
    const given = abandoned.then(() => 'abandoned' as const);
    for (;;) {
      if (closed) throw new Error('the client was closed during a client reset');
      const current = replications;
      const changed = replicationsChanged.promise.then(() => 'changed' as const);
      const allReady = current.length > 0 ? Promise.all(current.map(ready)).then(() => 'ready' as const) : changed;
      const outcome = await Promise.race([allReady, changed, given]);
      if (outcome === 'abandoned') return false;
      if (outcome === 'ready' && current === replications) return true;
    }
  };
  const runInitialSubscriptions = () => {
    const initial = options.flexibleSync === true ? undefined : options.flexibleSync?.initialSubscriptions;
    if (flexible && subscriptions && initial && (flexible.firstOpen || initial.rerunOnOpen)) {
      // Its outcome shows in subscriptions.state; apps wait with waitForSynchronization().
      subscriptions.update(initial.update).catch(() => {});
    }
  };
  // Client reset (reset.ts): asked for by any collection's pull, carried out once for the database.
  let resetting: Promise<unknown> | null = null;
  let awaitingReset: ClientResetRequired | null = null;
  /** While a reset downloads the fresh state: asks it to start that over (see reset()). */
  let resetAgain: (() => void) | null = null;
  const resetMode = options.clientReset?.mode ?? 'recoverUnsyncedChanges';
  const resetRequired = (reason: ClientResetReason, message: string, replicationGeneration: number) => {
    // Refusals of replications a reset has already replaced say nothing new.
    if (replicationGeneration !== generation) return;
    if (resetting) {
      // The fresh replications' own checkpoint was refused: the reset starts its download over.
      // (Otherwise ignored: a refused pull is retried, and asks again once the reset is over.)
      resetAgain?.();
      return;
    }
    if (awaitingReset) return;
    const required: ClientResetRequired = { kind: 'clientReset', reason, message, mode: resetMode };
    errors$.next(required);
    if (resetMode === 'manual') {
      // The replications stay as they are: their pulls keep being refused, and nothing is pushed.
      awaitingReset = required;
      options.clientReset?.onManual?.(required);
      return;
    }
    resetting = reset(required, resetMode)
      .catch((error: Error) => errors$.next({ kind: 'replication', collection: '*', message: `client reset failed: ${error.message}` }))
      .finally(() => (resetting = null));
  };
  const reset = async (required: ClientResetRequired, mode: Exclude<ClientResetMode, 'manual'>, carried?: PendingReset): Promise<ClientResetResult> => {
    // What the app writes from now until the documents are dropped is unsynced too.
    const writesMeanwhile = recordWrites(collections);
    const unsyncedBefore = carried?.unsynced ?? (await Promise.all(replications.map((r, i) => unsyncedChanges(model.collections[i]!.name, collections[model.collections[i]!.name]!, r.state)))).flat();
    const before = { documents: carried?.documents ?? (await liveDocuments(collections)), unsynced: unsyncedBefore };
    // Kept until the reset is over: if the app stops in the middle, the next open finishes it.
    // (The documents only after a restore from a backup, the one case that writes them back.)
    const kept = (unsynced: UnsyncedChange[]): PendingReset => ({ required, mode, documents: required.reason === 'checkpoint-ahead' ? before.documents : {}, unsynced });
    await savePendingReset(database, kept(unsyncedBefore));
    await options.clientReset?.onBefore?.(before);
    let unsynced = unsyncedBefore;
    let meanwhile: UnsyncedChange[] = [];
    let recordMeanwhile = writesMeanwhile;
    // The download of the fresh state starts over when the gateway refuses the fresh
    // replications' checkpoint too: another reset forced meanwhile, or an epoch read before the
    // force (gateways cache it for up to a second). Their unsynced writes are carried over.
    for (let round = 0; ; round++) {
      generation = await nextReplicationGeneration(database);
      // Nothing of the old state may be pushed: the replications' state goes first, then the documents.
      const running = replications;
      setReplications([]);
      await Promise.all(running.map((r) => r.remove()));
      for (const c of model.collections) await dropLocalDocuments(collections[c.name]!);
      // What the app wrote meanwhile is kept in every mode: it was written after the reset began.
      const written = recordMeanwhile();
      if (round === 0) {
        // Those documents carry the unsynced writes made before them.
        const writtenMeanwhile = new Set(written.map((c) => `${c.collection}/${c.id}`));
        unsynced = unsynced.filter((c) => !writtenMeanwhile.has(`${c.collection}/${c.id}`));
      }
      meanwhile = [...meanwhile, ...written];
      await savePendingReset(database, kept([...unsynced, ...meanwhile]));
      let askedAgain!: () => void;
      const again = new Promise<void>((resolve) => (askedAgain = resolve));
      resetAgain = askedAgain;
      const rebootstrapped = flexible?.rebootstrap();
      if (!paused) setReplications(startReplications());
      const downloaded =
        (await replicationsReady((r) => r.state.awaitInitialReplication(), again)) &&
        (await Promise.race([Promise.resolve(rebootstrapped).then(() => true), again.then(() => false)])) &&
        (await replicationsReady((r) => r.state.awaitInSync(), again));
      resetAgain = null;
      if (downloaded) break;
      // The writes the app made since the drop, applied later in order by their stamps.
      recordMeanwhile = recordWrites(collections);
      meanwhile = [...meanwhile, ...(await Promise.all(replications.map((r, i) => unsyncedChanges(model.collections[i]!.name, collections[model.collections[i]!.name]!, r.state)))).flat()];
    }

    const fieldsOf = (name: string) => mergedFields(model.collections.find((c) => c.name === name)!);
    const restored = required.reason === 'checkpoint-ahead' ? await restoreAcknowledged(collections, fieldsOf, { ...before, unsynced: [...unsynced, ...meanwhile] }) : [];
    let recovered: UnsyncedChange[] = [];
    let discarded = unsynced;
    if (mode !== 'discardUnsyncedChanges') {
      try {
        await recover(collections, fieldsOf, unsynced);
        recovered = unsynced;
        discarded = [];
      } catch (error) {
        if (mode === 'recoverUnsyncedChanges') throw error;
        // recoverOrDiscard: what could not be recovered is dropped, and said so.
      }
    }
    await recover(collections, fieldsOf, meanwhile);
    recovered = [...recovered, ...meanwhile];
    const result: ClientResetResult = {
      reason: required.reason,
      mode: mode === 'recoverOrDiscard' ? (discarded.length > 0 ? 'discardUnsyncedChanges' : 'recoverUnsyncedChanges') : mode,
      before,
      after: await liveDocuments(collections),
      recovered,
      discarded,
      restored,
    };
    await clearPendingReset(database);
    await options.clientReset?.onAfter?.(result);
    return result;
  };

  let syncStarted = false;
  // Browsers keep a WebSocket open for a while after the network is gone (Chromium's offline mode
  // never closes it): in a browser the socket follows its online and offline events. The
  // replications keep running: their requests fail until the socket is back, and RxDB retries.
  const online = () => (globalThis.navigator as { onLine?: boolean } | undefined)?.onLine !== false;
  const followNetwork = () => {
    if (closed || paused || !syncStarted) return;
    log.info(online() ? 'the browser is online: connecting' : 'the browser is offline: closing the socket');
    if (online()) transport.connect();
    else void transport.disconnect('disconnected');
  };
  const events = typeof (globalThis as { addEventListener?: unknown }).addEventListener === 'function' ? (globalThis as unknown as EventTarget) : null;
  events?.addEventListener('online', followNetwork);
  events?.addEventListener('offline', followNetwork);
  /** This client syncs from now on (at open, or when its tab becomes the leader). */
  const startSyncing = async (first: boolean) => {
    leading = true;
    leader$.next(true);
    if (multiInstance) log.info('this tab is the leader: it syncs for every tab');
    // Paused or closed in the meantime (a follower's pause): resume() starts syncing.
    if (closed || paused) return;
    syncStarted = true;
    if (online()) transport.connect();
    // A reset cut short (the app stopped in the middle) is carried out first (reset.ts).
    const interrupted = await readPendingReset(database);
    if (!interrupted) setReplications(startReplications());
    if (flexible) {
      flexible.replications = () => replications;
      await flexible.lead();
      flexible.resume();
    }
    if (first) runInitialSubscriptions();
    if (interrupted) {
      log.info(`finishing a client reset cut short (${interrupted.required.reason})`);
      resetting = reset(interrupted.required, interrupted.mode, interrupted)
        .catch((error: Error) => errors$.next({ kind: 'replication', collection: '*', message: `client reset failed: ${error.message}` }))
        .finally(() => (resetting = null));
    }
  };

  const requireSubscriptions = (): SubscriptionSet => {
    if (!subscriptions) throw new Error('subscriptions need the flexibleSync option of openTributary()');
    return subscriptions;
  };

  let closed = false;
  // Followers see the leader's connection state and count (status.ts); the leader its own.
  const status = multiInstance ? shareSyncStatus(database) : null;
  const connection$ = status ? new BehaviorSubject<ConnectionState>('disconnected') : transport.state$;
  transport.state$.subscribe((state) => {
    if (!leading) return;
    log.info(`connection: ${state}`);
    if (!status) return;
    connection$.next(state);
    // A leader closing says nothing to the others: the next leader reports its own socket.
    if (state !== 'closed') status.publish({ connection: state });
  });
  const pendingWrites = new BehaviorSubject(0);
  let pendingObservers = 0;
  const pending = countPendingWrites(collections, () => (leading ? replications : null), merge(activity$, transport.state$), () => multiInstance || pendingObservers > 0, (n) => {
    pendingWrites.next(n);
    status?.publish({ pendingWrites: n });
  });
  const following = status?.changes$.subscribe((saved) => {
    if (leading) return;
    connection$.next(saved.connection);
    pendingWrites.next(saved.pendingWrites);
  });
  const pendingWrites$ = new Observable<number>((subscriber) => {
    pendingObservers++;
    pending.recount();
    const s = pendingWrites.subscribe(subscriber);
    return () => {
      pendingObservers--;
      s.unsubscribe();
    };
  });
  errors$.subscribe((error) => {
    if (error.kind === 'clientReset') log.warn(`client reset (${error.reason}, ${error.mode}): ${error.message}`);
    if (error.kind === 'auth' || error.kind === 'schema') log.error(`the gateway refused this client (${error.code}): ${error.reason}`);
  });
  if (!multiInstance) await startSyncing(true);
  else {
    log.info('waiting to lead: another tab may be syncing for this one');
    runInitialSubscriptions();
    database.waitForLeadership().then(
      () => startSyncing(false).catch((error: Error) => log.error(`syncing could not start: ${error.message}`)),
      () => {}, // the database closed first
    );
  }

  return {
    databaseName,
    database,
    collections,
    connection$: connection$.asObservable(),
    get connectionState() {
      return connection$.getValue();
    },
    leader$: leader$.asObservable(),
    pendingWrites$,
    errors$: errors$.asObservable(),
    counters,
    async waitForSync() {
      // A client reset under way finishes first (its recovered writes are then pushed).
      while (resetting) await resetting;
      if (awaitingReset) throw new Error(`a client reset is waiting for resetNow(): ${awaitingReset.message}`);
      await Promise.all(replications.map((r) => r.state.awaitInSync()));
    },
    async pause() {
      paused = true;
      await stopReplications();
      await transport.disconnect('paused');
    },
    async resume() {
      paused = false;
      if (closed || !leading || replications.length > 0) return;
      if (!syncStarted) return startSyncing(false); // became the leader while paused
      if (online()) transport.connect();
      setReplications(startReplications());
    },
    get subscriptions() {
      return requireSubscriptions();
    },
    subscribe(query, addOptions) {
      return requireSubscriptions().update((m) => m.add(modelName(query.collection.name), query.mangoQuery.selector ?? {}, addOptions));
    },
    unsubscribe(query) {
      return requireSubscriptions().update((m) => m.remove(modelName(query.collection.name), query.mangoQuery.selector ?? {}));
    },
    async resetNow(mode) {
      await resetting;
      // The writes not yet acknowledged are read from the running replications.
      if (replications.length === 0) throw new Error('resetNow() needs a syncing client: call resume() first');
      const required: ClientResetRequired = awaitingReset ?? { kind: 'clientReset', reason: 'forced', message: 'asked for by the app', mode };
      awaitingReset = null;
      const running = reset(required, mode);
      resetting = running.finally(() => (resetting = null));
      return running;
    },
    async close() {
      if (closed) return;
      closed = true;
      events?.removeEventListener('online', followNetwork);
      events?.removeEventListener('offline', followNetwork);
      pending.stop();
      following?.unsubscribe();
      await stopReplications();
      flexible?.close();
      await flexible?.flush();
      await transport.disconnect('closed');
      transport.state$.complete();
      if (status) {
        connection$.next('closed');
        connection$.complete();
      }
      errors$.complete();
      leader$.complete();
      pendingWrites.complete();
      await database.close();
      tab?.release();
    },
  };
}
