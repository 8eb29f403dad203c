// The engine behind client.subscriptions: turns each committed version of the subscription set
// into per-collection views (view.ts), tracks the version through Pending → Bootstrapping →
// Complete, and keeps the set, the views and their bootstrap progress in the local database so
// a reopened app resumes exactly where it was, without downloading again.
//
// With several tabs on one database (multiInstance), only the leader tab syncs, so only it
// applies versions; the state document is how the tabs agree. A follower tab's update() writes
// its next version to the document (pending) and waits; the leader sees it, applies it, and
// publishes its progress there, which the followers mirror. A follower that becomes the leader
// takes over from the document (lead()).
import type { RxDatabase } from 'rxdb';
import { BehaviorSubject, type Subscription as RxSubscription } from 'rxjs';
import type { Filter } from '../protocol/filter.ts';
import type { DataModel } from '../protocol/model.ts';
import { BadQueryError, sameFilter } from './queries.ts';
import type { CollectionReplication } from './replication.ts';
import type { Subscription, SubscriptionCommitter, SubscriptionSetSnapshot, SubscriptionSetState } from './subscriptions.ts';
import { CollectionView, type PendingBootstrap, type PersistedView } from './view.ts';

const STATE_DOCUMENT = 'tributary-subscriptions';

interface PersistedState {
  version: number;
  state: SubscriptionSetState;
  error: string | null;
  subscriptions: Subscription[];
  views: Record<string, PersistedView>;
  /** The tab that wrote it (multiInstance): a tab ignores its own writes coming back. */
  writer?: string;
}

export class SupersededError extends Error {
  override name = 'SupersededError';
}

export class FlexibleSync implements SubscriptionCommitter {
  readonly state$: BehaviorSubject<SubscriptionSetSnapshot>;
  readonly views = new Map<string, CollectionView>();
  /** True when the database had no subscription state yet (initial subscriptions apply). */
  readonly firstOpen: boolean;
  replications: () => CollectionReplication[] = () => [];
  private waiters: Array<{ version: number; resolve: () => void; reject: (error: Error) => void }> = [];
  private saving: Promise<unknown> = Promise.resolve();
  private readonly watching: RxSubscription | null = null;

  private constructor(
    private readonly database: RxDatabase,
    model: DataModel,
    saved: PersistedState | null,
    /** False in a follower tab: versions are applied by the leader tab. */
    private leading: boolean,
    /** Names this tab in what it saves (multiInstance). */
    private readonly tab: string,
  ) {
    this.firstOpen = saved === null;
    for (const c of model.collections) {
      const view = new CollectionView(c.name);
      view.queries = [];
      const persisted = saved?.views[c.name];
      if (persisted) view.restore(persisted);
      this.views.set(c.name, view);
    }
    this.state$ = new BehaviorSubject<SubscriptionSetSnapshot>({
      version: saved?.version ?? 0,
      state: saved?.state ?? 'complete',
      error: saved?.error ? new BadQueryError(saved.error) : null,
      subscriptions: saved?.subscriptions ?? [],
      progress: { received: 0, estimatedTotal: 0 },
    });
    if (database.multiInstance) {
      this.watching = database.getLocal$<PersistedState>(STATE_DOCUMENT).subscribe((doc) => {
        if (doc) this.savedElsewhere(doc.toJSON().data as PersistedState);
      });
    }
  }

  /** `leading`: this tab syncs (always, without multiInstance). */
  static async open(database: RxDatabase, model: DataModel, leading = true, tab = ''): Promise<FlexibleSync> {
    const saved = await database.getLocal<PersistedState>(STATE_DOCUMENT);
    return new FlexibleSync(database, model, saved ? (saved.toJSON().data as PersistedState) : null, leading, tab);
  }

  /** This tab became the leader: it takes over the set, the views and their progress as last saved. */
  async lead(): Promise<void> {
    if (this.leading) return;
    this.leading = true;
    const saved = (await this.database.getLocal<PersistedState>(STATE_DOCUMENT))?.toJSON().data as PersistedState | undefined;
    if (!saved) return;
    for (const [name, view] of this.views) if (saved.views[name]) view.restore(saved.views[name]);
    this.state$.next(snapshotOf(saved));
  }

  /** Another tab saved the state: the leader applies a follower's new version; a follower mirrors. */
  private savedElsewhere(saved: PersistedState): void {
    if (saved.writer === this.tab) return;
    const current = this.state$.getValue();
    if (saved.version < current.version) return;
    if (this.leading) {
      if (saved.version === current.version) return; // this tab's version, saved before the follower's write landed
      this.supersedeBefore(saved.version);
      if (saved.state === 'error') {
        this.state$.next(snapshotOf(saved)); // the previous queries keep syncing
        return;
      }
      this.publish({ ...snapshotOf(saved), state: 'pending' });
      void this.apply(saved.version, [...saved.subscriptions]);
      return;
    }
    this.state$.next(snapshotOf(saved));
    this.supersedeBefore(saved.version);
    if (saved.state === 'complete' || saved.state === 'error') this.settle(saved.version, saved.state === 'error' ? new BadQueryError(saved.error ?? 'bad query') : null);
  }

  private supersedeBefore(version: number): void {
    for (const w of this.waiters.filter((w) => w.version < version)) w.reject(new SupersededError(`version ${w.version} was superseded by version ${version}`));
    this.waiters = this.waiters.filter((w) => w.version >= version);
  }

  close(): void {
    this.watching?.unsubscribe();
  }

