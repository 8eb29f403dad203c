// Reads are bounded in bytes, not only in documents (TRIBUTARY_MAX_PAGE_BYTES): a user can store
// documents near the payload limit, and a page of a thousand of them would be gigabytes in the
// gateway. Pulls and bootstraps end a page early and page on; a plain list over the budget is
// refused; the live change feed reads in batches within the budget; and a few concurrent list
// requests over big documents no longer grow the gateway's memory by their whole answer.
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../../gateway/config.ts';
import type { ChangeBatch } from '../../gateway/store/change-feed.ts';
import { sizeOf } from '../../gateway/store/cursor-cache.ts';
import { cleanup, graphqlHttp, newTask, startTestGateway, testToken, waitFor } from '../helpers/harness.ts';
import { attacker, seed, tasksOps } from './attack.ts';

afterEach(cleanup);

const MiB = 1024 * 1024;
/** The plain list's budget in these tests. */
const LIST_BUDGET = 1 * MiB;
const DOC_BYTES = 300 * 1024;
/** Pulls, bootstraps and the feed run under the budget given to them, at most the default. */
const PAGE_BOUND = DEFAULTS.maxPageBytes + DOC_BYTES + 64 * 1024;
/** More than one page at the default budget. */
const DOCS = 20;

const bigTask = (i: number, ownerId = 'big') => ({ ...newTask({ id: `big-${String(i).padStart(3, '0')}`, ownerId }), description: String(i % 10).repeat(DOC_BYTES) });
const jsonBytes = (value: unknown) => JSON.stringify(value).length;

async function bigGateway() {
  // Live events are not dropped for a resync here: the test looks at what the stream carries.
  return startTestGateway({ maxPageBytes: LIST_BUDGET, maxQueuedBytes: 256 * MiB, maxBufferedBytes: 256 * MiB });
}

