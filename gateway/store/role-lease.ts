// One holder at a time, among the gateway instances on one database, of a role that must not
// run twice (following outside changes: two followers would sequence each outside change twice,
// and each client would receive it twice).
//
// Generation g of a role is the document `{ _id: "<role>:<g>", holder, expiresAt }` in
// `_tributary_leases`. A claim of generation g + 1 is an insertOne of that `_id`: of several
// instances claiming at once exactly one insert succeeds, on MongoDB and on FerretDB alike
// (FerretDB v1 does not make a single-document update atomic, see sequencer.ts, but it does
// refuse a second insert of one `_id`). Only the holder ever updates its generation's document.
//
//  - The holder renews `expiresAt` (now + ttl) every ttl / 5, then checks that no generation
//    g + 1 exists. It acts only while its last successful renewal is younger than ttl / 2.
//  - Another instance claims g + 1 once g's `expiresAt` has passed, or at once when g was
//    released (a graceful stop) or its holder is known dead: a process of this same host and
//    pid namespace that no longer exists (a gateway killed and started again on one machine
//    does not wait out the lease). Claiming over an expired lease, it waits ttl / 2 more before
//    acting, so that a slow holder's in-flight renewal has been followed by its check for g + 1.
// So two instances never act at once while their clocks are within ttl / 2 of each other and a
// renewal takes less than ttl / 5 to answer.
import { randomBytes } from 'node:crypto';
import { readlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import type { Collection } from 'mongodb';
import { isDuplicateKey } from './write-errors.ts';

export const LEASES_COLLECTION = '_tributary_leases';

export interface LeaseHolder {
  host: string;
  /** The pid namespace (Linux), so that a pid is compared only within one; null elsewhere. */
  pidNamespace: string | null;
  pid: number;
  /** This process's lease object: several gateways can run in one process (tests). */
  instance: string;
}

export interface LeaseDocument {
  _id: string;
  role: string;
  generation: number;
  holder: LeaseHolder;
  expiresAt: Date;
  released: boolean;
}

export interface RoleLeaseOptions {
  /** How long a generation lasts without renewal. */
  ttlMs: number;
}

/** Lease objects of this process that have not been released: their holders are alive. */
const liveInstances = new Set<string>();

function pidNamespace(): string | null {
  try {
    return readlinkSync('/proc/self/ns/pid');
  } catch {
    return null;
  }
}

/** A new holder identity in this process (an instance id of its own: several gateways can run in one process). */
export function newHolder(): LeaseHolder {
  return { host: hostname(), pidNamespace: pidNamespace(), pid: process.pid, instance: randomBytes(8).toString('hex') };
}

/** Marks a holder of this process as alive (true) or gone (false), for isDead in this process. */
export function markLive(holder: LeaseHolder, live: boolean): void {
  if (live) liveInstances.add(holder.instance);
  else liveInstances.delete(holder.instance);
}

/** Whether the holder is certainly gone: only provable for a process on this host. */
export function isDead(holder: LeaseHolder, self: LeaseHolder): boolean {
  if (holder.host !== self.host || holder.pidNamespace === null || holder.pidNamespace !== self.pidNamespace) return false;
  if (holder.pid === self.pid) return !liveInstances.has(holder.instance);
  try {
    process.kill(holder.pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

export class RoleLease {
  readonly self: LeaseHolder = newHolder();
  private generation: number | null = null;
  /** When this instance may start acting on its generation. */
  private actFrom = 0;
  /** When the last renewal (or the claim) was sent. */
  private renewedAt = 0;

  constructor(
    private readonly leases: Collection<LeaseDocument>,
    readonly role: string,
    private readonly options: RoleLeaseOptions,
  ) {}

  /** How often `refresh` should run. */
  get refreshIntervalMs(): number {
    return Math.max(10, Math.floor(this.options.ttlMs / 5));
  }

  /** Whether this instance may act in the role now (a local check, no store call). */
  holds(): boolean {
    const now = Date.now();
    return this.generation !== null && now >= this.actFrom && now - this.renewedAt < this.options.ttlMs / 2;
  }

  /** When a claimed generation may start acting (0 when not claimed). */
  get actingFrom(): number {
    return this.generation === null ? 0 : this.actFrom;
  }

  /** Renews the generation held, or claims the next one where the role is free. Returns `holds()`. */
  async refresh(): Promise<boolean> {
    if (this.generation !== null) await this.renew();
    else await this.claim();
    return this.holds();
  }

  /** Gives the role up at once (a graceful stop): another instance may claim it without waiting. */
  async release(): Promise<void> {
    const generation = this.generation;
    this.generation = null;
    liveInstances.delete(this.self.instance);
    if (generation === null) return;
    await this.leases.updateOne({ _id: this.idOf(generation), 'holder.instance': this.self.instance }, { $set: { released: true, expiresAt: new Date(0) } });
  }

  /** The newest generation's holder, for status pages. */
  async current(): Promise<LeaseDocument | null> {
    return this.newest();
  }

  private idOf(generation: number): string {
    return `${this.role}:${generation}`;
  }

  private async newest(): Promise<LeaseDocument | null> {
    const [doc] = await this.leases.find({ role: this.role }).sort({ generation: -1 }).limit(1).toArray();
    return doc ?? null;
  }

  private async claim(): Promise<void> {
    const newest = await this.newest();
    const now = Date.now();
    const free = newest === null || newest.released || isDead(newest.holder, this.self);
    if (!free && newest.expiresAt.getTime() > now) return;
    const generation = (newest?.generation ?? 0) + 1;
    // Alive before the claim is visible: another instance of this process that reads it at once
    // must not take this one for dead (isDead) and claim the generation after it.
    liveInstances.add(this.self.instance);
    try {
      await this.leases.insertOne({ _id: this.idOf(generation), role: this.role, generation, holder: this.self, expiresAt: new Date(now + this.options.ttlMs), released: false });
    } catch (error) {
      liveInstances.delete(this.self.instance);
      if (isDuplicateKey(error)) return; // another instance claimed it first
      throw error;
    }
    this.generation = generation;
    this.renewedAt = now;
    this.actFrom = free ? now : now + this.options.ttlMs / 2;
    // Generations before the previous one are history nobody reads.
    await this.leases.deleteMany({ role: this.role, generation: { $lt: generation - 1 } }).catch(() => {});
  }

  private async renew(): Promise<void> {
    const generation = this.generation!;
    const sentAt = Date.now();
    const renewed = await this.leases.updateOne(
      { _id: this.idOf(generation), 'holder.instance': this.self.instance, released: false },
      { $set: { expiresAt: new Date(sentAt + this.options.ttlMs) } },
    );
    const successor = renewed.matchedCount === 1 ? await this.leases.findOne({ _id: this.idOf(generation + 1) }, { projection: { _id: 1 } }) : null;
    if (renewed.matchedCount !== 1 || successor !== null) {
      this.generation = null;
      liveInstances.delete(this.self.instance);
      return;
    }
    this.renewedAt = sentAt;
  }
}
