// Who is asking. One place turns a bearer token (graphql-ws `connection_init`, HTTP
// `Authorization`) into a user, or refuses it with a reason:
//   - custom JWTs, verified with jose against a shared secret, a public key or a JWKS document,
//     with an algorithm allow-list and `exp` (required), `nbf`, `iss`, `aud` checks;
//   - anonymous users, whose tokens this gateway issues (HS256, `iss: tributary-anonymous`) with
//     a secret kept in MongoDB, so every gateway instance accepts them;
//   - API keys for server-side services (`trb_<id>_<secret>`, stored hashed; api-keys.ts);
//   - unsigned dev tokens, only in an explicit development mode.
import { randomBytes, randomUUID } from 'node:crypto';
import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, errors, importSPKI, jwtVerify, SignJWT, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { Collection, Db } from 'mongodb';
import { ApiKeys } from './api-keys.ts';

export type AuthProvider = 'jwt' | 'anonymous' | 'api-key' | 'dev';

export interface User {
  id: string;
  provider: AuthProvider;
  /** The token's claims (JWT, anonymous, dev); the key's name and id for API keys. */
  data: Record<string, unknown>;
  /** Realm's custom user data: the user's document in the configured collection, if any. */
  customData: Record<string, unknown> | null;
  /** When the credentials stop being valid (ms since epoch); null for API keys. */
  expiresAt: number | null;
}

export type AuthFailure =
  | 'missing'
  | 'malformed'
  | 'bad-signature'
  | 'algorithm-not-allowed'
  | 'expired'
  | 'not-yet-valid'
  | 'wrong-issuer'
  | 'wrong-audience'
  | 'no-subject'
  | 'unknown-api-key'
  | 'revoked-api-key'
  | 'provider-disabled';

export class AuthError extends Error {
  override name = 'AuthError';
  constructor(
    readonly reason: AuthFailure,
    message: string,
  ) {
    super(message);
  }
}

export interface AuthConfig {
  jwt?: {
    /** HS256/384/512 shared secret. */
    secret?: string;
    /** PEM (SPKI) public key for RS*, PS* or ES* tokens. */
    publicKey?: string;
    /** URL of a JWKS document (fetched and cached by jose). */
    jwksUrl?: string;
    /** Allowed `alg` values. Default: HS256 with a secret, RS256 and ES256 otherwise. */
    algorithms?: string[];
    issuer?: string;
    audience?: string;
    /** Claim holding the user id. Default `sub`. */
    userIdClaim?: string;
  };
  /** Anonymous users (default on). */
  anonymous?: { enabled: boolean; tokenTtlSeconds?: number };
  /** Custom user data: a collection and the field that holds the user id. */
  customData?: { collection: string; userIdField?: string };
  /** Accept unsigned dev tokens. Refused when NODE_ENV=production. */
  devTokens?: boolean;
}

export const ANONYMOUS_ISSUER = 'tributary-anonymous';
const SECRETS_COLLECTION = '_tributary_secrets';

/**
 * The token of an HTTP Authorization header: undefined without a header, null for a header that
 * is not "Bearer <token>" (malformed, not missing).
 */
export function bearerToken(header: string | undefined): string | null | undefined {
  if (header === undefined) return undefined;
  return /^Bearer (.+)$/i.exec(header)?.[1] ?? null;
}

export class Authenticator {
  private jwtKey: Uint8Array | CryptoKey | JWTVerifyGetKey | null = null;
  private jwtAlgorithms: string[] = [];
  private anonymousSecret: Uint8Array | null = null;
  readonly apiKeys: ApiKeys;
  private customData: Collection | null;

  constructor(
    private readonly config: AuthConfig,
    private readonly db: Db,
  ) {
    if (config.devTokens && process.env.NODE_ENV === 'production') {
      throw new Error('dev tokens (TRIBUTARY_DEV_TOKENS) cannot be enabled when NODE_ENV=production');
    }
    this.apiKeys = new ApiKeys(db);
    this.customData = config.customData ? db.collection(config.customData.collection) : null;
  }

