// Issue 17: several gateway instances on one database. Each instance has its own process state
// (document locks, sequencer, change feed); what keeps them correct together must go through
// the store, on FerretDB too, whose single-document updates are not atomic.
import { afterEach, describe, expect, it } from 'vitest';
import { INSTANCES_COLLECTION, type InstanceDocument } from '../gateway/store/instances.ts';
import { cleanup, graphqlHttp, newTask, openDb, startTestGateway, waitFor } from './helpers/harness.ts';

afterEach(cleanup);

describe('several instances on one database', () => {
  it('adds up concurrent counter increments made through different instances, and never gives two writes one sequence', async () => {
    const first = await startTestGateway();
    const second = await startTestGateway({ database: first.database });
    const task = newTask({ minutesLogged: 0 });
    const created = await graphqlHttp(first.httpUrl, `mutation ($input: TaskInput!) { insertTask(input: $input) { id } }`, { input: task });
    expect(created.errors).toBeUndefined();

    const increments = 24;
    const results = await Promise.all(
      Array.from({ length: increments }, (_, i) =>
        graphqlHttp((i % 2 === 0 ? first : second).httpUrl, `mutation ($id: ID!) { updateTask(id: $id, inc: { minutesLogged: 1 }) { minutesLogged } }`, { id: task.id }),
      ),
    );
    expect(results.flatMap((r) => (r.errors ?? []).map((e) => e.message))).toEqual([]);

    const db = await openDb(first.database);
    expect(await db.collection('tasks').findOne({ _id: task.id as never })).toMatchObject({ minutesLogged: increments });
    // Both instances read it back the same, from its metadata (the counter's state adds up too).
    for (const gateway of [first, second]) {
      const read = await graphqlHttp(gateway.httpUrl, `query ($id: ID!) { task(id: $id) { minutesLogged } }`, { id: task.id });
      expect(read.data).toEqual({ task: { minutesLogged: increments } });
    }
    const metas = await db.collection('_tributary_sync_tasks').find({}, { projection: { seq: 1 } }).toArray();
    const counter = await db.collection('_tributary_sequences').findOne({ _id: 'tasks' as never });
    expect(counter!.seq).toBe(1 + increments);
    expect(metas.map((m) => m.seq)).toEqual([1 + increments]);
  });

  it('takes the store\'s locks only while another instance is live', async () => {
    const first = await startTestGateway();
    const db = await openDb(first.database);
    const instances = db.collection<InstanceDocument>(INSTANCES_COLLECTION);
    const shared = async () => (await instances.find({}).sort({ _id: 1 }).toArray()).map((i) => i.shared);
    const insert = (gateway: typeof first) => graphqlHttp(gateway.httpUrl, `mutation ($input: TaskInput!) { insertTask(input: $input) { id } }`, { input: newTask() });
    expect(await shared()).toEqual([false]);
    // Alone: no lock document is ever written.
    const locks = db.collection('_tributary_locks');
    const seenLocks: number[] = [];
    const watching = setInterval(() => void locks.countDocuments().then((n) => seenLocks.push(n)), 5);
    await Promise.all(Array.from({ length: 10 }, () => insert(first)));
    clearInterval(watching);
    expect(Math.max(0, ...seenLocks)).toBe(0);

    const second = await startTestGateway({ database: first.database });
    await waitFor('both instances run shared', async () => (await shared()).every(Boolean) && (await shared()).length === 2);
    for (const result of await Promise.all([insert(first), insert(second)])) expect(result.errors).toBeUndefined();

    await second.stop();
    await waitFor('the first runs alone again', async () => JSON.stringify(await shared()) === '[false]');
  });
});
