// Gateway configuration: defaults, and the environment variables that override them
// (documented in README.md, "Configuration").
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { AuthConfig } from './auth/authenticator.ts';
import type { ConflictStrategy } from '../protocol/merge.ts';
import { PACKAGE_ROOT } from './package-root.ts';
import type { InvalidDocumentPolicy } from './store/collection-store.ts';
import { parseDuration } from './store/retention.ts';
import { originsFromEnv, type AllowedOrigins } from './cors.ts';

export interface GatewayConfig {
  /** MongoDB connection string; unset means the embedded FerretDB (main.ts). */
  mongoUri: string;
  database: string;
  schemaPath: string;
  /** Permission rules folder (rules/, Realm role format). */
  rulesPath: string;
  /** Reload the rules when a file in the folder changes (development). */
  watchRules: boolean;
  /** How often open sessions' custom user data is re-read, to apply changes live. */
  customDataPollMs: number;
  host: string;
  /** 0 picks a free port. */
  port: number;
  logLevel: string;
  /** How long a sequence lease may stay open before readers pass it (see store/sequencer.ts). */
  leaseTtlMs: number;
  /** How often the change feed looks for writes made through other gateway instances. */
  pollIntervalMs: number;
  /** Documents that fail schema.graphql: kept out of sync and reported ('skip'), or synced as they are ('sync'). */
  invalidDocuments: InvalidDocumentPolicy;
  /** Without a change stream or oplog, how often every collection is compared in full with its sync metadata (0: at start only). */
  fullPassIntervalMs: number;
  /** Follow other services' writes live (change streams, FerretDB's oplog); false: full passes only. */
  followOutsideChanges: boolean;
  /**
   * Start even when schema.graphql has breaking changes against the schema recorded in MongoDB
   * (gateway/store/schema-history.ts); clients on the older schema are then refused (close 4426).
   */
  acceptBreakingSchema: boolean;
  /**
   * How long a delete's tombstone is kept (store/retention.ts); a client whose checkpoint is
   * older than a trimmed tombstone gets a client reset. 0 keeps tombstones forever.
   */
  tombstoneRetentionMs: number;
  /** How long the follower lease lasts without renewal: one instance follows outside changes, another takes over this long after it died (at once on its own host). */
  followerLeaseMs: number;
  maxPullLimit: number;
  maxPushRows: number;
  maxListLimit: number;
  /** How long the store may spend on one query built from a client's filter (lists, bootstraps). */
  maxQueryTimeMs: number;
  /** Per-subscriber bound on queued live changes before a resync replaces them. */
  maxQueuedDocuments: number;
  /** Per-subscriber bound on the JSON bytes of queued live changes, likewise. */
  maxQueuedBytes: number;
  /** Upper bound on an HTTP request body or WebSocket message, in bytes. */
  maxPayloadBytes: number;
  /** A socket with more unsent bytes than this (its client stopped reading) is dropped. */
  maxBufferedBytes: number;
  /** Shape of one operation (gateway/limits/operation-limits.ts): lexical tokens, selection depth, aliases, directives. */
  maxTokens: number;
  maxDepth: number;
  maxAliases: number;
  maxDirectives: number;
  /**
   * Stored bytes after which a page ends (pulls, bootstraps, live change batches) or a plain list
   * is refused; a page always holds at least one document, so it is exceeded by one at most.
   */
  maxPageBytes: number;
  /** Sum of the `limit` arguments of the list fields one request selects (pulls, bootstraps, plain lists). */
  maxDocumentsPerRequest: number;
  /** Subscriptions one WebSocket may hold at once. */
  maxSubscriptionsPerSocket: number;
  /** Queries and mutations one WebSocket may have running at once. */
  maxInFlightPerSocket: number;
  /** How often open sessions authenticated by an API key are checked for revocation. */
  apiKeyCheckMs: number;
  /** Sessions one instance holds; more are refused with 1013 (limits/admission.ts). 0: no bound. */
  maxConnections: number;
  /** New sessions one instance starts per second (bursts of one second's worth); more are refused with 1013. 0: no bound. */
  maxSessionStartsPerSecond: number;
  /** On SIGTERM, the time over which the instance's sockets are closed (1012), each once its queries and mutations finished (main.ts). */
  drainMs: number;
  auth: AuthConfig;
  /** Per collection; 'field-lww' where unset (see protocol/merge.ts). */
  conflictStrategies: Record<string, ConflictStrategy>;
  /** How far ahead of the gateway's clock a client's change stamp may be before it is pulled back. */
  maxClockSkewMs: number;
  /** When set, GET /metrics requires `Authorization: Bearer <this>`; unset, /metrics is open (gateway/ops/). */
  metricsToken: string | null;
  /** Custom JWTs whose claim `name` equals (or, for a list, holds) `value` are admins of /admin; API keys created with the admin flag always are. */
  adminClaim: AdminClaim | null;
  /** Origins of browser apps allowed to call the gateway: `*` (any) or a list (gateway/cors.ts). */
  corsOrigins: AllowedOrigins;
}

