// A pull page that is not full covers every change committed before it was asked for, also when
// it continues a read that began earlier (PROTOCOL.md, section 4). RxDB relies on it: a stream
// event that arrived while a multi-page pull was running is dropped, because the next page is
// supposed to contain its changes. A kept cursor read only up to its first page's horizon, so
// such a change was lost for good on that device (found by the convergence run once the
// collection outgrew one pull page: seed -1821255639, case 1,710).
import { afterEach, describe, expect, it } from 'vitest';
import { syncOperations } from '../protocol/operations.ts';
import { cleanup, graphqlHttp, newTask, openTestClient, startTestGateway, waitFor } from './helpers/harness.ts';

afterEach(cleanup);

type Page = { documents: Array<{ id: string }>; checkpoint: { seq: number }; hasMore: boolean };

describe('pull pages', () => {
  it('a short page that continues an earlier read includes what committed since that read began', async () => {
    const gateway = await startTestGateway();
    const tasks = gateway.collections.get('tasks')!;
    const ops = syncOperations(tasks.model);
    const push = (doc: Record<string, unknown>) => graphqlHttp(gateway.httpUrl, ops.push, { rows: [{ assumedMasterState: null, newDocumentState: { ...doc, _deleted: false } }] });
    const pull = async (checkpoint: { seq: number } | null, limit: number) =>
      (await graphqlHttp(gateway.httpUrl, ops.pull, { checkpoint, limit })).data!.pullTasks as Page;

    const first = Array.from({ length: 5 }, () => newTask());
    for (const doc of first) await push(doc);
    const page1 = await pull(null, 3);
    expect(page1.documents.map((d) => d.id)).toEqual(first.slice(0, 3).map((d) => d.id));
    expect(page1.hasMore).toBe(true);

    const late = newTask({ title: 'committed between pages' });
    await push(late);
    const page2 = await pull(page1.checkpoint, 4);
    expect(page2.documents.map((d) => d.id)).toEqual([...first.slice(3), late].map((d) => d.id));
    expect(page2.hasMore).toBe(false);
    expect(page2.checkpoint.seq).toBe((await tasks.store.current(late.id))!._sync.seq);
  });

  it('a device whose first sync takes several pages gets a change streamed to it between them', async () => {
    const gateway = await startTestGateway();
    const tasks = gateway.collections.get('tasks')!;
    const ops = syncOperations(tasks.model);
    const push = (doc: Record<string, unknown>) => graphqlHttp(gateway.httpUrl, ops.push, { rows: [{ assumedMasterState: null, newDocumentState: { ...doc, _deleted: false } }] });
    const first = Array.from({ length: 5 }, () => newTask());
    for (const doc of first) await push(doc);
    await waitFor('the change feed passed the first documents', () => tasks.feed.checkpoint.seq >= 5);

    // Hold the device's first page until another change has been committed and streamed to it:
    // the stream event then reaches RxDB while its pull is running, before the next page.
    const late = newTask({ title: 'streamed between pages' });
    const changesCursor = tasks.store.changesCursor.bind(tasks.store);
    let device: Awaited<ReturnType<typeof openTestClient>> | undefined;
    let held = false;
    tasks.store.changesCursor = (after, upTo, batchSize) => {
      const cursor = changesCursor(after, upTo, batchSize);
      if (after === 0 && !held) {
        held = true;
        const next = cursor.next.bind(cursor);
        let first = true;
        cursor.next = async () => {
          if (first) {
            first = false;
            await push(late);
            await waitFor('the change reached the device', () => device && device.counters.downloaded.tasks! > 0);
          }
          return next();
        };
      }
      return cursor;
    };

    device = await openTestClient(gateway.wsUrl, { pullBatchSize: 3 });
    await waitFor('the device holds every document', async () => (await device!.collections.tasks!.findByIds([...first, late].map((d) => d.id)).exec()).size === 6, 10_000);
    expect(held).toBe(true);
  });
});