describe('bytes per page', () => {
  it('ends a pull page at the byte budget and pages on to every change, from a kept cursor or a new one', async () => {
    const gateway = await bigGateway();
    await seed(gateway, 'tasks', Array.from({ length: DOCS }, (_, i) => bigTask(i)));
    const ops = tasksOps(gateway);
    const token = await testToken('reader');

    const ids: string[] = [];
    const pages: Array<{ count: number; bytes: number; hasMore: boolean; checkpoint: { seq: number } }> = [];
    let checkpoint: { seq: number } | null = null;
    for (let n = 0; n < 50; n++) {
      const answer = await graphqlHttp(gateway.httpUrl, ops.pull, { checkpoint, limit: 1000 }, token);
      expect(answer.errors).toBeUndefined();
      const bulk = answer.data!.pullTasks as { documents: Array<{ id: string }>; checkpoint: { seq: number }; hasMore: boolean };
      pages.push({ count: bulk.documents.length, bytes: jsonBytes(bulk.documents), hasMore: bulk.hasMore, checkpoint: bulk.checkpoint });
      ids.push(...bulk.documents.map((d) => d.id));
      checkpoint = bulk.checkpoint;
      if (!bulk.hasMore) break;
    }
    console.log(`pull pages: ${pages.map((p) => `${p.count} docs/${Math.round(p.bytes / 1024)} KiB${p.hasMore ? '+' : ''}`).join(', ')}`);
    expect(pages.length).toBeGreaterThan(1);
    expect(pages[0]!.hasMore).toBe(true);
    expect(pages[0]!.count).toBeLessThan(1000);
    for (const page of pages) expect(page.bytes).toBeLessThanOrEqual(PAGE_BOUND);
    expect(ids).toEqual(Array.from({ length: DOCS }, (_, i) => bigTask(i).id));

    // Again from the first page's checkpoint, with no cursor kept for it: the same next page.
    const again = await graphqlHttp(gateway.httpUrl, ops.pull, { checkpoint: pages[0]!.checkpoint, limit: 1000 }, token);
    const first = pages[0]!.count;
    expect((again.data!.pullTasks.documents as Array<{ id: string }>).map((d) => d.id)).toEqual(ids.slice(first, first + pages[1]!.count));
  }, 120_000);

  it('ends a bootstrap page at the byte budget; next pages on to every document', async () => {
    const gateway = await bigGateway();
    await seed(gateway, 'tasks', [...Array.from({ length: DOCS }, (_, i) => bigTask(i)), newTask({ id: 'other', ownerId: 'someone-else' })]);
    const ops = tasksOps(gateway);
    const token = await testToken('reader');

    const ids: string[] = [];
    const pages: Array<{ count: number; bytes: number }> = [];
    let after: string | null = null;
    let snapshot: number | null = null;
    for (let n = 0; n < 50; n++) {
      const answer = await graphqlHttp(gateway.httpUrl, ops.bootstrap, { query: { ownerId: 'big' }, after, snapshot, limit: 1000 }, token);
      expect(answer.errors).toBeUndefined();
      const page = answer.data!.bootstrapTasks as { documents: Array<{ id: string }>; snapshot: number; next: string | null; estimatedTotal: number | null };
      if (n === 0) expect(page.estimatedTotal).toBe(DOCS);
      pages.push({ count: page.documents.length, bytes: jsonBytes(page.documents) });
      ids.push(...page.documents.map((d) => d.id));
      if (page.next !== null) expect(page.next).toBe(page.documents.at(-1)!.id);
      snapshot = page.snapshot;
      after = page.next;
      if (after === null) break;
    }
    console.log(`bootstrap pages: ${pages.map((p) => `${p.count} docs/${Math.round(p.bytes / 1024)} KiB`).join(', ')}`);
    expect(pages.length).toBeGreaterThan(1);
    expect(pages[0]!.count).toBeLessThan(1000);
    for (const page of pages) expect(page.bytes).toBeLessThanOrEqual(PAGE_BOUND);
    expect(ids).toEqual(Array.from({ length: DOCS }, (_, i) => bigTask(i).id));
  }, 120_000);

  it('refuses a plain list whose answer would exceed the budget, and answers one within it', async () => {
    const gateway = await bigGateway();
    await seed(gateway, 'tasks', [...Array.from({ length: 8 }, (_, i) => bigTask(i)), newTask({ id: 'small', ownerId: 'small' })]);
    const token = await testToken('reader');

    const refused = await graphqlHttp(gateway.httpUrl, '{ tasks(limit: 1000) { id description } }', {}, token);
    expect(refused.data).toBeNull();
    expect(refused.errors?.[0]?.extensions?.code).toBe('TOO_LARGE');
    expect(refused.errors?.[0]?.message).toBe(`the answer would exceed ${LIST_BUDGET} bytes; ask for fewer documents`);

    // Within the budget: 3 × 300 KiB, or everything a filter selects.
    const three = await graphqlHttp(gateway.httpUrl, '{ tasks(limit: 3) { id } }', {}, token);
    expect(three.errors).toBeUndefined();
    expect(three.data!.tasks.map((t: { id: string }) => t.id)).toEqual(['big-000', 'big-001', 'big-002']);
    const small = await graphqlHttp(gateway.httpUrl, '{ tasks(filter: { ownerId: "small" }, limit: 1000) { id } }', {}, token);
    expect(small.data!.tasks).toEqual([{ id: 'small' }]);
    // Paging by id, as the refusal suggests.
    const next = await graphqlHttp(gateway.httpUrl, 'query ($f: JSONObject) { tasks(filter: $f, limit: 3) { id } }', { f: { id: { $gt: 'big-002' } } }, token);
    expect(next.data!.tasks.map((t: { id: string }) => t.id)).toEqual(['big-003', 'big-004', 'big-005']);
    // One document is always answered, whatever its size.
    const one = await graphqlHttp(gateway.httpUrl, '{ tasks(limit: 1) { id } }', {}, token);
    expect(one.data!.tasks).toEqual([{ id: 'big-000' }]);
  }, 120_000);

  it('reads live changes in batches within the budget; a stream subscriber receives every change', async () => {
    const gateway = await bigGateway();
    const ops = tasksOps(gateway);
    const batches: number[] = [];
    const unsubscribe = gateway.collections.get('tasks')!.feed.subscribe((batch: ChangeBatch) => {
      batches.push(batch.stored.reduce((sum, d) => sum + sizeOf(d), 0));
    });
    const reader = await attacker(gateway, 'reader');
    const stream = reader.subscribe(ops.stream);
    await waitFor('the stream started', () => stream.events.length > 0);

    await seed(gateway, 'tasks', Array.from({ length: DOCS }, (_, i) => bigTask(i)));
    const received = new Set<string>();
    await waitFor('every change streamed', () => {
      for (const event of stream.events.splice(0)) {
        expect(event.errors).toBeUndefined();
        for (const d of event.data!.streamTasks.documents as Array<{ id: string }>) received.add(d.id);
      }
      return received.size === DOCS;
    }, 60_000);
    unsubscribe();
    await reader.close();
    console.log(`feed batches: ${batches.map((b) => `${Math.round(b / 1024)} KiB`).join(', ')}`);
    expect(batches.length).toBeGreaterThan(1);
    for (const bytes of batches) expect(bytes).toBeLessThanOrEqual(PAGE_BOUND);
    expect(stream.errors).toEqual([]);
  }, 120_000);

  it('bounds the memory of concurrent big list requests', async () => {
    const gateway = await bigGateway();
    const token = await testToken('reader');
    // 48 MiB in all: 12 documents of 4 MiB, each stored by its own push.
    const BIG = 'x'.repeat(4 * MiB);
    let fed = 0;
    gateway.collections.get('tasks')!.feed.subscribe((batch) => (fed += batch.documents.length));
    for (let i = 0; i < 12; i++) await seed(gateway, 'tasks', [{ ...newTask({ ownerId: 'big' }), description: BIG }]);
    // The change feed has read them too: what is measured below is the lists alone.
    await waitFor('the change feed read the documents', () => fed === 12, 60_000);

    // What the process holds (JS heap and buffers), not RSS: the allocator keeps pages it has
    // freed, and the garbage of the seeding above would count.
    const held = () => {
      const m = process.memoryUsage();
      return m.heapUsed + m.external;
    };
    global.gc?.();
    const before = held();
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, held())), 10);
    const started = Date.now();
    const answers = await Promise.all(Array.from({ length: 4 }, () => graphqlHttp(gateway.httpUrl, '{ tasks(limit: 1000) { id description } }', {}, token)));
    clearInterval(sampler);
    const grewMb = Math.round((peak - before) / MiB);
    console.log(`4 concurrent lists over 48 MiB: ${Date.now() - started} ms, heap and buffers +${grewMb} MB`);
    for (const answer of answers) expect(answer.errors?.[0]?.extensions?.code).toBe('TOO_LARGE');
    // Bounded, each request holds at most one driver batch (at most 16 MiB, FerretDB sends four
    // of these documents in one), raw and decoded, and its page; with the garbage a peak sample
    // also sees, 170-260 MB for the four. Unbounded, each held the whole collection, raw and
    // decoded (over 96 MiB each; ~600 MB RSS was measured).
    expect(grewMb).toBeLessThan(320);
  }, 180_000);
});
