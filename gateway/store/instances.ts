// Which gateway instances share the database, so that the locks they need together
// (store-locks.ts) are only paid for when there is more than one (ARCHITECTURE.md, "Several
// instances"): alone, an instance serializes its writes in process, as it always has.
//
// Each instance keeps the document `{ _id: <instance>, holder, at, shared }` in
// `_tributary_instances`, renewed every `heartbeatMs`; a peer is live while its `at` is younger
// than `peerTimeoutMs` and its process is not known dead. Only its own instance ever writes a
// document, so no update here needs to be atomic.
//
//  - Alone, writes take this process's locks only. Once a peer appears (its document is read at
//    the next heartbeat), new writes take the store's locks; when the writes begun without them
//    have finished, the instance says so (`shared: true`).
//  - Shared, a write first waits until every live peer says `shared`: so no write of one
//    instance, taken under store locks, runs beside a write another instance began alone.
//  - An instance registers before it looks for peers: of two starting at once, each sees the other.
//  - When the last peer is gone (stopped: its document deleted; or timed out), writes go back to
//    this process's locks alone.
// This holds while no instance stalls for longer than `peerTimeoutMs` (its writes in flight would
// then outlive the peers' view of it), the same assumption as the store locks' TTL.
import type { Collection } from 'mongodb';
import { isDead, type LeaseHolder } from './role-lease.ts';
import { LockTimeoutError, type StoreLocks } from './store-locks.ts';

export const INSTANCES_COLLECTION = '_tributary_instances';

export interface InstanceDocument {
  _id: string;
  holder: LeaseHolder;
  at: Date;
  /** Its writes take the store's locks, and none begun without them is still running. */
  shared: boolean;
}

export interface InstancesOptions {
  heartbeatMs: number;
  peerTimeoutMs: number;
  /** How long a write waits for the live peers to say `shared` before it fails (LockTimeoutError). */
  waitMs: number;
}

// A peer is seen at once, but given up only after 30 s without a heartbeat (or at once when it
// left, or its process on this host is gone): taking the locks with no peer left costs time, but
// going back to running alone while a peer still writes costs correctness, and a heartbeat on a
// loaded store can take seconds.
export const DEFAULT_INSTANCES: InstancesOptions = { heartbeatMs: 1_000, peerTimeoutMs: 30_000, waitMs: 60_000 };
/** A peer's document is deleted once it is this many timeouts old. */
const FORGET_AFTER_TIMEOUTS = 100;

/** Runs tasks holding keys: the shape CollectionStore and the sequencer take their locks in. */
export interface SharedLocks {
  run<T>(keys: readonly string[], task: () => Promise<T>): Promise<T>;
}

export class Instances implements SharedLocks {
  private shared = false;
  /** Tasks running without the store's locks (begun while alone). */
  private unlocked = 0;
  /** Whether every live peer runs shared (known at the last heartbeat). */
  private peersShared = true;
  private peersReady: Array<() => void> = [];
  private timer: NodeJS.Timeout | null = null;
  /** Heartbeats ten times as often, while writes wait for the peers to share (lookSooner). */
  private soonerTimer: NodeJS.Timeout | null = null;
  private beating: Promise<void> = Promise.resolve();
  /** A heartbeat is running; `beatAgain` asks for one more after it (never a queue of them). */
  private beatRunning = false;
  private beatAgain = false;
  private readonly peerListeners: Array<(present: boolean) => void> = [];

  constructor(
    private readonly instances: Collection<InstanceDocument>,
    private readonly locks: StoreLocks,
    private readonly options: InstancesOptions = DEFAULT_INSTANCES,
    private readonly onError: (error: unknown) => void = () => {},
  ) {}

  async start(): Promise<void> {
    const self = this.locks.self;
    await this.instances.insertOne({ _id: self.instance, holder: self, at: new Date(), shared: false });
    await this.heartbeat();
    this.timer = setInterval(() => this.beat(), this.options.heartbeatMs);
    this.timer.unref();
  }

