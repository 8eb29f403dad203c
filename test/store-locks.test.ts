// Locks shared by gateway instances (gateway/store/store-locks.ts) on the test FerretDB, whose
// single-document updates are not atomic: one holder per key, all of a task's keys or none,
// takeover of a lock whose holder stopped renewing or died; and the registry of instances
// (gateway/store/instances.ts) that takes them only while a peer is live.
import { spawnSync } from 'node:child_process';
import { hostname } from 'node:os';
import { readlinkSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { LOCKS_COLLECTION, LockTimeoutError, StoreLocks, type LockDocument } from '../gateway/store/store-locks.ts';
import { DEFAULT_INSTANCES, Instances, INSTANCES_COLLECTION, type InstanceDocument, type InstancesOptions } from '../gateway/store/instances.ts';
import type { Collection } from 'mongodb';
import { cleanup, openDb, uniqueName, waitFor } from './helpers/harness.ts';

afterEach(cleanup);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function lockCollection() {
  const db = await openDb(uniqueName('locks'));
  return { db, locks: db.collection<LockDocument>(LOCKS_COLLECTION) };
}

/** A holder on another host: never known dead, only stale. */
const elsewhere = (instance: string) => ({ host: 'elsewhere', pidNamespace: null, pid: 1, instance });

/** An instance on the registry of a fresh database, started; `leave()` stops it and its locks. */
async function startInstance(options: InstancesOptions, before?: (registry: Collection<InstanceDocument>) => Promise<unknown>) {
  const { db, locks } = await lockCollection();
  const registry = db.collection<InstanceDocument>(INSTANCES_COLLECTION);
  await before?.(registry);
  const storeLocks = new StoreLocks(locks);
  const instances = new Instances(registry, storeLocks, options);
  await instances.start();
  const leave = async () => {
    await instances.stop();
    storeLocks.close();
  };
  return { locks, registry, storeLocks, instances, leave };
}

describe('store locks', () => {
  it('lets one instance at a time hold a key: read-modify-writes under it add up', async () => {
    const { db, locks } = await lockCollection();
    const instances = [new StoreLocks(locks), new StoreLocks(locks), new StoreLocks(locks)];
    const counter = db.collection<{ _id: string; n: number }>('counter');
    await counter.insertOne({ _id: 'c', n: 0 });
    let inside = 0;
    let most = 0;
    await Promise.all(
      instances.flatMap((instance) =>
        Array.from({ length: 8 }, () =>
          instance.run(['k'], async () => {
            most = Math.max(most, ++inside);
            const { n } = (await counter.findOne({ _id: 'c' }))!;
            await sleep(2);
            await counter.updateOne({ _id: 'c' }, { $set: { n: n + 1 } });
            inside--;
          }),
        ),
      ),
    );
    expect(most).toBe(1);
    expect((await counter.findOne({ _id: 'c' }))!.n).toBe(24);
    expect(await locks.countDocuments()).toBe(0);
    for (const instance of instances) instance.close();
  });

  it('takes all of a task\'s keys or none, so tasks taking the same keys in opposite orders both finish', async () => {
    const { locks } = await lockCollection();
    const a = new StoreLocks(locks, { ttlMs: 15_000, waitMs: 20_000 });
    const b = new StoreLocks(locks, { ttlMs: 15_000, waitMs: 20_000 });
    const done: string[] = [];
    await Promise.all([
      ...Array.from({ length: 6 }, (_, i) => a.run(['x', 'y', 'z'], async () => void done.push(`a${i}`))),
      ...Array.from({ length: 6 }, (_, i) => b.run(['z', 'y', 'x'], async () => void done.push(`b${i}`))),
    ]);
    expect(done).toHaveLength(12);
    a.close();
    b.close();
  });

  it('waits for a live holder, and fails with LockTimeoutError after waitMs, naming the holder', async () => {
    const { locks } = await lockCollection();
    const holder = new StoreLocks(locks, { ttlMs: 2_000, waitMs: 10_000 });
    const waiter = new StoreLocks(locks, { ttlMs: 2_000, waitMs: 300 });
    let release!: () => void;
    const holding = holder.run(['doc'], () => new Promise<void>((r) => (release = r)));
    await sleep(50);
    const refused = waiter.run(['doc'], async () => 'never');
    await expect(refused).rejects.toBeInstanceOf(LockTimeoutError);
    // Who holds it, so an operator can tell a slow instance from a stuck one.
    await expect(refused).rejects.toThrow(`held by ${holder.self.host} pid ${process.pid} (instance ${holder.self.instance})`);
    release();
    await holding;
    expect(await waiter.run(['doc'], async () => 'now')).toBe('now');
    holder.close();
    waiter.close();
  });

  it('never deletes a lock while a renewal of it is in flight (FerretDB would write it back over the next holder)', async () => {
    const { locks } = await lockCollection();
    // On FerretDB v1 an update is a read and a later write by _id: a renewal in flight across a
    // release wrote the released lock back over the one the next holder inserted (66 of 300
    // tries). Here each renewal stays in flight for 30 ms, so tasks often end during one.
    let renewing = 0;
    const deletesDuringRenewal: unknown[] = [];
    const slowRenewals = new Proxy(locks, {
      get(target, key, receiver) {
        if (key === 'updateMany') {
          return async (...args: Parameters<typeof locks.updateMany>) => {
            renewing++;
            try {
              await sleep(30);
              return await target.updateMany(...args);
            } finally {
              renewing--;
            }
          };
        }
        if (key === 'deleteMany') {
          return (...args: Parameters<typeof locks.deleteMany>) => {
            if (renewing > 0) deletesDuringRenewal.push(args[0]);
            return target.deleteMany(...args);
          };
        }
        return Reflect.get(target, key, receiver);
      },
    });
    const instance = new StoreLocks(slowRenewals, { ttlMs: 40, waitMs: 30_000 });
    for (let i = 0; i < 40; i++) await instance.run(['k'], () => sleep(5 + (i % 4) * 10));
    expect(deletesDuringRenewal).toEqual([]);
    expect(await locks.countDocuments()).toBe(0);
    instance.close();
  });

  it('never renews a lock held briefly, so its release does not wait for a slow renewal of long-held ones', async () => {
    const { locks } = await lockCollection();
    // Like the sequence counter's lock, taken and let go many times while a big push holds its
    // documents' locks on a slow store: every renewal stays in flight for 1 s.
    const renewed: string[][] = [];
    const slowRenewals = new Proxy(locks, {
      get(target, key, receiver) {
        if (key !== 'updateMany') return Reflect.get(target, key, receiver);
        return async (...args: Parameters<typeof locks.updateMany>) => {
          renewed.push((args[0] as { _id: { $in: string[] } })._id.$in);
          await sleep(1_000);
          return target.updateMany(...args);
        };
      },
    });
    // Ticks every 500 ms; a lock held 250 ms is renewed at the next one (a brief one, never).
    const instance = new StoreLocks(slowRenewals, { ttlMs: 2_000, waitMs: 10_000 });
    const long = instance.run(['push'], () => sleep(3_000));
    await sleep(700); // 'push' is being renewed (from the tick at 500 ms, for 1 s)
    const briefly: number[] = [];
    for (let i = 0; i < 10; i++) {
      const began = Date.now();
      await instance.run(['counter'], () => sleep(5));
      briefly.push(Date.now() - began);
    }
    await long;
    expect(renewed.length).toBeGreaterThan(0);
    expect(renewed.flat()).not.toContain('counter');
    // Each release of 'counter' went straight through: waiting for the renewal in flight, the
    // first would have waited until it ended, 800 ms after it began.
    expect(Math.max(...briefly)).toBeLessThan(500);
    instance.close();
  });

  it('gives a slow waiter its turn: instances that hand a key back and forth do not starve it', async () => {
    const { locks } = await lockCollection();
    // Like the sequence counter under load: two instances each hold the key, let go, take it again.
    const busy = [new StoreLocks(locks, { ttlMs: 5_000, waitMs: 30_000 }), new StoreLocks(locks, { ttlMs: 5_000, waitMs: 30_000 })];
    // The waiter's every command takes 60 ms more: by the time it tries again, another has the key.
    const slow = new Proxy(locks, {
      get(target, key, receiver) {
        const value = Reflect.get(target, key, receiver);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          const call = () => (value as (...a: unknown[]) => unknown).apply(target, args);
          return key === 'find' ? { toArray: () => sleep(60).then(() => (call() as { toArray(): Promise<unknown> }).toArray()) } : sleep(60).then(call);
        };
      },
    });
    const waiter = new StoreLocks(slow, { ttlMs: 5_000, waitMs: 5_000 });
    let going = true;
    const hot = Promise.all(
      busy.map(async (instance) => {
        while (going) await instance.run(['hot'], () => sleep(400));
      }),
    );
    await sleep(200);
    // Three turns in a row (without claims it got one in about half the tries).
    const waits: unknown[] = [];
    for (let turn = 0; turn < 3; turn++) {
      const started = Date.now();
      const ran = await waiter.run(['hot'], async () => 'ran').catch((error: unknown) => error);
      waits.push(ran === 'ran' ? Date.now() - started < 4_000 : ran);
    }
    going = false;
    await hot;
    expect(waits).toEqual([true, true, true]);
    expect(await locks.countDocuments()).toBe(0); // no claim left behind
    for (const instance of busy) instance.close();
    waiter.close();
  });

  it('keeps a lock held past its TTL by renewing it', async () => {
    const { locks } = await lockCollection();
    const holder = new StoreLocks(locks, { ttlMs: 1_000, waitMs: 10_000 });
    const waiter = new StoreLocks(locks, { ttlMs: 1_000, waitMs: 10_000 });
    const order: string[] = [];
    const holding = holder.run(['doc'], async () => {
      await sleep(3_000); // three TTLs
      order.push('holder done');
    });
    await sleep(50);
    await waiter.run(['doc'], async () => void order.push('waiter'));
    await holding;
    expect(order).toEqual(['holder done', 'waiter']);
    holder.close();
    waiter.close();
  });

  it('takes over a lock whose holder stopped renewing it, or whose process is gone', async () => {
    const { locks } = await lockCollection();
    const self = { host: hostname(), pidNamespace: readlinkSync('/proc/self/ns/pid'), instance: 'gone' };
    // A holder on another host that stopped renewing two TTLs ago...
    await locks.insertOne({ _id: 'stale', holder: { ...self, host: 'elsewhere', pid: 1 }, at: new Date(Date.now() - 2_000) });
    // ...and one on this host whose process exited (a pid that no longer exists).
    const exited = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
    await locks.insertOne({ _id: 'dead', holder: { ...self, pid: Number(exited) }, at: new Date() });
    const taker = new StoreLocks(locks, { ttlMs: 1_000, waitMs: 5_000 });
    const started = Date.now();
    expect(await taker.run(['stale', 'dead'], async () => (await locks.find({}).toArray()).map((l) => l.holder.instance))).toEqual([taker.self.instance, taker.self.instance]);
    expect(Date.now() - started).toBeLessThan(1_000);
    // No takeover marker is left behind.
    expect(await locks.countDocuments()).toBe(0);
    taker.close();
  });
  it('takes over the hundreds of locks a stopped instance left in a few commands, on a slow store too', async () => {
    const { locks } = await lockCollection();
    const keys = Array.from({ length: 300 }, (_, i) => `tasks/t${i}`);
    const gone = elsewhere('stopped');
    await locks.insertMany(keys.map((key) => ({ _id: key, holder: gone, at: new Date(Date.now() - 5_000) })));
    // Every command takes 50 ms more: one by one, 300 takeovers took 45 s.
    let commands = 0;
    const slow = new Proxy(locks, {
      get(target, key, receiver) {
        const value = Reflect.get(target, key, receiver);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          commands++;
          const call = () => (value as (...a: unknown[]) => unknown).apply(target, args);
          return key === 'find' ? { toArray: () => sleep(50).then(() => (call() as { toArray(): Promise<unknown> }).toArray()) } : sleep(50).then(call);
        };
      },
    });
    const taker = new StoreLocks(slow, { ttlMs: 1_000, waitMs: 3_000 });
    expect(await taker.run(keys, async () => 'taken')).toBe('taken');
    expect(commands).toBeLessThan(12);
    expect(await locks.countDocuments()).toBe(0);
    taker.close();
  });

  it('clears a takeover marker left by a waiter that stopped halfway, once older than the TTL', async () => {
    const { locks } = await lockCollection();
    const holder = elsewhere('gone');
    const at = new Date(Date.now() - 5_000);
    await locks.insertOne({ _id: 'stale', holder, at });
    // The waiter that began taking it over stopped between its marker and its delete.
    await locks.insertOne({ _id: `takeover:stale:${at.getTime()}:gone`, holder: { ...holder, instance: 'stopped-waiter' }, at });
    const taker = new StoreLocks(locks, { ttlMs: 1_000, waitMs: 5_000 });
    expect(await taker.run(['stale'], async () => 'taken')).toBe('taken');
    expect(await locks.countDocuments()).toBe(0);
    taker.close();
  });
});

