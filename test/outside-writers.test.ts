// Issue 12: documents that were in MongoDB before the gateway, and writes other services make
// with the driver while it runs, sync like the gateway's own.
import { afterEach, describe, expect, it } from 'vitest';
import { syncOperations } from '../protocol/operations.ts';
import { loadModel } from '../protocol/model.ts';
import { cleanup, graphqlHttp, newTask, openDb, openTestClient, SCHEMA, startTestGateway, syncedDocument, testToken, uniqueName, waitFor, useOplogStore } from './helpers/harness.ts';

useOplogStore(); // these tests follow FerretDB's oplog (test/setup/ferretdb.ts)

afterEach(cleanup);

const tasksModel = loadModel(SCHEMA).collections.find((c) => c.name === 'tasks')!;
const ops = syncOperations(tasksModel);

/** A task as another service writes it: the type's fields, no sync metadata. */
function legacyTask(id: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const { id: _id, ...task } = newTask(overrides);
  return { _id: id, ...task, dueDate: new Date('2026-12-24T18:00:00Z') };
}

describe('documents already in MongoDB', () => {
  it('are adopted at start: plain queries, lookups, pulls and a fresh SDK client see them', async () => {
    const database = uniqueName('adopt');
    const db = await openDb(database);
    await db.collection('tasks').insertMany(Array.from({ length: 300 }, (_, i) => legacyTask(`legacy-${i}`, { title: `legacy ${i}` })) as never[]);
    // Fields of another service's stay in the document and never leave the gateway.
    await db.collection('tasks').updateOne({ _id: 'legacy-0' as never }, { $set: { billingCode: 'B-7' } });

    const gateway = await startTestGateway({ database, followOutsideChanges: true });
    await gateway.outsideWrites.settled();
    const ready = (await (await fetch(gateway.httpUrl.replace('/graphql', '/ready'))).json()) as { outsideWrites: { passes: Record<string, { state: string; counts: { adopted: number } }> } };
    expect(ready.outsideWrites.passes.tasks).toMatchObject({ state: 'done', counts: { adopted: 300 } });

    const one = await graphqlHttp(gateway.httpUrl, 'query { task(id: "legacy-1") { id title dueDate } }');
    expect(one.data!.task).toEqual({ id: 'legacy-1', title: 'legacy 1', dueDate: '2026-12-24T18:00:00.000Z' });
    const list = await graphqlHttp(gateway.httpUrl, 'query { tasks(limit: 1000) { id } }');
    expect(list.data!.tasks).toHaveLength(300);
    const pulled = await graphqlHttp(gateway.httpUrl, ops.pull, { checkpoint: null, limit: 1000 });
    expect(pulled.data!.pullTasks.documents).toHaveLength(300);

    const client = await openTestClient(gateway.wsUrl);
    await waitFor('the client holds every legacy task', async () => (await client.collections.tasks!.count().exec()) === 300);
    const local = (await client.collections.tasks!.findOne('legacy-0').exec())!.toJSON() as Record<string, unknown>;
    expect(local).not.toHaveProperty('billingCode');

    // The gateway added nothing to the documents themselves.
    const stored = await db.collection('tasks').findOne({ _id: 'legacy-0' as never });
    expect(Object.keys(stored!).sort()).toEqual(Object.keys({ ...legacyTask('x'), billingCode: 1 }).sort());
  });

  it('reports documents that fail schema.graphql, and skips them or syncs them as configured', async () => {
    for (const policy of ['skip', 'sync'] as const) {
      const database = uniqueName(`invalid_${policy}`);
      const db = await openDb(database);
      await db.collection('tasks').insertMany([legacyTask('good'), legacyTask('no-title', { title: undefined }), legacyTask('bad-status', { status: 'LOST' })] as never[]);
      const gateway = await startTestGateway({ database, invalidDocuments: policy, followOutsideChanges: true });
      await gateway.outsideWrites.settled();
      const ready = (await (await fetch(gateway.httpUrl.replace('/graphql', '/ready'))).json()) as { outsideWrites: { invalidDocuments: Record<string, number> } };
      expect(ready.outsideWrites.invalidDocuments.tasks).toBe(2);
      const list = await graphqlHttp(gateway.httpUrl, 'query { tasks(limit: 10) { id } }');
      const ids = (list.data?.tasks as Array<{ id: string }> | undefined)?.map((t) => t.id).sort();
      if (policy === 'skip') expect(ids).toEqual(['good']);
      else expect((await syncedDocument(db, 'tasks', 'bad-status'))!._sync.invalid).toMatchObject({ field: 'status' });
      // A service that fixes the document brings it into sync, and the count down.
      await db.collection('tasks').updateOne({ _id: 'bad-status' as never }, { $set: { status: 'DONE' } });
      await waitFor(`the fixed document syncs (${policy})`, async () => {
        const after = (await (await fetch(gateway.httpUrl.replace('/graphql', '/ready'))).json()) as { outsideWrites: { invalidDocuments: Record<string, number> } };
        const meta = await syncedDocument(db, 'tasks', 'bad-status');
        return after.outsideWrites.invalidDocuments.tasks === 1 && meta?._sync.invalid === null;
      });
      const found = await graphqlHttp(gateway.httpUrl, 'query { task(id: "bad-status") { status } }');
      expect(found.data?.task, policy).toEqual({ status: 'DONE' });
    }
  });
});

