// The follower lease (gateway/store/role-lease.ts) on the test FerretDB: one holder at a time,
// takeover when the holder releases, dies or stops renewing.
import { spawnSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { LEASES_COLLECTION, RoleLease, type LeaseDocument } from '../gateway/store/role-lease.ts';
import { cleanup, openDb, uniqueName } from './helpers/harness.ts';

afterEach(cleanup);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function leases() {
  const db = await openDb(uniqueName('lease'));
  return db.collection<LeaseDocument>(LEASES_COLLECTION);
}

describe('the follower lease', () => {
  it('has exactly one holder among instances claiming at once', async () => {
    const collection = await leases();
    for (let round = 0; round < 5; round++) {
      const role = `role-${round}`;
      const instances = Array.from({ length: 8 }, () => new RoleLease(collection, role, { ttlMs: 10_000 }));
      const holds = await Promise.all(instances.map((lease) => lease.refresh()));
      expect(holds.filter(Boolean)).toHaveLength(1);
      // Renewals keep it where it is.
      const again = await Promise.all(instances.map((lease) => lease.refresh()));
      expect(again).toEqual(holds);
      await Promise.all(instances.map((lease) => lease.release()));
    }
  });

  it('passes at once to another instance when its holder releases it', async () => {
    const collection = await leases();
    const first = new RoleLease(collection, 'outside-changes', { ttlMs: 10_000 });
    const second = new RoleLease(collection, 'outside-changes', { ttlMs: 10_000 });
    expect(await first.refresh()).toBe(true);
    expect(await second.refresh()).toBe(false);
    await first.release();
    expect(first.holds()).toBe(false);
    expect(await second.refresh()).toBe(true);
    expect(await first.refresh()).toBe(false);
    await second.release();
  });

  it('passes to another instance once a holder that stopped renewing has expired, and that holder stands down', async () => {
    const collection = await leases();
    const ttlMs = 2_000;
    const stalled = new RoleLease(collection, 'outside-changes', { ttlMs });
    const other = new RoleLease(collection, 'outside-changes', { ttlMs });
    expect(await stalled.refresh()).toBe(true);
    // The holder acts only while its last renewal is younger than half the TTL.
    await sleep(ttlMs / 2 + 50);
    expect(stalled.holds()).toBe(false);
    expect(await other.refresh()).toBe(false); // not expired yet
    await sleep(ttlMs / 2);
    await other.refresh(); // claims generation 2 over the expired one...
    expect(other.holds()).toBe(false); // ...and waits half a TTL before acting
    expect(other.actingFrom).toBeGreaterThan(Date.now());
    // The stalled holder comes back: its renewal finds the next generation and it stands down.
    expect(await stalled.refresh()).toBe(false);
    await sleep(ttlMs / 2 + 20);
    expect(await other.refresh()).toBe(true);
    expect(await stalled.refresh()).toBe(false);
    await other.release();
  });

  it('is taken over at once from a holder on this host whose process is gone', async () => {
    const collection = await leases();
    const survivor = new RoleLease(collection, 'outside-changes', { ttlMs: 60_000 });
    // A process that has exited: its pid no longer exists.
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    await collection.insertOne({
      _id: 'outside-changes:1',
      role: 'outside-changes',
      generation: 1,
      holder: { ...survivor.self, pid: dead, instance: 'killed' },
      expiresAt: new Date(Date.now() + 60_000),
      released: false,
    });
    expect(await survivor.refresh()).toBe(true);
    expect((await survivor.current())?.generation).toBe(2);

    // A live holder on this host (this process's other instance) is waited for.
    const waiting = new RoleLease(collection, 'outside-changes', { ttlMs: 60_000 });
    expect(await waiting.refresh()).toBe(false);
    // A holder of another host is never taken for dead before it expires.
    await survivor.release();
    await collection.insertOne({
      _id: 'outside-changes:3',
      role: 'outside-changes',
      generation: 3,
      holder: { ...survivor.self, host: 'elsewhere', pid: dead, instance: 'remote' },
      expiresAt: new Date(Date.now() + 60_000),
      released: false,
    });
    expect(await waiting.refresh()).toBe(false);
  });
});