export interface AdminClaim {
  name: string;
  value: string;
}

export const DEFAULTS: Omit<GatewayConfig, 'mongoUri'> = {
  database: 'tributary',
  schemaPath: resolve(PACKAGE_ROOT, 'schema.graphql'),
  rulesPath: resolve(PACKAGE_ROOT, 'rules'),
  watchRules: false,
  customDataPollMs: 2_000,
  host: '127.0.0.1',
  port: 4000,
  logLevel: 'info',
  leaseTtlMs: 30_000,
  pollIntervalMs: 250,
  invalidDocuments: 'skip',
  fullPassIntervalMs: 60_000,
  followOutsideChanges: true,
  acceptBreakingSchema: false,
  tombstoneRetentionMs: 30 * 86_400_000,
  followerLeaseMs: 10_000,
  maxPullLimit: 5_000,
  maxPushRows: 1_000,
  maxListLimit: 1_000,
  maxQueryTimeMs: 60_000,
  maxQueuedDocuments: 10_000,
  maxQueuedBytes: 4 * 1024 * 1024,
  maxPayloadBytes: 16 * 1024 * 1024,
  maxBufferedBytes: 8 * 1024 * 1024,
  maxTokens: 2_000,
  maxDepth: 20,
  maxAliases: 15,
  maxDirectives: 50,
  maxPageBytes: 4 * 1024 * 1024,
  maxDocumentsPerRequest: 10_000,
  maxSubscriptionsPerSocket: 100,
  maxInFlightPerSocket: 64,
  apiKeyCheckMs: 5_000,
  maxConnections: 20_000,
  maxSessionStartsPerSecond: 500,
  drainMs: 10_000,
  auth: { anonymous: { enabled: true } },
  conflictStrategies: {},
  maxClockSkewMs: 60_000,
  metricsToken: null,
  adminClaim: null,
  corsOrigins: '*',
};