describe('writes other services make while the gateway runs', () => {
  // The latency itself is measured in bench/ (outside-writes: p50 and p99 under load); here each
  // change must arrive live, well before a resync or a full pass could have brought it.
  it('reach two live clients, each change on its own, and a client that was offline by pull', async () => {
    const gateway = await startTestGateway({ followOutsideChanges: true });
    const db = await openDb(gateway.database);
    const tasks = db.collection('tasks');
    const [alice, bob, carol] = await Promise.all([openTestClient(gateway.wsUrl), openTestClient(gateway.wsUrl), openTestClient(gateway.wsUrl)]);
    await carol.pause();
    const live = [alice, bob];
    const within = async (what: string, check: (doc: Record<string, any> | null) => boolean) => {
      const began = Date.now();
      await Promise.all(
        live.map((client) =>
          waitFor(what, async () => check(((await client.collections.tasks!.findOne(what.split(' ')[0]!).exec())?.toJSON() as Record<string, any>) ?? null), 5_000),
        ),
      );
      return Date.now() - began;
    };
    const latencies: Record<string, number> = {};

    await tasks.insertOne(legacyTask('out-1', { title: 'inserted', minutesLogged: 5 }) as never);
    latencies.insert = await within('out-1 inserted', (d) => d?.title === 'inserted');
    await tasks.insertMany([legacyTask('out-2'), legacyTask('out-3'), legacyTask('out-4')] as never[]);
    latencies.insertMany = await within('out-4 inserted', (d) => d !== null);
    await tasks.updateOne({ _id: 'out-1' as never }, { $set: { title: 'set by a service' } });
    latencies.set = await within('out-1 $set', (d) => d?.title === 'set by a service');
    await tasks.updateOne({ _id: 'out-1' as never }, { $inc: { minutesLogged: 7 } });
    latencies.inc = await within('out-1 $inc', (d) => d?.minutesLogged === 12);
    await tasks.replaceOne({ _id: 'out-2' as never }, { ownerId: 'user-1', title: 'replaced', status: 'DONE', priority: 1, tags: [] });
    latencies.replace = await within('out-2 replaced', (d) => d?.title === 'replaced' && d.dueDate === undefined);
    await tasks.deleteMany({ _id: { $in: ['out-3', 'out-4'] } } as never);
    latencies.deleteMany = await within('out-4 deleted', (d) => d === null);
    expect(await alice.collections.tasks!.findOne('out-3').exec()).toBeNull();
    await tasks.bulkWrite([{ updateOne: { filter: { _id: 'out-1' }, update: { $push: { tags: 'pushed' } } } }, { deleteOne: { filter: { _id: 'out-2' } } }] as never);
    latencies.bulkWrite = await within('out-2 deleted', (d) => d === null);
    console.log('outside write → two live clients (ms):', JSON.stringify(latencies));
    for (const [what, ms] of Object.entries(latencies)) expect(ms, what).toBeLessThan(5_000);

    await carol.resume();
    await waitFor('carol caught up by pull', async () => {
      const held = (await carol.collections.tasks!.find().exec()).map((d) => d.toJSON() as Record<string, any>);
      return held.length === 1 && held[0]!.id === 'out-1' && held[0]!.minutesLogged === 12 && held[0]!.tags.includes('pushed');
    });
  });

  it('merge like unstamped writes: an offline edit of another field survives, counters add up, a delete wins', async () => {
    const gateway = await startTestGateway({ followOutsideChanges: true });
    const db = await openDb(gateway.database);
    const device = await openTestClient(gateway.wsUrl);
    const task = newTask({ title: 'before', minutesLogged: 10 });
    await device.collections.tasks!.insert(task);
    await waitFor('the task is at the gateway', async () => (await syncedDocument(db, 'tasks', task.id)) !== null);
    await device.waitForSync();

    await device.pause();
    const local = (await device.collections.tasks!.findOne(task.id).exec())!;
    await local.incrementalPatch({ description: 'written offline', minutesLogged: 13 }); // +3 on the device
    await db.collection('tasks').updateOne({ _id: task.id as never }, { $set: { title: 'renamed by a service' }, $inc: { minutesLogged: 100 } });
    await waitFor('the outside change is sequenced', async () => (await syncedDocument(db, 'tasks', task.id))?.title === 'renamed by a service' && (await syncedDocument(db, 'tasks', task.id))!._sync.stamps.title !== undefined);
    await device.resume();

    const expected = { title: 'renamed by a service', description: 'written offline', minutesLogged: 113 };
    await waitFor('device and MongoDB agree', async () => {
      await device.waitForSync();
      const here = (await device.collections.tasks!.findOne(task.id).exec())?.toJSON() as Record<string, unknown> | undefined;
      const there = await db.collection('tasks').findOne({ _id: task.id as never });
      return here && there && Object.entries(expected).every(([k, v]) => here[k] === v && there[k] === v);
    });

    // A device's edit made offline meanwhile loses to a delete made by a service.
    await device.pause();
    await (await device.collections.tasks!.findOne(task.id).exec())!.incrementalPatch({ title: 'edited after the delete' });
    await db.collection('tasks').deleteOne({ _id: task.id as never });
    await waitFor('the delete is sequenced', async () => (await syncedDocument(db, 'tasks', task.id))?._sync.deleted === true);
    await device.resume();
    await waitFor('the device drops the task', async () => (await device.collections.tasks!.findOne(task.id).exec()) === null);
    expect(await db.collection('tasks').findOne({ _id: task.id as never })).toBeNull();
  });

  it('are not delivered twice: a gateway write reaches a client once', async () => {
    const gateway = await startTestGateway({ followOutsideChanges: true });
    const seen: string[] = [];
    const watcher = await openTestClient(gateway.wsUrl);
    watcher.collections.tasks!.$.subscribe((event) => seen.push(`${event.documentId}:${event.operation}`));
    const writer = await openTestClient(gateway.wsUrl, { connectionParams: { authToken: await testToken() } });
    const task = newTask();
    await writer.collections.tasks!.insert(task);
    await waitFor('the watcher has it', async () => (await watcher.collections.tasks!.findOne(task.id).exec()) !== null);
    // Long enough for the write's oplog entry to have been read and compared.
    await new Promise((r) => setTimeout(r, 1_500));
    const db = await openDb(gateway.database);
    expect((await syncedDocument(db, 'tasks', task.id))!._sync.seq).toBe(1);
    expect(seen.filter((e) => e.startsWith(task.id))).toEqual([`${task.id}:INSERT`]);
  });
});


