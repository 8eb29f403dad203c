// Flexible Sync subscriptions, as Realm apps know them: a versioned set of named queries,
// changed in one batch with update(), each version going Pending → Bootstrapping → Complete (or
// Error, or Superseded by a newer version).
import { BehaviorSubject, type Observable } from 'rxjs';
import type { Filter } from '../protocol/filter.ts';
import { getCollection, type DataModel } from '../protocol/model.ts';
import { BadQueryError, canonicalJson, sameFilter, toFilter, type SubscriptionQuery } from './queries.ts';

export type SubscriptionSetState = 'pending' | 'bootstrapping' | 'complete' | 'error' | 'superseded';

export interface Subscription {
  name: string;
  collection: string;
  /** The query as the app gave it: an RQL string or a Mango selector. */
  source: SubscriptionQuery;
  args: unknown[];
  /** The checked filter the gateway matches with (null when the query is bad). */
  filter: Filter | null;
  /** Why the query is bad (BAD_QUERY), when it is. */
  queryError: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface SubscriptionSetSnapshot {
  version: number;
  state: SubscriptionSetState;
  /** Set in the Error state: what is wrong (code BAD_QUERY, Realm code 226). */
  error: BadQueryError | null;
  subscriptions: readonly Subscription[];
  /** Bootstrap progress of this version: documents received and the gateway's estimate. */
  progress: { received: number; estimatedTotal: number };
}

export interface AddOptions {
  /** Defaults to the collection and query, as Realm names anonymous subscriptions. */
  name?: string;
  /** Values for `$0`, `$1`, … in an RQL query. */
  args?: unknown[];
  /** Throw instead of updating when a subscription of that name has another query. */
  throwOnUpdate?: boolean;
}

/** The set being changed inside update(). */
export class MutableSubscriptionSet {
  constructor(
    private readonly model: DataModel,
    private readonly subscriptions: Subscription[],
  ) {}

  /** Adds a subscription, or changes the query of the one with this name. */
  add(collection: string, query: SubscriptionQuery, options: AddOptions = {}): Subscription {
    const model = getCollection(this.model, collection);
    const args = options.args ?? [];
    const name = options.name ?? `${collection}: ${typeof query === 'string' ? query : canonicalJson(query)}`;
    let filter: Filter | null = null;
    let queryError: string | null = null;
    try {
      filter = toFilter(model, query, args);
    } catch (error) {
      if (!(error instanceof BadQueryError)) throw error;
      queryError = error.message;
    }
    const now = new Date().toISOString();
    const existing = this.subscriptions.find((s) => s.name === name);
    if (existing) {
      const unchanged = existing.collection === collection && canonicalJson(existing.source) === canonicalJson(query) && canonicalJson(existing.args) === canonicalJson(args);
      if (unchanged) return existing;
      if (options.throwOnUpdate) throw new Error(`a subscription named "${name}" already exists with another query`);
      Object.assign(existing, { collection, source: query, args, filter, queryError, updatedAt: now });
      return existing;
    }
    const subscription: Subscription = { name, collection, source: query, args, filter, queryError, createdAt: now, updatedAt: now };
    this.subscriptions.push(subscription);
    return subscription;
  }

  /** Removes the subscriptions on `collection` with this query; returns whether any was there. */
  remove(collection: string, query: SubscriptionQuery, args: unknown[] = []): boolean {
    const filter = toFilter(getCollection(this.model, collection), query, args);
    return this.removeWhere((s) => s.collection === collection && s.filter !== null && sameFilter(s.filter, filter)) > 0;
  }

  removeByName(name: string): boolean {
    return this.removeWhere((s) => s.name === name) > 0;
  }

  removeByCollection(collection: string): number {
    return this.removeWhere((s) => s.collection === collection);
  }

  removeAll(): number {
    return this.removeWhere(() => true);
  }

  private removeWhere(predicate: (s: Subscription) => boolean): number {
    const before = this.subscriptions.length;
    const kept = this.subscriptions.filter((s) => !predicate(s));
    this.subscriptions.splice(0, this.subscriptions.length, ...kept);
    return before - kept.length;
  }
}

/** What the subscription set needs from the sync engine (flexible-sync.ts). */
export interface SubscriptionCommitter {
  /** Makes `subscriptions` the next version; resolves when that version is Complete. */
  commit(subscriptions: Subscription[]): Promise<void>;
  waitForVersion(version: number): Promise<void>;
}

export class SubscriptionSet {
  constructor(
    private readonly model: DataModel,
    private readonly state$: BehaviorSubject<SubscriptionSetSnapshot>,
    private readonly committer: SubscriptionCommitter,
  ) {}

  get version(): number {
    return this.state$.getValue().version;
  }
  get state(): SubscriptionSetState {
    return this.state$.getValue().state;
  }
  get error(): BadQueryError | null {
    return this.state$.getValue().error;
  }
  get subscriptions(): readonly Subscription[] {
    return this.state$.getValue().subscriptions;
  }
  /** Every change of version, state or bootstrap progress. */
  get changes$(): Observable<SubscriptionSetSnapshot> {
    return this.state$.asObservable();
  }

  findByName(name: string): Subscription | undefined {
    return this.subscriptions.find((s) => s.name === name);
  }

  /**
   * Changes the set in one batch (a new version) and resolves when that version is Complete.
   * Rejects with the BadQueryError if a query is bad (the set goes to Error; the previous
   * queries keep syncing), or if a newer version supersedes this one before it completes.
   */
  async update(change: (mutable: MutableSubscriptionSet) => void): Promise<void> {
    const next = structuredClone(this.subscriptions) as Subscription[];
    change(new MutableSubscriptionSet(this.model, next));
    return this.committer.commit(next);
  }

  /** Resolves when the latest version is Complete (rejects on Error or Superseded). */
  waitForSynchronization(): Promise<void> {
    return this.committer.waitForVersion(this.version);
  }
}