  /** After the replications started: finishes a version that was under way when the app closed. */
  resume(): void {
    const { version, state, subscriptions } = this.state$.getValue();
    if (state === 'pending' || state === 'bootstrapping') void this.apply(version, [...subscriptions]);
  }

  commit(subscriptions: Subscription[]): Promise<void> {
    const previous = this.state$.getValue();
    const version = previous.version + 1;
    if (this.leading && (previous.state === 'pending' || previous.state === 'bootstrapping')) this.publish({ ...previous, state: 'superseded' });
    const waiting = this.waitForVersion(version);
    this.supersedeBefore(version);

    const bad = subscriptions.find((s) => s.filter === null);
    if (bad) {
      const error = new BadQueryError(`subscription "${bad.name}": ${bad.queryError}`);
      this.publish({ version, state: 'error', error, subscriptions, progress: { received: 0, estimatedTotal: 0 } });
      this.settle(version, error);
      return waiting;
    }
    this.publish({ version, state: 'pending', error: null, subscriptions, progress: { received: 0, estimatedTotal: 0 } });
    // A follower's version is applied by the leader; `waiting` settles when it saves the outcome.
    if (this.leading) void this.apply(version, subscriptions);
    return waiting;
  }

  waitForVersion(version: number): Promise<void> {
    const current = this.state$.getValue();
    if (current.version > version) return Promise.reject(new SupersededError(`version ${version} was superseded by version ${current.version}`));
    if (current.version === version && current.state === 'complete') return Promise.resolve();
    if (current.version === version && current.state === 'error') return Promise.reject(current.error);
    return new Promise((resolve, reject) => this.waiters.push({ version, resolve, reject }));
  }

  /** A bootstrap page arrived (or a view's state moved): keep progress and the views current. */
  onViewProgress(received: number, estimated: number): void {
    const current = this.state$.getValue();
    const progress = { received: current.progress.received + received, estimatedTotal: current.progress.estimatedTotal + estimated };
    this.publish({ ...current, progress });
  }

  /**
   * After a client reset the device holds nothing: every subscription bootstraps again, and the
   * set is complete once they have (its version and subscriptions stay as they were).
   */
  async rebootstrap(): Promise<void> {
    for (const view of this.views.values()) view.forget();
    const { version, subscriptions } = this.state$.getValue();
    await this.apply(version, [...subscriptions]);
    await this.waitForVersion(version).catch(() => {});
  }

  private async apply(version: number, subscriptions: Subscription[]): Promise<void> {
    for (const [collection, view] of this.views) {
      const queries = unique(subscriptions.filter((s) => s.collection === collection).map((s) => s.filter!));
      if (view.queries !== null && sameSet(view.queries, queries)) continue; // restored mid-bootstrap, or unchanged
      const held = view.held.filter((q) => queries.some((n) => sameFilter(n, q)));
      const added = queries.filter((q) => !held.some((h) => sameFilter(h, q)));
      const pending: PendingBootstrap[] = added.map((query, i) => ({
        query,
        // Not sent again: what the device holds (the purge keeps what the new view still
        // selects, so every query held before counts, even one being replaced), and what
        // earlier bootstraps of this change bring.
        exclude: [...view.held, ...added.slice(0, i)],
        after: null,
        snapshot: null,
        received: 0,
        estimatedTotal: null,
      }));
      view.change(queries, pending, held);
    }
    this.publish({ ...this.state$.getValue(), state: 'bootstrapping' });

    await Promise.all([...this.views.values()].map((view) => view.caughtUpWith()));
    await Promise.all(this.replications().map((r) => r.state.awaitInSync()));
    if (this.state$.getValue().version !== version) return; // superseded meanwhile
    this.publish({ ...this.state$.getValue(), state: 'complete' });
    this.settle(version, null);
  }

  private settle(version: number, error: Error | null): void {
    for (const w of this.waiters.filter((w) => w.version === version)) (error ? w.reject(error) : w.resolve());
    this.waiters = this.waiters.filter((w) => w.version !== version);
  }

  /** Publishes a new snapshot and saves it (saves run one after another). */
  private publish(snapshot: SubscriptionSetSnapshot): void {
    this.state$.next(snapshot);
    const saved = {
      version: snapshot.version,
      state: snapshot.state,
      error: snapshot.error?.message ?? null,
      subscriptions: [...snapshot.subscriptions],
      writer: this.tab,
    };
    const views = () => Object.fromEntries([...this.views].map(([name, view]) => [name, view.snapshot()]));
    // A follower's views are not its own (the leader's replications move them): it keeps the saved ones.
    const savedViews = async () => ((await this.database.getLocal<PersistedState>(STATE_DOCUMENT))?.toJSON().data as PersistedState | undefined)?.views ?? views();
    this.saving = this.saving
      .then(async () => this.database.upsertLocal(STATE_DOCUMENT, { ...saved, views: this.leading ? views() : await savedViews() } satisfies PersistedState))
      .catch(() => {});
  }

  /** Resolves when everything published so far is saved. */
  flush(): Promise<unknown> {
    return this.saving;
  }
}

function snapshotOf(saved: PersistedState): SubscriptionSetSnapshot {
  return {
    version: saved.version,
    state: saved.state,
    error: saved.error ? new BadQueryError(saved.error) : null,
    subscriptions: saved.subscriptions,
    progress: { received: 0, estimatedTotal: 0 },
  };
}

function unique(filters: Filter[]): Filter[] {
  return filters.filter((f, i) => filters.findIndex((g) => sameFilter(f, g)) === i);
}

function sameSet(a: Filter[], b: Filter[]): boolean {
  return a.length === b.length && a.every((f) => b.some((g) => sameFilter(f, g)));
}