describe('several gateway instances on one database', () => {
  it('one follows outside changes and each change is sequenced once; the other takes over when it stops', async () => {
    const database = uniqueName('instances');
    const db = await openDb(database);
    const first = await startTestGateway({ database, followOutsideChanges: true });
    const second = await startTestGateway({ database, followOutsideChanges: true });
    const roles = async () =>
      Promise.all([first, second].map(async (g) => ((await (await fetch(g.httpUrl.replace('/graphql', '/ready'))).json()) as { outsideWrites: { role: string } }).outsideWrites.role));
    expect(await roles()).toEqual(['leader', 'standby']);

    // One client on each instance; each counts the changes it is handed per document.
    const clients = await Promise.all([openTestClient(first.wsUrl), openTestClient(second.wsUrl)]);
    const seen = clients.map(() => [] as string[]);
    clients.forEach((client, i) => client.collections.tasks!.$.subscribe((event) => seen[i]!.push(`${event.documentId}:${event.operation}`)));
    const tasks = db.collection('tasks');
    const counter = async () => (await db.collection('_tributary_sequences').findOne({ _id: 'tasks' as never }))!.seq as number;

    await tasks.insertOne(legacyTask('shared-1', { title: 'one' }) as never);
    await waitFor('both clients have the insert', async () => (await Promise.all(clients.map((c) => c.collections.tasks!.findOne('shared-1').exec()))).every(Boolean));
    await tasks.updateOne({ _id: 'shared-1' as never }, { $set: { title: 'two' } });
    await waitFor('both clients have the update', async () => (await Promise.all(clients.map((c) => c.collections.tasks!.findOne('shared-1').exec()))).every((d) => d?.get('title') === 'two'));
    await tasks.deleteOne({ _id: 'shared-1' as never });
    await waitFor('both clients dropped it', async () => (await Promise.all(clients.map((c) => c.collections.tasks!.findOne('shared-1').exec()))).every((d) => d === null));
    // Time for a second follower, if there were one, to have sequenced the same changes again.
    await new Promise((r) => setTimeout(r, 1_500));
    expect(await counter()).toBe(3);
    for (const events of seen) expect(events).toEqual(['shared-1:INSERT', 'shared-1:UPDATE', 'shared-1:DELETE']);

    // The follower stops (a rolling restart): the other instance follows from where it left off, at once.
    await first.stop();
    await waitFor('the second instance follows', async () => (await (await fetch(second.httpUrl.replace('/graphql', '/ready'))).json()).outsideWrites.role === 'leader', 5_000);
    await tasks.insertOne(legacyTask('shared-2', { title: 'after the handover' }) as never);
    await waitFor('the client of the second instance has it', async () => (await clients[1]!.collections.tasks!.findOne('shared-2').exec())?.get('title') === 'after the handover');
    await new Promise((r) => setTimeout(r, 1_500));
    expect(await counter()).toBe(4);
    expect(seen[1]!.filter((e) => e.startsWith('shared-2'))).toEqual(['shared-2:INSERT']);
  });
});