  async init(): Promise<void> {
    const jwt = this.config.jwt;
    if (jwt?.secret) {
      this.jwtKey = new TextEncoder().encode(jwt.secret);
      this.jwtAlgorithms = jwt.algorithms ?? ['HS256'];
    } else if (jwt?.publicKey) {
      this.jwtAlgorithms = jwt.algorithms ?? ['RS256'];
      this.jwtKey = await importSPKI(jwt.publicKey, this.jwtAlgorithms[0]!);
    } else if (jwt?.jwksUrl) {
      this.jwtKey = createRemoteJWKSet(new URL(jwt.jwksUrl));
      this.jwtAlgorithms = jwt.algorithms ?? ['RS256', 'ES256'];
    }
    if (this.anonymousEnabled) this.anonymousSecret = await this.sharedSecret('anonymous');
  }

  get anonymousEnabled(): boolean {
    return this.config.anonymous?.enabled ?? true;
  }

  get devTokens(): boolean {
    return this.config.devTokens === true;
  }

  /** The user of an HTTP request, from its Authorization header (bearerToken). */
  authenticateHeader(header: string | undefined): Promise<User> {
    const token = bearerToken(header);
    return token === null ? Promise.reject(new AuthError('malformed', 'the Authorization header must be "Bearer <token>"')) : this.authenticate(token);
  }

  /** `token` is whatever the client sent (connection_init's authToken may be any JSON value). */
  async authenticate(token: unknown): Promise<User> {
    if (token === undefined || token === null || token === '') throw new AuthError('missing', 'no token: send one in connection_init { authToken } or Authorization: Bearer');
    if (typeof token !== 'string') throw new AuthError('malformed', `the token must be a string, got ${Array.isArray(token) ? 'an array' : typeof token === 'object' ? 'an object' : `a ${typeof token}`}`);
    if (token.startsWith('trb_')) return this.withCustomData(await this.apiKeys.verify(token));
    let header: { alg?: string };
    let claims: JWTPayload;
    try {
      header = decodeProtectedHeader(token);
      claims = decodeJwt(token);
    } catch {
      throw new AuthError('malformed', 'the token is not a JWT or an API key');
    }
    if (header.alg === 'none') {
      if (!this.devTokens) throw new AuthError('algorithm-not-allowed', 'unsigned tokens (alg "none") are refused');
      if (typeof claims.exp === 'number' && claims.exp * 1000 < Date.now()) throw new AuthError('expired', 'the token has expired');
      return this.withCustomData(userFrom(claims, 'dev', 'sub', null));
    }
    if (claims.iss === ANONYMOUS_ISSUER) {
      if (!this.anonymousSecret) throw new AuthError('provider-disabled', 'anonymous users are disabled on this gateway');
      const verified = await verify(token, this.anonymousSecret, { algorithms: ['HS256'], issuer: ANONYMOUS_ISSUER, requiredClaims: ['exp'] });
      return this.withCustomData(userFrom(verified, 'anonymous', 'sub', null));
    }
    if (!this.jwtKey) throw new AuthError('provider-disabled', 'custom JWTs are not configured on this gateway');
    const jwt = this.config.jwt!;
    // A custom JWT must expire: a session opened with one ends when it does (4440).
    const verified = await verify(token, this.jwtKey, { algorithms: this.jwtAlgorithms, issuer: jwt.issuer, audience: jwt.audience, requiredClaims: ['exp'] });
    return this.withCustomData(userFrom(verified, 'jwt', jwt.userIdClaim ?? 'sub', null));
  }