describe('instances on one database', () => {
  it('runs alone without store locks, and once a peer appears waits for it to say shared, within a bound', async () => {
    const { locks, registry, storeLocks, instances, leave } = await startInstance({ heartbeatMs: 100, peerTimeoutMs: 2_000, waitMs: 600 });
    // Alone: the task runs at once, and takes no lock document.
    expect(await instances.run(['k'], async () => locks.countDocuments())).toBe(0);

    // A peer that has begun writes alone (it does not say shared yet) and keeps renewing.
    const peer = { _id: 'peer', holder: elsewhere('peer'), at: new Date(), shared: false };
    await registry.insertOne(peer);
    const renewing = setInterval(() => void registry.updateOne({ _id: 'peer' }, { $set: { at: new Date() } }), 100);
    await waitFor('this instance runs shared', async () => (await registry.findOne({ _id: storeLocks.self.instance }))?.shared === true);
    await expect(instances.run(['k'], async () => 'ran')).rejects.toBeInstanceOf(LockTimeoutError);

    // Once the peer says shared, writes go on, under a store lock.
    await registry.updateOne({ _id: 'peer' }, { $set: { shared: true } });
    // (Seen at a heartbeat; a loaded store can make one late, so a write may still time out first.)
    await waitFor('a write runs, under a store lock', () => instances.run(['k'], async () => locks.countDocuments({ _id: 'k' })).then((n) => n === 1, () => false));

    // When the peer is gone, alone again.
    clearInterval(renewing);
    await registry.deleteOne({ _id: 'peer' });
    await waitFor('this instance runs alone', async () => (await registry.findOne({ _id: storeLocks.self.instance }))?.shared === false);
    await leave();
    expect(await registry.countDocuments()).toBe(0);
  });
});

