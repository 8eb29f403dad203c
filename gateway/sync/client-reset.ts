// When a client's local state can no longer be continued, and telling it so (PROTOCOL.md,
// "Client reset"). A client continues from a checkpoint; the gateway answers a pull with
// CLIENT_RESET instead when that checkpoint belongs to another history:
//
//   database-replaced  its epoch names another feed: the database was made anew (sequencer.ts);
//   forced             an operator forced a reset of the collection, or of the user, since
//                      (`npm run reset-clients`; the epoch carries both generations);
//   checkpoint-ahead   it is past anything this database allocated: a restore from a backup;
//   history-trimmed    it is older than the history kept (tombstones trimmed after
//                      TRIBUTARY_TOMBSTONE_RETENTION, store/retention.ts): it would miss deletes.
//
// A checkpoint's epoch is `<feed epoch>.<collection generation>.<user generation>`; a checkpoint
// without one (RxDB's stock plugin) is checked by its sequence only.
import { GraphQLError } from 'graphql';
import type { Collection, Db } from 'mongodb';
import type { Checkpoint } from '../../protocol/messages.ts';
import type { CollectionStore } from '../store/collection-store.ts';

export const RESETS_COLLECTION = '_tributary_resets';

/** Per collection (`_id`: its name) or per collection and user (`<collection>/<user id>`). */
export interface ResetDocument {
  _id: string;
  /** Forced resets so far. */
  generation?: number;
  /** (Per collection) history below this sequence is trimmed. */
  trimmedThrough?: number;
}

export type ResetReason = 'database-replaced' | 'forced' | 'checkpoint-ahead' | 'history-trimmed';

/**
 * How long a collection's and a user's reset documents are taken as read (pulls and streams ask
 * often). Retention waits this long between raising trimmedThrough and trimming.
 */
export const RESETS_CACHE_MS = 1_000;

interface CacheEntry {
  at: number;
  doc: Promise<ResetDocument | null>;
  /** The reading, once it arrived. */
  settled?: { doc: ResetDocument | null };
}

export class ClientResets {
  private readonly resets: Collection<ResetDocument>;
  private readonly cache = new Map<string, CacheEntry>();

  constructor(db: Db) {
    this.resets = db.collection<ResetDocument>(RESETS_COLLECTION);
  }

  /** The epoch checkpoints of this collection carry for this user. */
  async epochFor(store: CollectionStore, userId: string | null): Promise<string> {
    const [collection, user] = await Promise.all([this.read(store.model.name), userId === null ? null : this.read(userKey(store.model.name, userId))]);
    return epochOf(store, collection, user);
  }

  /**
   * The epoch, when the readings it needs are in hand and fresh (read within RESETS_CACHE_MS):
   * a live stream renders its events synchronously while it can. Undefined: ask epochFor.
   */
  knownEpoch(store: CollectionStore, userId: string | null): string | undefined {
    const collection = this.fresh(store.model.name);
    const user = userId === null ? { doc: null } : this.fresh(userKey(store.model.name, userId));
    return collection && user ? epochOf(store, collection.doc, user.doc) : undefined;
  }

  /**
   * Whether a client at `checkpoint` may continue: returns the epoch to send it, or throws the
   * CLIENT_RESET error saying why not. A first sync (no checkpoint) always may.
   */
  async admit(store: CollectionStore, checkpoint: Checkpoint | null, userId: string | null): Promise<string> {
    const epoch = await this.epochFor(store, userId);
    if (!checkpoint) return epoch;
    if (typeof checkpoint.epoch === 'string' && checkpoint.epoch !== epoch) {
      const replaced = checkpoint.epoch.split('.')[0] !== store.sequencer.epoch;
      throw resetError(replaced ? 'database-replaced' : 'forced', replaced ? 'the database is not the one this checkpoint was issued by' : 'a reset was forced since this checkpoint');
    }
    if (checkpoint.seq > (await store.sequencer.allocated())) throw resetError('checkpoint-ahead', 'the checkpoint is ahead of the database (restored from a backup?)');
    const trimmed = (await this.read(store.model.name))?.trimmedThrough ?? 0;
    if (checkpoint.seq < trimmed) throw resetError('history-trimmed', 'the checkpoint is older than the history the gateway keeps (TRIBUTARY_TOMBSTONE_RETENTION)');
    return epoch;
  }

  /** Makes every client of the collection (or only the user's) reset on its next pull. */
  async force(collection: string, userId?: string): Promise<void> {
    const key = userId === undefined ? collection : userKey(collection, userId);
    await this.resets.updateOne({ _id: key }, { $inc: { generation: 1 } }, { upsert: true });
    this.cache.delete(key);
  }

  /** History below `seq` is about to be trimmed: clients behind it must reset. */
  async trimThrough(collection: string, seq: number): Promise<void> {
    const current = (await this.read(collection, true))?.trimmedThrough ?? 0;
    if (seq <= current) return;
    await this.resets.updateOne({ _id: collection }, { $set: { trimmedThrough: seq } }, { upsert: true });
    this.cache.delete(collection);
  }

  private read(key: string, fresh = false): Promise<ResetDocument | null> {
    const cached = this.cache.get(key);
    if (!fresh && cached && Date.now() - cached.at < RESETS_CACHE_MS) return cached.doc;
    const doc = this.resets.findOne({ _id: key });
    const entry: CacheEntry = { at: Date.now(), doc };
    this.cache.set(key, entry);
    if (this.cache.size > 10_000) this.cache.delete(this.cache.keys().next().value!);
    doc.then(
      (read) => (entry.settled = { doc: read }),
      () => this.cache.delete(key),
    );
    return doc;
  }

  private fresh(key: string): { doc: ResetDocument | null } | undefined {
    const cached = this.cache.get(key);
    return cached && Date.now() - cached.at < RESETS_CACHE_MS ? cached.settled : undefined;
  }
}

function epochOf(store: CollectionStore, collection: ResetDocument | null, user: ResetDocument | null): string {
  return `${store.sequencer.epoch}.${collection?.generation ?? 0}.${user?.generation ?? 0}`;
}

function userKey(collection: string, userId: string): string {
  return `${collection}/${userId}`;
}

export function resetError(reason: ResetReason, message: string): GraphQLError {
  return new GraphQLError(`client reset required: ${message}`, { extensions: { code: 'CLIENT_RESET', reason } });
}
