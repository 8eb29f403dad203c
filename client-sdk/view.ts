// What one collection's replication asks the gateway for. Without Flexible Sync the view is the
// whole collection. With it, the view is the union of the subscription queries on the
// collection, and a change of the set leaves work for the next pull: local documents that left
// the view to purge, and new queries to bootstrap. That work runs inside the pull handler, so
// RxDB applies it in order with every other change (see replication.ts).
import type { Filter } from '../protocol/filter.ts';

export interface PendingBootstrap {
  query: Filter;
  /** Queries whose documents the client gets anyway: the server leaves those out. */
  exclude: Filter[];
  after: string | null;
  snapshot: number | null;
  received: number;
  estimatedTotal: number | null;
}

/** What survives an app restart. */
export interface PersistedView {
  queries: Filter[] | null;
  /** Queries whose documents are on the device (bootstrapped, then kept current by the view). */
  held: Filter[];
  pending: PendingBootstrap[];
  purgeDue: boolean;
  /** Where pulls start while RxDB has no checkpoint: the first bootstrap's snapshot. */
  floor: number | null;
}

export class CollectionView {
  queries: Filter[] | null = null;
  held: Filter[] = [];
  pending: PendingBootstrap[] = [];
  purgeDue = false;
  floor: number | null = null;
  /** Bumped on every change of queries; the stream resubscribes, the pull catches up. */
  generation = 0;
  /** The generation the last complete catch-up pull ran at. */
  private caughtUp = -1;
  private waiters: Array<{ generation: number; resolve: () => void }> = [];
  private listeners = new Set<() => void>();

  constructor(readonly collection: string) {}

  get flexible(): boolean {
    return this.queries !== null;
  }

  restore(saved: PersistedView): void {
    Object.assign(this, structuredClone(saved));
  }

  snapshot(): PersistedView {
    return structuredClone({ queries: this.queries, held: this.held, pending: this.pending, purgeDue: this.purgeDue, floor: this.floor });
  }

  /** Switches to new queries; `pending` holds the bootstraps this needs. */
  change(queries: Filter[], pending: PendingBootstrap[], held: Filter[]): void {
    this.queries = queries;
    this.pending = pending;
    this.held = held;
    this.purgeDue = true;
    this.generation++;
    for (const listener of this.listeners) listener();
  }

  /** Holds nothing any more (a client reset): the next change of queries bootstraps them all. */
  forget(): void {
    this.queries = null;
    this.held = [];
    this.pending = [];
    this.floor = null;
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Called by the pull handler after a catch-up pull with nothing left to bootstrap. */
  markCaughtUp(generation: number): void {
    this.caughtUp = Math.max(this.caughtUp, generation);
    this.waiters = this.waiters.filter((w) => {
      if (w.generation > this.caughtUp) return true;
      w.resolve();
      return false;
    });
  }

  /** Resolves once a pull has caught up with the current queries (bootstraps included). */
  caughtUpWith(generation = this.generation): Promise<void> {
    if (this.caughtUp >= generation) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ generation, resolve }));
  }
}
