// Real parts for integration tests: gateways on the shared FerretDB (one database per test),
// RxDB clients on memory storage over real graphql-ws sockets, and a direct driver connection.
import { randomBytes } from 'node:crypto';
import { MongoClient, type Db } from 'mongodb';
import { pino } from 'pino';
import { getRxStorageMemory } from 'rxdb/plugins/storage-memory';
import { inject } from 'vitest';
import { WebSocket } from 'ws';
import { openTributary, type TributaryClient, type TributaryOptions } from '../../client-sdk/index.ts';
import { startGateway, type Gateway, type GatewayOptions } from '../../gateway/server.ts';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { SignJWT } from 'jose';

export const SCHEMA_PATH = resolve(import.meta.dirname, '../../schema.graphql');
export const SCHEMA = readFileSync(SCHEMA_PATH, 'utf8');

const cleanups: Array<() => Promise<unknown>> = [];

/** Has `close` run by the next cleanup() (helpers outside this file: cluster.ts). */
export function onCleanup(close: () => Promise<unknown>): void {
  cleanups.push(close);
}

/** Runs (in reverse order) everything the helpers opened; call it in afterEach. */
export async function cleanup(): Promise<void> {
  while (cleanups.length > 0) await cleanups.pop()!().catch(() => {});
}

export function uniqueName(prefix: string): string {
  return `${prefix}_${randomBytes(4).toString('hex')}`;
}

let oplogStore = false;

/**
 * Called at the top of a test file whose tests follow other services' writes: the file then
 * uses the store that keeps an oplog (test/setup/ferretdb.ts) for everything.
 */
export function useOplogStore(): void {
  oplogStore = true;
}

export function mongoUri(): string {
  return inject(oplogStore ? 'oplogMongoUri' : 'mongoUri');
}

/** A folder of rules under test/fixtures/rules/ (test gateways use `open`: everyone may do everything). */
export function rulesFixture(name: string): string {
  return resolve(import.meta.dirname, '../fixtures/rules', name);
}

/** The custom-JWT provider test gateways trust (HS256). */
export const TEST_JWT = { secret: 'test-secret-that-is-long-enough-for-hs256', issuer: 'https://auth.example.test', audience: 'tributary' };

/** A valid token for `sub`, signed for the test gateways; `claims` may override anything. */
export async function testToken(sub = 'user-1', claims: Record<string, unknown> = {}, expiresIn: string | number = '1h'): Promise<string> {
  return new SignJWT({ ...claims })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setIssuer(TEST_JWT.issuer)
    .setAudience(TEST_JWT.audience)
    .setIssuedAt()
    .setExpirationTime(expiresIn)
    .sign(new TextEncoder().encode(TEST_JWT.secret));
}

export async function startTestGateway(options: Partial<GatewayOptions> = {}): Promise<Gateway & { database: string }> {
  const database = options.database ?? uniqueName('test');
  const gateway = await startGateway({
    mongoUri: mongoUri(),
    database,
    port: 0,
    logger: pino({ level: process.env.LOG_LEVEL ?? 'warn' }),
    auth: { jwt: TEST_JWT, anonymous: { enabled: true } },
    rulesPath: rulesFixture('open'),
    // Following FerretDB's oplog costs every gateway a share of the FerretDB the tests share
    // (each read decodes the whole oplog): only the tests of outside writes turn it on.
    followOutsideChanges: false,
    ...options,
  });
  cleanups.push(() => gateway.stop());
  return { ...gateway, database };
}

export async function openTestClient(wsUrl: string, options: Partial<TributaryOptions> = {}): Promise<TributaryClient> {
  const authToken = await testToken();
  const client = await openTributary({
    url: wsUrl,
    schema: SCHEMA,
    storage: getRxStorageMemory(),
    databaseName: uniqueName('client'),
    webSocketImpl: WebSocket,
    retry: { minDelayMs: 50, maxDelayMs: 500 },
    retryTimeMs: 200,
    connectionParams: { authToken },
    ...options,
  });
  cleanups.push(() => client.close());
  return client;
}

