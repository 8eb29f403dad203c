// Serializes work on the same keys within this process. A task takes all its keys at once (in
// call order), so two tasks sharing keys run one after the other and no cycle can form.
import type { SharedLocks } from '../store/instances.ts';
export class KeyedLock {
  private tails = new Map<string, Promise<void>>();

  async run<T>(keys: Iterable<string>, task: () => Promise<T>): Promise<T> {
    const unique = [...new Set(keys)];
    let release!: () => void;
    const done = new Promise<void>((r) => (release = r));
    const previous = unique.map((key) => {
      const tail = this.tails.get(key);
      this.tails.set(key, done);
      return tail;
    });
    await Promise.all(previous);
    try {
      return await task();
    } finally {
      release();
      for (const key of unique) if (this.tails.get(key) === done) this.tails.delete(key);
    }
  }
}

/**
 * The locks of a collection's documents: this process's KeyedLock first (its own tasks queue
 * here, not in the store), then the same keys among every instance on the database
 * (store-locks.ts), prefixed with the collection's name.
 */
export class DocumentLocks {
  private readonly local = new KeyedLock();

  constructor(
    private readonly shared: SharedLocks | null,
    private readonly collection: string,
  ) {}

  run<T>(keys: Iterable<string>, task: () => Promise<T>): Promise<T> {
    const unique = [...new Set(keys)];
    const shared = this.shared;
    if (!shared) return this.local.run(unique, task);
    return this.local.run(unique, () =>
      shared.run(
        unique.map((key) => `${this.collection}/${key}`),
        task,
      ),
    );
  }
}