describe('a peer starting', () => {
  it('holds writes up only until it says shared, not until the next heartbeat', async () => {
    // Registered, and not sharing yet (its first heartbeat has not run): as at a rolling restart.
    const { registry, instances, leave } = await startInstance({ ...DEFAULT_INSTANCES, heartbeatMs: 3_000 }, (registry) =>
      registry.insertOne({ _id: 'starting', holder: elsewhere('starting'), at: new Date(), shared: false }),
    );
    const began = Date.now();
    const write = instances.run(['k'], async () => Date.now());
    await sleep(100);
    await registry.updateOne({ _id: 'starting' }, { $set: { shared: true, at: new Date() } });
    const ran = await write;
    // Within a tenth of a heartbeat or so; before, at the next heartbeat, 3 s after the start.
    expect(ran - began).toBeLessThan(1_000);
    await leave();
  });
});

describe('a peer late with its heartbeat', () => {
  it('is still a peer 10 s late (writes keep taking the store locks), and is given up after the timeout', async () => {
    // On another host (so not known dead), its last heartbeat 10 s ago: a loaded store.
    const { locks, registry, storeLocks, instances, leave } = await startInstance({ ...DEFAULT_INSTANCES, heartbeatMs: 100 }, (registry) =>
      registry.insertOne({ _id: 'late', holder: elsewhere('late'), at: new Date(Date.now() - 10_000), shared: true }),
    );
    expect(await instances.run(['k'], async () => locks.countDocuments({ _id: 'k' }))).toBe(1);
    // Silent past the timeout: given up, and this instance runs alone again.
    await registry.updateOne({ _id: 'late' }, { $set: { at: new Date(Date.now() - DEFAULT_INSTANCES.peerTimeoutMs - 1_000) } });
    await waitFor('this instance runs alone', async () => (await registry.findOne({ _id: storeLocks.self.instance }))?.shared === false);
    expect(await instances.run(['k'], async () => locks.countDocuments({ _id: 'k' }))).toBe(0);
    await leave();
  });
});