export async function openDb(database: string): Promise<Db> {
  const client = new MongoClient(mongoUri());
  await client.connect();
  cleanups.push(() => client.close());
  return client.db(database);
}

/** Polls until `check` returns a truthy value; fails with `what` after the timeout. */
export async function waitFor<T>(what: string, check: () => T | Promise<T>, timeoutMs = 20_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Whether the clients have converged with the server: every client has nothing left to push or
 * pull (RxDB's replications are idle), and then every client's state equals the server's.
 *
 * Equal states alone prove nothing: a device that inserted a document and deleted it while the
 * insert's push was on its way holds nothing, the server holds nothing yet, and neither do the
 * other devices; a moment later the insert lands (and the delete after it). Only once no client
 * has a push under way can the server's state no longer move, so it is read after that.
 * A client still syncing after `idleWithinMs` counts as not converged.
 */
export async function converged<S>(
  clients: readonly TributaryClient[],
  readServer: () => Promise<S>,
  readClient: (client: TributaryClient) => Promise<S>,
  idleWithinMs = 2_000,
): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const idle = await Promise.race([
    Promise.all(clients.map((c) => c.waitForSync())).then(() => true),
    new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), idleWithinMs))),
  ]).finally(() => clearTimeout(timer));
  if (!idle) return false;
  const server = JSON.stringify(await readServer());
  const locals = await Promise.all(clients.map(readClient));
  return locals.every((local) => JSON.stringify(local) === server);
}

let taskCounter = 0;
export function newTask(overrides: Record<string, unknown> = {}): Record<string, unknown> & { id: string } {
  taskCounter++;
  return {
    id: `task-${randomBytes(4).toString('hex')}-${taskCounter}`,
    ownerId: 'user-1',
    title: `Task ${taskCounter}`,
    status: 'TODO',
    priority: 3,
    tags: ['work'],
    ...overrides,
  } as Record<string, unknown> & { id: string };
}

/** A GraphQL request over HTTP, as any plain client sends it (with a test user's token unless `token` says otherwise). */
export async function graphqlHttp<T = Record<string, any>>(
  httpUrl: string,
  query: string,
  variables: Record<string, unknown> = {},
  token?: string | null,
): Promise<{ data?: T; errors?: Array<{ message: string; extensions?: Record<string, unknown> }> }> {
  const bearer = token === undefined ? await testToken() : token;
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  const response = await fetch(httpUrl, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
  return (await response.json()) as never;
}

/**
 * A document as the gateway syncs it, read with the driver: its fields (or, for a tombstone, the
 * queryable fields of its last version) and its metadata from the side collection as `_sync`.
 * Null when the gateway has no metadata for it.
 */
export async function syncedDocument(db: Db, collection: string, id: unknown): Promise<(Record<string, any> & { _sync: Record<string, any> }) | null> {
  const [doc, meta] = await Promise.all([
    db.collection(collection).findOne({ _id: id as never }),
    db.collection(`_tributary_sync_${collection}`).findOne({ _id: id as never }),
  ]);
  if (!meta) return null;
  const { _id, stamps, ...sync } = meta;
  return { ...(doc ?? sync.state), _id, _sync: { ...sync, stamps: stamps === undefined ? undefined : JSON.parse(stamps as string) } };
}

/** The ids of a collection's documents that sync, live or deleted, as the gateway's metadata says. */
export async function syncedIds(db: Db, collection: string, deleted: boolean, filter: Record<string, unknown> = {}): Promise<string[]> {
  const metas = await db.collection(`_tributary_sync_${collection}`).find({ deleted }).toArray();
  const ids = metas.map((m) => m._id);
  if (Object.keys(filter).length === 0 || deleted) return ids.map(String).sort();
  return (await db.collection(collection).find({ $and: [filter, { _id: { $in: ids as never[] } }] }).toArray()).map((d) => String(d._id)).sort();
}
