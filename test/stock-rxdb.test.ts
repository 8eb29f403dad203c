// Issue 2, case 7: RxDB's stock replicateGraphQL plugin syncs a collection with the gateway,
// using the example from PROTOCOL.md (docs/examples/stock-replicate-graphql.ts).
import { createRxDatabase, type RxJsonSchema } from 'rxdb';
import { getRxStorageMemory } from 'rxdb/plugins/storage-memory';
import { afterEach, describe, expect, it } from 'vitest';
import { replicateTasks, taskSchema } from '../docs/examples/stock-replicate-graphql.ts';
import { cleanup, newTask, openDb, openTestClient, startTestGateway, testToken, uniqueName, waitFor } from './helpers/harness.ts';

afterEach(cleanup);

describe('RxDB stock replicateGraphQL', () => {
  it('pulls, pushes and streams against the gateway', async () => {
    const gateway = await startTestGateway();
    const sdkClient = await openTestClient(gateway.wsUrl);
    const existing = newTask({ title: 'written before the stock client started' });
    await sdkClient.collections.tasks!.insert(existing);
    await sdkClient.waitForSync();

    const database = await createRxDatabase({ name: uniqueName('stock'), storage: getRxStorageMemory(), multiInstance: false });
    const { tasks } = await database.addCollections({ tasks: { schema: taskSchema as unknown as RxJsonSchema<any> } });
    const replication = replicateTasks(tasks!, { http: gateway.httpUrl, ws: gateway.wsUrl }, await testToken());
    try {
      const errors: unknown[] = [];
      replication.error$.subscribe((e) => errors.push(e));
      await replication.awaitInitialReplication();
      expect(await tasks!.findOne(existing.id).exec()).not.toBeNull();

      // stock client → gateway → MongoDB and the SDK client
      const fromStock = newTask({ title: 'from the stock plugin' });
      await tasks!.insert(fromStock);
      await waitFor('SDK client has the stock client’s task', () => sdkClient.collections.tasks!.findOne(fromStock.id).exec());
      const db = await openDb(gateway.database);
      expect(await db.collection('tasks').findOne({ _id: fromStock.id as never })).toMatchObject({ title: 'from the stock plugin' });

      // SDK client → gateway → stock client, live over the stream
      const fromSdk = newTask({ title: 'from the SDK' });
      await sdkClient.collections.tasks!.insert(fromSdk);
      await waitFor('stock client has the SDK client’s task', () => tasks!.findOne(fromSdk.id).exec());
      const doc = await tasks!.findOne(fromSdk.id).exec();
      await doc!.incrementalPatch({ status: 'DONE' });
      await waitFor('SDK client sees the stock client’s update', async () => (await sdkClient.collections.tasks!.findOne(fromSdk.id).exec())?.status === 'DONE');
      await doc!.getLatest().remove();
      await waitFor('SDK client sees the stock client’s delete', async () => (await sdkClient.collections.tasks!.findOne(fromSdk.id).exec()) === null);
      expect(errors).toEqual([]);
    } finally {
      await replication.cancel();
      await database.close();
    }
  });
});