  /** Calls `listener(true)` when a first live peer is seen, `listener(false)` when the last has gone. */
  onPeers(listener: (present: boolean) => void): void {
    this.peerListeners.push(listener);
    if (this.shared) listener(true);
  }

  /** Leaves: the peers go back to running alone at their next heartbeat. Call once writes have finished. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.lookSooner(false);
    await this.beating;
    await this.instances.deleteOne({ _id: this.locks.self.instance }).catch(this.onError);
  }

  async run<T>(keys: readonly string[], task: () => Promise<T>): Promise<T> {
    if (!this.shared) {
      this.unlocked++;
      try {
        return await task();
      } finally {
        // The last write begun alone is done: say so now rather than at the next heartbeat.
        if (--this.unlocked === 0 && this.shared) this.beat();
      }
    }
    if (!this.peersShared) await this.peersSharing();
    return this.locks.run(keys, task);
  }

  /**
   * Resolves once every live peer says `shared` (or none is left); bounded, since a peer whose
   * write begun alone hangs never will, and no write may run beside that one.
   */
  private peersSharing(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.peersReady = this.peersReady.filter((r) => r !== ready);
        if (this.peersReady.length === 0) this.lookSooner(false);
        reject(new LockTimeoutError(`another instance still had writes begun alone after ${this.options.waitMs} ms`));
      }, this.options.waitMs);
      const ready = () => {
        clearTimeout(timer);
        resolve();
      };
      this.peersReady.push(ready);
      this.lookSooner(true);
    });
  }

  /**
   * While writes wait for the peers to share, looks at them ten times a heartbeat: a peer says
   * so within milliseconds of its start, and waiting for the next heartbeat stalled every
   * instance's writes for up to a second at each start of a rolling restart.
   */
  private lookSooner(on: boolean): void {
    if (on && !this.soonerTimer && this.timer) {
      this.soonerTimer = setInterval(() => this.beat(), Math.max(10, this.options.heartbeatMs / 10));
      this.soonerTimer.unref();
    } else if (!on && this.soonerTimer) {
      clearInterval(this.soonerTimer);
      this.soonerTimer = null;
    }
  }

  /**
   * Runs a heartbeat, or one more after the running one. A slow store (heartbeats longer than
   * their interval) would otherwise build a queue of them, and each would look at older news.
   */
  private beat(): void {
    if (this.beatRunning) {
      this.beatAgain = true;
      return;
    }
    this.beatRunning = true;
    this.beating = (async () => {
      do {
        this.beatAgain = false;
        await this.heartbeat().catch(this.onError);
      } while (this.beatAgain && this.timer);
      this.beatRunning = false;
    })();
  }

  /** Renews this instance's document and looks at the others'. Never waits for writes. */
  private async heartbeat(): Promise<void> {
    const self = this.locks.self;
    const now = Date.now();
    const others = await this.instances.find({ _id: { $ne: self.instance } }).toArray();
    const peers = others.filter((peer) => now - peer.at.getTime() < this.options.peerTimeoutMs && !isDead(peer.holder, self));
    // Instances that died without leaving are forgotten once long gone.
    const forgotten = new Date(now - FORGET_AFTER_TIMEOUTS * this.options.peerTimeoutMs);
    if (others.some((peer) => peer.at < forgotten)) await this.instances.deleteMany({ at: { $lt: forgotten } });
    // From a peer's first sight on, new writes take the store's locks; this instance says it is
    // shared once those it began alone have finished.
    const hadPeers = this.shared;
    this.shared = peers.length > 0;
    // Known with the peers, not after the update below: a write begun meanwhile must not take a
    // peer that still runs alone for one that shares.
    this.peersShared = peers.every((peer) => peer.shared);
    if (hadPeers !== this.shared) for (const listener of this.peerListeners) listener(this.shared);
    // (An upsert: a peer may have forgotten this instance after a long stall.)
    await this.instances.updateOne({ _id: self.instance }, { $set: { holder: self, at: new Date(), shared: this.shared && this.unlocked === 0 } }, { upsert: true });
    if (this.peersShared || !this.shared) {
      this.peersReady.splice(0).forEach((resolve) => resolve());
      this.lookSooner(false);
    }
  }
}
