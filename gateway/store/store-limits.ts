// What the store can take at once. FerretDB v1 (1.24, SQLite backend) serves all its clients
// from one pool of 100 SQLite connections. It holds one for each open cursor, and one for each
// statement of an update command until the whole command ends (handler/msg_update.go closes
// each statement's iterator only when the command returns). A command of 100 update statements,
// or a few large ones at once, waits forever for a connection, and so does every other client
// of that FerretDB. So on FerretDB, updates go a few per command and few commands at a time, and
// few cursors stay open between pages. And FerretDB looks a document up by its index only when
// the filter is `{_id}` alone: `{_id: {$in: [...]}}` scans the whole collection (1.3 s for 200
// ids among 50,000 documents, measured here, against 6 ms per `{_id}` lookup), so a few
// documents are read one lookup each. MongoDB has none of these limits.
import type { Db } from 'mongodb';
import { bsonSupportOf, configureBsonSupport } from '../../protocol/bson-values.ts';

export interface StoreLimits {
  /** Update (and replace) statements per write command. */
  updatesPerCommand: number;
  /** Write commands with updates in flight at once, for the whole gateway process. */
  concurrentUpdateCommands: number;
  /** Read cursors kept open between pages, per collection (cursor-cache.ts). */
  cachedCursorsPerCollection: number;
  /** Reads of at most this many documents by `_id` go one `{_id}` lookup each, not one `$in`. */
  pointReads: number;
  /**
   * Updates made under one sequence lease (inserts go along: they take one command). A lease
   * holds every reader back until it is released, and one that outlives its TTL makes its writes
   * be sequenced again, so a big push is written in parts that finish well within the TTL.
   */
  writesPerLease: number;
  /**
   * Whether a single-document update is atomic (a compare-and-set by filter holds against other
   * clients). Not on FerretDB v1: 50 concurrent `$inc` of one document added up to 7.
   */
  atomicUpdates: boolean;
}

/** 2 × 16 held by updates and 2 × 16 by cached cursors leave most of FerretDB's 100 for reads. */
export const FERRETDB_LIMITS: StoreLimits = {
  updatesPerCommand: 16,
  concurrentUpdateCommands: 2,
  cachedCursorsPerCollection: 16,
  pointReads: 16,
  writesPerLease: 64,
  atomicUpdates: false,
};
export const MONGODB_LIMITS: StoreLimits = {
  updatesPerCommand: 1_000,
  concurrentUpdateCommands: Number.POSITIVE_INFINITY,
  cachedCursorsPerCollection: 200,
  pointReads: 0,
  writesPerLease: 1_000,
  atomicUpdates: true,
};

export async function detectStoreLimits(db: Db): Promise<StoreLimits> {
  const info = await db.admin().command({ buildInfo: 1 });
  // What the store can hold (FerretDB 1.24 drops the connection on a Decimal128).
  configureBsonSupport(bsonSupportOf(info));
  return 'ferretdbVersion' in info ? FERRETDB_LIMITS : MONGODB_LIMITS;
}

/** At most `slots` tasks at once; the others wait their turn, in order. */
export class Semaphore {
  private waiting: Array<() => void> = [];
  private running = 0;

  constructor(private readonly slots: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running >= this.slots) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.running++;
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }
}