export function configFromEnv(env: NodeJS.ProcessEnv = process.env): Omit<GatewayConfig, 'mongoUri'> & { mongoUri?: string } {
  const int = (name: string, fallback: number) => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    const value = Number(raw);
    if (!Number.isInteger(value) || value < 0) throw new Error(`${name} must be a non-negative integer, got "${raw}"`);
    return value;
  };
  return {
    mongoUri: env.MONGODB_URI || undefined,
    database: env.TRIBUTARY_DATABASE || DEFAULTS.database,
    schemaPath: env.TRIBUTARY_SCHEMA ? resolve(env.TRIBUTARY_SCHEMA) : DEFAULTS.schemaPath,
    rulesPath: env.TRIBUTARY_RULES ? resolve(env.TRIBUTARY_RULES) : DEFAULTS.rulesPath,
    watchRules: env.TRIBUTARY_WATCH_RULES === 'true',
    customDataPollMs: int('TRIBUTARY_CUSTOM_DATA_POLL_MS', DEFAULTS.customDataPollMs),
    host: env.HOST || DEFAULTS.host,
    port: int('PORT', DEFAULTS.port),
    logLevel: env.LOG_LEVEL || DEFAULTS.logLevel,
    leaseTtlMs: int('TRIBUTARY_LEASE_TTL_MS', DEFAULTS.leaseTtlMs),
    pollIntervalMs: int('TRIBUTARY_POLL_INTERVAL_MS', DEFAULTS.pollIntervalMs),
    invalidDocuments: invalidPolicy(env.TRIBUTARY_INVALID_DOCUMENTS),
    fullPassIntervalMs: int('TRIBUTARY_FULL_PASS_INTERVAL_MS', DEFAULTS.fullPassIntervalMs),
    followOutsideChanges: env.TRIBUTARY_FOLLOW_OUTSIDE_CHANGES !== 'false',
    acceptBreakingSchema: env.TRIBUTARY_ACCEPT_BREAKING_SCHEMA === 'true',
    tombstoneRetentionMs: env.TRIBUTARY_TOMBSTONE_RETENTION ? parseDuration(env.TRIBUTARY_TOMBSTONE_RETENTION) : DEFAULTS.tombstoneRetentionMs,
    followerLeaseMs: int('TRIBUTARY_FOLLOWER_LEASE_MS', DEFAULTS.followerLeaseMs),
    maxPullLimit: int('TRIBUTARY_MAX_PULL_LIMIT', DEFAULTS.maxPullLimit),
    maxPushRows: int('TRIBUTARY_MAX_PUSH_ROWS', DEFAULTS.maxPushRows),
    maxListLimit: int('TRIBUTARY_MAX_LIST_LIMIT', DEFAULTS.maxListLimit),
    maxQueryTimeMs: int('TRIBUTARY_MAX_QUERY_TIME_MS', DEFAULTS.maxQueryTimeMs),
    maxQueuedDocuments: int('TRIBUTARY_MAX_QUEUED_DOCUMENTS', DEFAULTS.maxQueuedDocuments),
    maxQueuedBytes: int('TRIBUTARY_MAX_QUEUED_BYTES', DEFAULTS.maxQueuedBytes),
    maxPayloadBytes: int('TRIBUTARY_MAX_PAYLOAD_BYTES', DEFAULTS.maxPayloadBytes),
    maxBufferedBytes: int('TRIBUTARY_MAX_BUFFERED_BYTES', DEFAULTS.maxBufferedBytes),
    maxTokens: int('TRIBUTARY_MAX_TOKENS', DEFAULTS.maxTokens),
    maxDepth: int('TRIBUTARY_MAX_DEPTH', DEFAULTS.maxDepth),
    maxAliases: int('TRIBUTARY_MAX_ALIASES', DEFAULTS.maxAliases),
    maxDirectives: int('TRIBUTARY_MAX_DIRECTIVES', DEFAULTS.maxDirectives),
    maxPageBytes: int('TRIBUTARY_MAX_PAGE_BYTES', DEFAULTS.maxPageBytes),
    maxDocumentsPerRequest: int('TRIBUTARY_MAX_DOCUMENTS_PER_REQUEST', DEFAULTS.maxDocumentsPerRequest),
    maxSubscriptionsPerSocket: int('TRIBUTARY_MAX_SUBSCRIPTIONS_PER_SOCKET', DEFAULTS.maxSubscriptionsPerSocket),
    maxInFlightPerSocket: int('TRIBUTARY_MAX_IN_FLIGHT_PER_SOCKET', DEFAULTS.maxInFlightPerSocket),
    apiKeyCheckMs: int('TRIBUTARY_API_KEY_CHECK_MS', DEFAULTS.apiKeyCheckMs),
    maxConnections: int('TRIBUTARY_MAX_CONNECTIONS', DEFAULTS.maxConnections),
    maxSessionStartsPerSecond: int('TRIBUTARY_MAX_SESSION_STARTS_PER_SECOND', DEFAULTS.maxSessionStartsPerSecond),
    drainMs: int('TRIBUTARY_DRAIN_MS', DEFAULTS.drainMs),
    auth: authFromEnv(env),
    conflictStrategies: strategiesFromEnv(env.TRIBUTARY_CONFLICT_STRATEGIES),
    maxClockSkewMs: int('TRIBUTARY_MAX_CLOCK_SKEW_MS', DEFAULTS.maxClockSkewMs),
    metricsToken: env.TRIBUTARY_METRICS_TOKEN || null,
    adminClaim: adminClaimFromEnv(env.TRIBUTARY_ADMIN_CLAIM),
    corsOrigins: originsFromEnv(env.TRIBUTARY_CORS_ORIGINS),
  };
}