  /**
   * Re-reads the custom data of these users (open sessions) in one query; updates and returns
   * those whose data changed.
   */
  async refreshCustomData(users: User[]): Promise<User[]> {
    if (!this.customData || users.length === 0) return [];
    const field = this.config.customData!.userIdField ?? 'userId';
    const found = await this.customData.find({ [field]: { $in: [...new Set(users.map((u) => u.id))] } }).toArray();
    const byId = new Map(found.map(({ _id, ...data }) => [String(data[field]), data]));
    return users.filter((user) => {
      const next = byId.get(user.id) ?? null;
      if (JSON.stringify(next) === JSON.stringify(user.customData)) return false;
      user.customData = next;
      return true;
    });
  }

  /** A new anonymous user and its token. */
  async issueAnonymous(): Promise<{ token: string; userId: string; expiresAt: number }> {
    if (!this.anonymousSecret) throw new AuthError('provider-disabled', 'anonymous users are disabled on this gateway');
    const userId = `anon-${randomUUID()}`;
    const ttl = this.config.anonymous?.tokenTtlSeconds ?? 30 * 24 * 3600;
    const expiresAt = Math.floor(Date.now() / 1000) + ttl;
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer(ANONYMOUS_ISSUER)
      .setSubject(userId)
      .setIssuedAt()
      .setExpirationTime(expiresAt)
      .sign(this.anonymousSecret);
    return { token, userId, expiresAt: expiresAt * 1000 };
  }

  /** A random secret shared by every gateway instance on this database (created once). */
  private async sharedSecret(name: string): Promise<Uint8Array> {
    const secrets = this.db.collection<{ _id: string; value: string }>(SECRETS_COLLECTION);
    await secrets.updateOne({ _id: name }, { $setOnInsert: { value: randomBytes(32).toString('base64') } }, { upsert: true });
    const stored = await secrets.findOne({ _id: name });
    return Buffer.from(stored!.value, 'base64');
  }

  private async withCustomData(user: User): Promise<User> {
    if (!this.customData) return user;
    const field = this.config.customData!.userIdField ?? 'userId';
    const found = await this.customData.findOne({ [field]: user.id });
    if (!found) return user;
    const { _id, ...customData } = found;
    return { ...user, customData };
  }
}

async function verify(token: string, key: Uint8Array | CryptoKey | JWTVerifyGetKey, options: { algorithms: string[]; issuer?: string; audience?: string; requiredClaims?: string[] }): Promise<JWTPayload> {
  try {
    const { payload } = await jwtVerify(token, key as Uint8Array, options);
    return payload;
  } catch (error) {
    throw toAuthError(error);
  }
}

function toAuthError(error: unknown): AuthError {
  if (error instanceof errors.JWTExpired) return new AuthError('expired', 'the token has expired');
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.claim === 'nbf') return new AuthError('not-yet-valid', 'the token is not valid yet (nbf)');
    if (error.claim === 'iss') return new AuthError('wrong-issuer', 'the token has the wrong issuer (iss)');
    if (error.claim === 'aud') return new AuthError('wrong-audience', 'the token has the wrong audience (aud)');
    if (error.claim === 'exp') return new AuthError('malformed', 'the token has no valid expiry (exp): custom JWTs must expire');
    return new AuthError('malformed', `the token's ${error.claim} claim is invalid`);
  }
  if (error instanceof errors.JOSEAlgNotAllowed || error instanceof errors.JOSENotSupported) {
    return new AuthError('algorithm-not-allowed', 'the token is signed with an algorithm that is not allowed');
  }
  if (error instanceof errors.JWSSignatureVerificationFailed || error instanceof errors.JWKSNoMatchingKey) {
    return new AuthError('bad-signature', 'the token signature does not verify');
  }
  return new AuthError('malformed', 'the token is malformed');
}

function userFrom(claims: JWTPayload, provider: AuthProvider, idClaim: string, customData: null): User {
  const id = claims[idClaim];
  if (typeof id !== 'string' || id.length === 0) throw new AuthError('no-subject', `the token has no "${idClaim}" claim for the user id`);
  return { id, provider, data: { ...claims }, customData, expiresAt: typeof claims.exp === 'number' ? claims.exp * 1000 : null };
}
