// The operator's endpoints, answered before anything GraphQL:
//   GET /health        liveness, no token (/ready, in server.ts, checks the store)
//   GET /metrics       Prometheus text; open, or `Authorization: Bearer <TRIBUTARY_METRICS_TOKEN>`
//   GET /admin         the admin page (admin-page.ts); it holds no data
//   /admin/api/...     JSON for the page, for admins only: API keys created with the admin flag,
//                      or custom JWTs carrying TRIBUTARY_ADMIN_CLAIM
// Every admin answer is 401 without valid credentials and 403 for anyone else, before any work.
import { timingSafeEqual, createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { AuthError, bearerToken, type Authenticator, type User } from '../auth/authenticator.ts';
import type { AdminClaim } from '../config.ts';
import type { CollectionRuntime } from '../graphql/schema.ts';
import type { Activity, Session } from './activity.ts';
import { ADMIN_PAGE, ADMIN_PAGE_CSP } from './admin-page.ts';
import { feedLag } from './feed-lag.ts';
import type { GatewayMetrics } from './metrics.ts';

/** Largest admin request body (creating an API key is a few fields). */
export const MAX_ADMIN_BODY_BYTES = 4_096;
const KEY_ID = /^[0-9a-f]{16}$/;
/** Sessions listed at most (the newest), with the total: the page polls this. */
export const MAX_SESSIONS_LISTED = 500;
/** Printable text without control characters, for names and user ids. */
const PLAIN_TEXT = /^[^\p{Cc}\p{Cf}\p{Zl}\p{Zp}]+$/u;

export interface OpsDependencies {
  auth: Authenticator;
  metrics: GatewayMetrics;
  activity: Activity;
  collections: Map<string, CollectionRuntime>;
  metricsToken: string | null;
  adminClaim: AdminClaim | null;
  log: Logger;
}

/** Answers the request if it is one of ours; false: not ours, the caller goes on. */
export function handleOps(deps: OpsDependencies, req: IncomingMessage, res: ServerResponse): boolean {
  const path = pathOf(req.url);
  if (path === '/health') {
    if (!isRead(req)) return methodNotAllowed(res, 'GET, HEAD');
    sendJson(res, 200, { status: 'up' });
    return true;
  }
  if (path === '/metrics') {
    if (!isRead(req)) return methodNotAllowed(res, 'GET, HEAD');
    if (deps.metricsToken !== null && !sameSecret(bearerToken(req.headers.authorization) ?? undefined, deps.metricsToken)) {
      res.writeHead(401, { 'content-type': 'text/plain; charset=utf-8', 'www-authenticate': 'Bearer' });
      res.end('unauthorized\n');
      return true;
    }
    void deps.metrics.scrape().then(
      (text) => {
        res.writeHead(200, { 'content-type': deps.metrics.contentType, 'cache-control': 'no-store' });
        res.end(text);
      },
      (error: unknown) => {
        deps.log.error({ err: error }, 'collecting metrics failed');
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
        res.end('collecting metrics failed\n');
      },
    );
    return true;
  }
  if (path === '/admin' || path === '/admin/') {
    if (!isRead(req)) return methodNotAllowed(res, 'GET, HEAD');
    res.writeHead(200, {
      'content-type': 'text/html; charset=utf-8',
      'content-security-policy': ADMIN_PAGE_CSP,
      'x-content-type-options': 'nosniff',
      'x-frame-options': 'DENY',
      'referrer-policy': 'no-referrer',
      'cache-control': 'no-store',
    });
    res.end(req.method === 'HEAD' ? undefined : ADMIN_PAGE);
    return true;
  }
  if (path.startsWith('/admin/api/')) {
    void adminApi(deps, req, res, path.slice('/admin/api'.length)).catch((error: unknown) => {
      deps.metrics.storeError('admin', error);
      deps.log.error({ err: error }, 'admin API request failed');
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
      else res.destroy();
    });
    return true;
  }
  return false;
}

async function adminApi(deps: OpsDependencies, req: IncomingMessage, res: ServerResponse, route: string): Promise<void> {
  let user: User;
  try {
    user = await deps.auth.authenticateHeader(req.headers.authorization);
  } catch (error) {
    if (!(error instanceof AuthError)) throw error;
    return sendJson(res, 401, { error: `unauthorized: ${error.message}`, reason: error.reason });
  }
  if (!isAdmin(user, deps.adminClaim)) return sendJson(res, 403, { error: 'forbidden: this user is not an admin of the gateway' });

  const method = req.method ?? 'GET';
  if (method === 'GET' && route === '/me') return sendJson(res, 200, { id: user.id, provider: user.provider });
  if (method === 'GET' && route === '/sessions') {
    const all = deps.activity.allSessions();
    return sendJson(res, 200, { total: all.length, sessions: sessionsView(all.slice(-MAX_SESSIONS_LISTED)) });
  }
  if (method === 'GET' && route === '/collections') return sendJson(res, 200, { collections: await collectionsView(deps) });
  if (method === 'GET' && route === '/writes') return sendJson(res, 200, { refused: deps.activity.recentRefusals() });
  if (method === 'GET' && route === '/rules') return sendJson(res, 200, rulesView(deps));
  if (method === 'GET' && route === '/keys') return sendJson(res, 200, { keys: await deps.auth.apiKeys.list() });
  if (method === 'POST' && route === '/keys') {
    const body = await readJson(req, res);
    if (body === undefined) return;
    const problem = keyRequestProblem(body);
    if (problem) return sendJson(res, 400, { error: problem });
    const { name, userId, admin } = body as { name: string; userId?: string; admin?: boolean };
    const created = await deps.auth.apiKeys.create(name.trim(), userId?.trim() || undefined, { admin: admin === true });
    deps.log.info({ admin: user.id, keyId: created.info.id, adminKey: created.info.admin }, 'API key created through /admin');
    return sendJson(res, 201, created);
  }
  const revoke = /^\/keys\/([^/]+)$/.exec(route);
  if (method === 'DELETE' && revoke) {
    const id = revoke[1]!;
    if (!KEY_ID.test(id)) return sendJson(res, 400, { error: 'a key id is 16 hexadecimal digits' });
    const revoked = await deps.auth.apiKeys.revoke(id);
    if (revoked) deps.log.info({ admin: user.id, keyId: id }, 'API key revoked through /admin');
    return sendJson(res, revoked ? 200 : 404, revoked ? { revoked: id } : { error: 'no active key with this id' });
  }
  sendJson(res, 404, { error: 'no such admin API' });
}

/** API keys created with the admin flag; custom JWTs (verified, not dev or anonymous) with the configured claim. */
export function isAdmin(user: User, claim: AdminClaim | null): boolean {
  if (user.provider === 'api-key') return user.data.admin === true;
  if (user.provider !== 'jwt' || claim === null) return false;
  const value = user.data[claim.name];
  return value === claim.value || (Array.isArray(value) && value.includes(claim.value));
}

function sessionsView(sessions: Session[]) {
  return sessions.map((s) => ({
    id: s.id,
    userId: s.user.id,
    provider: s.user.provider,
    connectedAt: s.connectedAt,
    remoteAddress: s.remoteAddress,
    userAgent: s.userAgent,
    subscriptions: [...s.streams].map((stream) => ({
      ...stream,
      // What the gateway can see of a Flexible Sync subscription's state: its bootstrap under
      // way, or its stream live (the set's versions and names live on the device).
      state: stream.kind === 'sync' && s.bootstraps.get(stream.collection)?.state === 'bootstrapping' ? 'bootstrapping' : 'live',
    })),
    bootstraps: [...s.bootstraps].map(([collection, b]) => ({ collection, ...b })),
    lastPulls: [...s.lastPullAt].map(([collection, at]) => ({ collection, at })),
  }));
}

async function collectionsView({ collections }: OpsDependencies) {
  return Promise.all(
    [...collections].map(async ([name, runtime]) => ({
      name,
      documents: await runtime.store.documents.estimatedDocumentCount(),
      liveStreams: runtime.feed.listenerCount,
      changeFeed: await feedLag(runtime),
    })),
  );
}

function rulesView({ activity }: OpsDependencies) {
  const { path, rules, loadedAt, lastReload } = activity.rules;
  // The roles only: `%%values` may hold secrets, and are not shown.
  return { path, files: rules.files, loadedAt, lastReload, roles: Object.fromEntries(rules.roles) };
}

function keyRequestProblem(body: unknown): string | null {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return 'the body must be a JSON object';
  const allowed = new Set(['name', 'userId', 'admin']);
  const unknown = Object.keys(body).find((k) => !allowed.has(k));
  if (unknown !== undefined) return `unknown field ${JSON.stringify(unknown.slice(0, 50))}`;
  const { name, userId, admin } = body as Record<string, unknown>;
  if (typeof name !== 'string' || name.trim().length === 0 || name.length > 100 || !PLAIN_TEXT.test(name)) return 'name must be 1 to 100 printable characters';
  if (userId !== undefined && (typeof userId !== 'string' || userId.length > 200 || (userId.trim() !== '' && !PLAIN_TEXT.test(userId)))) return 'userId must be up to 200 printable characters';
  if (admin !== undefined && typeof admin !== 'boolean') return 'admin must be true or false';
  return null;
}

/** The JSON body, at most MAX_ADMIN_BODY_BYTES; undefined once it has answered 4xx itself. */
async function readJson(req: IncomingMessage, res: ServerResponse): Promise<unknown> {
  if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) {
    sendJson(res, 415, { error: 'send application/json' });
    return undefined;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_ADMIN_BODY_BYTES) {
      res.setHeader('connection', 'close');
      sendJson(res, 413, { error: `the body exceeds ${MAX_ADMIN_BODY_BYTES} bytes` });
      return undefined;
    }
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    sendJson(res, 400, { error: 'the body is not JSON' });
    return undefined;
  }
}

/** Compared in constant time (by their hashes, so lengths do not show either). */
function sameSecret(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false;
  const hash = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(hash(given), hash(expected));
}

function pathOf(url: string | undefined): string {
  return (url ?? '/').split('?')[0]!;
}

function isRead(req: IncomingMessage): boolean {
  return req.method === 'GET' || req.method === 'HEAD';
}

function methodNotAllowed(res: ServerResponse, allow: string): true {
  res.writeHead(405, { allow, 'content-type': 'application/json' });
  res.end(JSON.stringify({ error: 'method not allowed' }));
  return true;
}

/** A JSON answer that no cache keeps (anonymous tokens and admin data go through here). */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
  res.end(JSON.stringify(body));
}
