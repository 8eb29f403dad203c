// Issue 3, case 6: a 50k-document bootstrap reports progress and reaches Complete; an app
// restart afterwards downloads nothing again.
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, newTask, openTestClient, startTestGateway, waitFor } from './helpers/harness.ts';

afterEach(cleanup);

describe('bootstrap', () => {
  it('bootstraps 50,000 documents with progress, and a restart downloads nothing', { timeout: 300_000 }, async () => {
    const gateway = await startTestGateway();
    const writer = gateway.collections.get('tasks')!.writer;
    for (let batch = 0; batch < 55; batch++) {
      const rows = Array.from({ length: 1_000 }, (_, i) => ({
        assumedMasterState: null,
        newDocumentState: { ...newTask({ id: `t${batch}-${i}`, ownerId: batch < 50 ? 'team' : 'someone-else' }), _deleted: false },
      }));
      // (Checked: a bootstrap Complete with fewer documents must not hide a refused seeding push.)
      const result = await writer.push(rows);
      expect(result.rejected).toEqual([]);
    }

    const databaseName = `bootstrap_${Date.now()}`;
    const client = await openTestClient(gateway.wsUrl, { databaseName, flexibleSync: true });
    const progress: Array<{ received: number; estimatedTotal: number }> = [];
    client.subscriptions.changes$.subscribe((s) => progress.push(s.progress));

    await client.subscriptions.update((m) => m.add('tasks', "ownerId == 'team'", { name: 'team' }));
    expect(client.subscriptions.state).toBe('complete');
    expect(await client.collections.tasks!.count().exec()).toBe(50_000);

    const reported = progress.filter((p) => p.estimatedTotal > 0);
    expect(reported.at(-1)).toEqual({ received: 50_000, estimatedTotal: 50_000 });
    expect(reported.length).toBeGreaterThanOrEqual(50); // a report per page of 1,000
    expect(reported.some((p) => p.received > 0 && p.received < 50_000)).toBe(true);
    await client.close();

    const reopened = await openTestClient(gateway.wsUrl, { databaseName, flexibleSync: true });
    await reopened.subscriptions.waitForSynchronization();
    await waitFor('reconnected', () => reopened.connectionState === 'connected');
    await reopened.waitForSync();
    expect(reopened.subscriptions.state).toBe('complete');
    expect(await reopened.collections.tasks!.count().exec()).toBe(50_000);
    expect(reopened.counters.downloaded.tasks).toBe(0);
  });
});