/** `tasks=server-wins,projects=document-lww` (custom resolvers are set in code: startGateway). */
function strategiesFromEnv(raw: string | undefined): Record<string, ConflictStrategy> {
  const strategies: Record<string, ConflictStrategy> = {};
  for (const entry of raw?.split(',').filter(Boolean) ?? []) {
    const [collection, strategy] = entry.split('=').map((s) => s.trim());
    if (!collection || !['field-lww', 'document-lww', 'server-wins'].includes(strategy ?? '')) {
      throw new Error(`TRIBUTARY_CONFLICT_STRATEGIES: "${entry}" is not <collection>=field-lww|document-lww|server-wins`);
    }
    strategies[collection] = strategy as ConflictStrategy;
  }
  return strategies;
}

function authFromEnv(env: NodeJS.ProcessEnv): AuthConfig {
  const list = (v: string | undefined) => (v ? v.split(',').map((s) => s.trim()).filter(Boolean) : undefined);
  const publicKey = env.TRIBUTARY_JWT_PUBLIC_KEY_FILE ? readFileSync(env.TRIBUTARY_JWT_PUBLIC_KEY_FILE, 'utf8') : env.TRIBUTARY_JWT_PUBLIC_KEY;
  const jwtConfigured = Boolean(env.TRIBUTARY_JWT_SECRET || publicKey || env.TRIBUTARY_JWKS_URL);
  return {
    jwt: jwtConfigured
      ? {
          secret: env.TRIBUTARY_JWT_SECRET || undefined,
          publicKey: publicKey || undefined,
          jwksUrl: env.TRIBUTARY_JWKS_URL || undefined,
          algorithms: list(env.TRIBUTARY_JWT_ALGORITHMS),
          issuer: env.TRIBUTARY_JWT_ISSUER || undefined,
          audience: env.TRIBUTARY_JWT_AUDIENCE || undefined,
          userIdClaim: env.TRIBUTARY_JWT_USER_ID_CLAIM || undefined,
        }
      : undefined,
    anonymous: { enabled: env.TRIBUTARY_ANONYMOUS !== 'false' },
    customData: env.TRIBUTARY_CUSTOM_DATA_COLLECTION
      ? { collection: env.TRIBUTARY_CUSTOM_DATA_COLLECTION, userIdField: env.TRIBUTARY_CUSTOM_DATA_USER_FIELD || undefined }
      : undefined,
    devTokens: env.TRIBUTARY_DEV_TOKENS === 'true',
  };
}

/**
 * `role:admin`: the claim `role` equals `admin` (or is a list holding it). The last colon
 * separates them: claim names are often URLs (`https://example.com/roles:admin`).
 */
export function adminClaimFromEnv(raw: string | undefined): AdminClaim | null {
  if (raw === undefined || raw === '') return null;
  const at = raw.lastIndexOf(':');
  const name = raw.slice(0, at).trim();
  const value = raw.slice(at + 1).trim();
  if (at < 1 || !name || !value) throw new Error(`TRIBUTARY_ADMIN_CLAIM must be <claim>:<value>, e.g. role:admin, got ${JSON.stringify(raw)}`);
  return { name, value };
}

function invalidPolicy(value: string | undefined): InvalidDocumentPolicy {
  if (value === undefined || value === '') return DEFAULTS.invalidDocuments;
  if (value !== 'skip' && value !== 'sync') throw new Error(`TRIBUTARY_INVALID_DOCUMENTS must be "skip" or "sync", got ${JSON.stringify(value)}`);
  return value;
}
