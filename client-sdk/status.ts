// What the app shows about syncing besides its data: the socket's state and the writes not yet
// acknowledged. With several tabs (multiInstance) only the leader knows them; it keeps them in a
// local document, which RxDB shows to the follower tabs at once.
import type { RxCollection, RxDatabase } from 'rxdb';
import { auditTime, merge, Observable, Subject, type Subscription } from 'rxjs';
import type { LocalDocument } from './database.ts';
import type { CollectionReplication } from './replication.ts';
import { unsyncedChanges } from './reset.ts';
import type { ConnectionState } from './transport.ts';

const STATUS_DOCUMENT = 'tributary-sync-status';

export interface SyncStatus {
  connection: ConnectionState;
  pendingWrites: number;
}

/** The leader's status, shared with the other tabs. */
export function shareSyncStatus(database: RxDatabase): {
  publish(change: Partial<SyncStatus>): void;
  /** Every status the leader saved (this tab's own included). */
  changes$: Observable<SyncStatus>;
} {
  let current: SyncStatus = { connection: 'disconnected', pendingWrites: 0 };
  let saving: Promise<unknown> = Promise.resolve();
  return {
    publish(change) {
      current = { ...current, ...change };
      const saved = current;
      // Saved in order; a save after the database closed has nobody to tell.
      saving = saving.then(() => database.upsertLocal(STATUS_DOCUMENT, saved)).catch(() => {});
    },
    changes$: new Observable<SyncStatus>((subscriber) => {
      const s = database.getLocal$<SyncStatus>(STATUS_DOCUMENT).subscribe((doc) => doc && subscriber.next(doc.toJSON().data as SyncStatus));
      return () => s.unsubscribe();
    }),
  };
}

/**
 * Counts the local changes the running replications have not had acknowledged (the documents
 * that differ from what the server was last known to hold, reset.ts unsyncedChanges), after
 * every local change, replication step (`activity$`) and connection change. It reads every
 * document: `enabled()` says whether anyone is looking.
 */
export function countPendingWrites(
  collections: Record<string, RxCollection<LocalDocument>>,
  replications: () => CollectionReplication[] | null,
  activity$: Observable<unknown>,
  enabled: () => boolean,
  onCount: (count: number) => void,
): { recount(): void; stop(): void } {
  const names = Object.keys(collections);
  let counting = false;
  let again = false;
  let stopped = false;
  const count = async () => {
    const running = replications();
    if (stopped || !running || running.length !== names.length || !enabled()) return;
    if (counting) {
      again = true;
      return;
    }
    counting = true;
    try {
      const changes = await Promise.all(running.map((r, i) => unsyncedChanges(names[i]!, collections[names[i]!]!, r.state)));
      if (!stopped) onCount(changes.reduce((n, c) => n + c.length, 0));
    } catch {
      // Counted again at the next change (a replication replaced meanwhile, the database closing).
    } finally {
      counting = false;
      if (again) {
        again = false;
        void count();
      }
    }
  };
  const trigger$ = new Subject<void>();
  // A burst of writes is counted once.
  const subscription: Subscription = merge(trigger$, activity$, ...Object.values(collections).map((c) => c.$))
    .pipe(auditTime(50))
    .subscribe(() => void count());
  return {
    recount: () => trigger$.next(),
    stop: () => {
      stopped = true;
      subscription.unsubscribe();
    },
  };
}
