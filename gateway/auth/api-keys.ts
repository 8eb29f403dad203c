// API keys for server-side services: `trb_<id>_<secret>`. Only a SHA-256 of the secret is stored
// (the secret is 32 random bytes, so a salt or a slow hash adds nothing). Created, listed and
// revoked with `npm run api-key` (scripts/api-key.ts). Open sessions are re-checked
// periodically (server.ts), so a revoked key's socket is closed, not kept.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Collection, Db } from 'mongodb';
import { AuthError, type User } from './authenticator.ts';

interface ApiKeyDocument {
  _id: string;
  name: string;
  /** The user id requests made with this key act as. */
  userId: string;
  hash: string;
  createdAt: Date;
  revokedAt: Date | null;
  /** May use /admin (gateway/ops/). Absent on keys made before the flag existed: not admin. */
  admin?: boolean;
}

export interface ApiKeyInfo {
  id: string;
  name: string;
  userId: string;
  createdAt: Date;
  revokedAt: Date | null;
  admin: boolean;
}

export const API_KEYS_COLLECTION = '_tributary_api_keys';
const FORMAT = /^trb_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

export class ApiKeys {
  private readonly keys: Collection<ApiKeyDocument>;

  constructor(db: Db) {
    this.keys = db.collection<ApiKeyDocument>(API_KEYS_COLLECTION);
  }

  /** Creates a key; the returned `key` is shown once and never stored. */
  async create(name: string, userId?: string, options: { admin?: boolean } = {}): Promise<{ key: string; info: ApiKeyInfo }> {
    const id = randomBytes(8).toString('hex');
    const secret = randomBytes(32).toString('base64url');
    const doc: ApiKeyDocument = { _id: id, name, userId: userId ?? `api-key:${id}`, hash: sha256(secret), createdAt: new Date(), revokedAt: null, admin: options.admin === true };
    await this.keys.insertOne(doc);
    return { key: `trb_${id}_${secret}`, info: toInfo(doc) };
  }

  async revoke(id: string): Promise<boolean> {
    const result = await this.keys.updateOne({ _id: id, revokedAt: null }, { $set: { revokedAt: new Date() } });
    return result.modifiedCount === 1;
  }

  async list(): Promise<ApiKeyInfo[]> {
    return (await this.keys.find().sort({ createdAt: 1 }).toArray()).map(toInfo);
  }

  /**
   * Of these key ids (open sessions' keys), those that no longer authenticate, with the refusal
   * their session gets: revoked, or deleted. One query however many sessions.
   */
  async invalidAmong(ids: string[]): Promise<Map<string, AuthError>> {
    const unique = [...new Set(ids)];
    const found = await this.keys.find({ _id: { $in: unique } }, { projection: { revokedAt: 1 } }).toArray();
    const byId = new Map(found.map((doc) => [doc._id, doc]));
    const invalid = new Map<string, AuthError>();
    for (const id of unique) {
      const doc = byId.get(id);
      if (!doc) invalid.set(id, new AuthError('unknown-api-key', 'no such API key'));
      else if (doc.revokedAt) invalid.set(id, new AuthError('revoked-api-key', 'the API key has been revoked'));
    }
    return invalid;
  }

  async verify(key: string): Promise<User> {
    const match = FORMAT.exec(key);
    if (!match) throw new AuthError('malformed', 'the API key is malformed');
    const [, id, secret] = match;
    const doc = await this.keys.findOne({ _id: id! });
    if (!doc || !timingSafeEqual(Buffer.from(doc.hash, 'hex'), Buffer.from(sha256(secret!), 'hex'))) {
      throw new AuthError('unknown-api-key', 'no such API key');
    }
    if (doc.revokedAt) throw new AuthError('revoked-api-key', 'the API key has been revoked');
    return { id: doc.userId, provider: 'api-key', data: { keyId: doc._id, name: doc.name, admin: doc.admin === true }, customData: null, expiresAt: null };
  }
}

function sha256(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}

function toInfo(doc: ApiKeyDocument): ApiKeyInfo {
  return { id: doc._id, name: doc.name, userId: doc.userId, createdAt: doc.createdAt, revokedAt: doc.revokedAt, admin: doc.admin === true };
}