describe('instances on a slow store', () => {
  it('run one heartbeat at a time, not a queue of them, and stop without working one off', async () => {
    const { db, locks } = await lockCollection();
    const registry = db.collection<InstanceDocument>(INSTANCES_COLLECTION);
    // Each look at the peers takes 250 ms: far longer than the 20 ms heartbeat interval.
    let finds = 0;
    let running = 0;
    let most = 0;
    const slow = new Proxy(registry, {
      get(target, key, receiver) {
        if (key !== 'find') return Reflect.get(target, key, receiver);
        return (...args: Parameters<typeof registry.find>) => {
          finds++;
          most = Math.max(most, ++running);
          const cursor = target.find(...args);
          return { toArray: () => sleep(250).then(() => cursor.toArray()).finally(() => running--) };
        };
      },
    });
    const storeLocks = new StoreLocks(locks);
    const instances = new Instances(slow, storeLocks, { heartbeatMs: 20, peerTimeoutMs: 2_000, waitMs: 600 });
    await instances.start();
    await sleep(1_500);
    const stopping = Date.now();
    await instances.stop();
    // Queued, 75 heartbeats would have piled up, and stop() would wait ~18 s for them.
    expect(Date.now() - stopping).toBeLessThan(1_000);
    expect(most).toBe(1);
    expect(finds).toBeLessThanOrEqual(1 + Math.ceil(1_500 / 250) + 1);
    storeLocks.close();
  });
});
