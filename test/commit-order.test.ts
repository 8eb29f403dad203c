// Issue 2, case 5: checkpoints follow commit order. A write whose sequence was taken earlier
// but which commits later must still reach a reader that already read past later sequences.
import { afterEach, describe, expect, it } from 'vitest';
import { syncOperations } from '../protocol/operations.ts';
import { cleanup, graphqlHttp, testToken, newTask, startTestGateway } from './helpers/harness.ts';
import type { PlainDocument } from '../gateway/store/collection-store.ts';
import { MAX_LEASE_LIFE_TTLS } from '../gateway/store/sequencer.ts';

afterEach(cleanup);

describe('commit order', () => {
  it('does not let a reader pass a sequence whose write has not committed yet', async () => {
    const gateway = await startTestGateway();
    const tasks = gateway.collections.get('tasks')!;
    const ops = syncOperations(tasks.model);
    const pull = async (checkpoint: { seq: number } | null) =>
      (await graphqlHttp(gateway.httpUrl, ops.pull, { checkpoint, limit: 100 })).data!.pullTasks as { documents: Array<{ id: string }>; checkpoint: { seq: number } };

    // A slow writer takes its sequence first...
    const slow = newTask({ title: 'slow writer' });
    const slowLease = await tasks.store.sequencer.allocate(1);

    // ...a fast writer takes the next one and commits through the normal write path...
    const fast = { ...newTask({ title: 'fast writer' }), _deleted: false };
    // Another user: one user's pushes run one at a time, and this one must not wait.
    await graphqlHttp(gateway.httpUrl, ops.push, { rows: [{ assumedMasterState: null, newDocumentState: fast }] }, await testToken('user-2'));
    expect((await tasks.store.current(fast.id))!._sync.seq).toBeGreaterThan(slowLease.lo);

    // ...and a reader pulls now: it must not move its checkpoint past the slow writer's sequence.
    const early = await pull(null);
    expect(early.checkpoint.seq).toBeLessThan(slowLease.lo);
    expect(early.documents).toEqual([]);

    // The slow write commits (as the write path does, under the document's lock: document,
    // metadata, then lease release).
    const stored = tasks.store.toStored({ ...slow, _deleted: false }) as PlainDocument;
    await tasks.writer.locked([stored._id], async () => {
      await tasks.store.documents.insertOne(stored);
      const meta = { _id: stored._id, seq: slowLease.lo, updatedAt: new Date(), deleted: false, state: tasks.store.queryableSnapshot(stored), hashes: tasks.store.fieldHashes(stored) };
      await tasks.store.meta.insertOne(meta);
    });
    expect(await slowLease.release()).toBe(true);

    // Resuming from its checkpoint, the reader gets both writes.
    const late = await pull(early.checkpoint);
    expect(late.documents.map((d) => d.id).sort()).toEqual([slow.id, fast.id].sort());
  });

  /** Stalls the next bulk write of the tasks' documents for `ms`. */
  function stallNextWrite(tasks: { store: { documents: { bulkWrite: unknown } } }, ms: number): void {
    const documents = tasks.store.documents as { bulkWrite: (...args: unknown[]) => Promise<unknown> };
    const bulkWrite = documents.bulkWrite.bind(documents);
    let stalled = true;
    documents.bulkWrite = async (...args: unknown[]) => {
      if (stalled) {
        stalled = false;
        await new Promise((r) => setTimeout(r, ms));
      }
      return bulkWrite(...args);
    };
  }

  it('holds readers back for a live write slower than the lease TTL, without re-sequencing it', async () => {
    // (A TTL long enough that a renewal is never late by a quarter of it on a busy machine.)
    const gateway = await startTestGateway({ leaseTtlMs: 1_500 });
    const tasks = gateway.collections.get('tasks')!;
    const ops = syncOperations(tasks.model);
    const slow = { ...newTask({ title: 'slow writer' }), _deleted: false };

    // The store takes four TTLs to answer: the writer's renewals keep its lease.
    stallNextWrite(tasks, 6_000);
    const pushing = graphqlHttp(gateway.httpUrl, ops.push, { rows: [{ assumedMasterState: null, newDocumentState: slow }] });
    await new Promise((r) => setTimeout(r, 3_500));
    const fast = { ...newTask({ title: 'fast writer' }), _deleted: false };
    await graphqlHttp(gateway.httpUrl, ops.push, { rows: [{ assumedMasterState: null, newDocumentState: fast }] }, await testToken('user-2'));
    const early = (await graphqlHttp(gateway.httpUrl, ops.pull, { checkpoint: null, limit: 100 })).data!.pullTasks;
    expect(early.documents).toEqual([]);

    expect((await pushing).errors).toBeUndefined();
    const late = (await graphqlHttp(gateway.httpUrl, ops.pull, { checkpoint: early.checkpoint, limit: 100 })).data!.pullTasks;
    expect(late.documents.map((d: { id: string }) => d.id)).toEqual([slow.id, fast.id]);
    // Its first sequence stands: written once, below the write that committed after it.
    expect((await tasks.store.current(slow.id))!._sync.seq).toBeLessThan((await tasks.store.current(fast.id))!._sync.seq);
  });

  it('re-sequences a write that committed after its lease expired, so readers still get it', async () => {
    const gateway = await startTestGateway({ leaseTtlMs: 150 });
    const tasks = gateway.collections.get('tasks')!;
    const ops = syncOperations(tasks.model);
    const slow = { ...newTask({ title: 'stalled writer' }), _deleted: false };

    // Stall the store write of the next push past the lease's longest life (renewals stop), until
    // a reader passed it.
    const life = MAX_LEASE_LIFE_TTLS * 150;
    stallNextWrite(tasks, life + 900);
    const pushing = graphqlHttp(gateway.httpUrl, ops.push, { rows: [{ assumedMasterState: null, newDocumentState: slow }] });
    await new Promise((r) => setTimeout(r, life + 500)); // lease expired, write not committed
    const fast = { ...newTask({ title: 'fast writer' }), _deleted: false };
    // Another user: one user's pushes run one at a time, and this one must not wait.
    await graphqlHttp(gateway.httpUrl, ops.push, { rows: [{ assumedMasterState: null, newDocumentState: fast }] }, await testToken('user-2'));
    const early = (await graphqlHttp(gateway.httpUrl, ops.pull, { checkpoint: null, limit: 100 })).data!.pullTasks;
    expect(early.documents.map((d: { id: string }) => d.id)).toEqual([fast.id]);

    await pushing;
    const late = (await graphqlHttp(gateway.httpUrl, ops.pull, { checkpoint: early.checkpoint, limit: 100 })).data!.pullTasks;
    expect(late.documents.map((d: { id: string }) => d.id)).toEqual([slow.id]);
  });
});
