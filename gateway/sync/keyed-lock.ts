// Serializes work on the same keys within this process. A task takes all its keys at once (in
// call order), so two tasks sharing keys run one after the other and no cycle can form.
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
