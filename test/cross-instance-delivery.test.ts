// Issue 17: an instance learns of another instance's commits from the store (store/commit-signal.ts),
// not from its feeds' poll. Here the poll is set to a minute: a change reaching a client of the
// other instance within seconds can only have come through the signal.
import type { Db, MongoClient } from 'mongodb';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { detectCommitSignal } from '../gateway/store/commit-signal.ts';
import { cleanup, graphqlHttp, newTask, openTestClient, startTestGateway, useOplogStore, waitFor } from './helpers/harness.ts';

useOplogStore(); // FerretDB's signal is its oplog (test/setup/ferretdb.ts)
afterEach(cleanup);

const NO_POLL = { pollIntervalMs: 60_000 };
const insertTask = `mutation ($input: TaskInput!) { insertTask(input: $input) { id } }`;

describe('delivery across instances', () => {
  it('delivers a write made through one instance to a live client of another without waiting for the poll', async () => {
    const writer = await startTestGateway(NO_POLL);
    const reader = await startTestGateway({ ...NO_POLL, database: writer.database });
    const client = await openTestClient(reader.wsUrl);
    const tasks = client.collections.tasks!;
    // The instances see each other at their next heartbeat (1 s); only then is the signal needed.
    await new Promise((resolve) => setTimeout(resolve, 2_500));

    for (let round = 1; round <= 3; round++) {
      const task = newTask({ title: `through the other instance ${round}` });
      expect((await graphqlHttp(writer.httpUrl, insertTask, { input: task })).errors).toBeUndefined();
      await waitFor(`the reader's client has write ${round}`, async () => (await tasks.findOne(task.id).exec()) !== null, 10_000);
    }
  });
});

describe('the change-stream signal (MongoDB; scripted stream)', () => {
  it('wakes the feed of the collection whose counter moved, and all of them whenever the stream (re)opens', async () => {
    const events: Array<{ documentKey: { _id: string } }> = [];
    let failNext = false;
    let opened = 0;
    const openStream = () => {
      opened++;
      let position = events.length;
      let closed = false;
      return {
        get closed() {
          return closed;
        },
        tryNext: async () => {
          if (failNext) {
            failNext = false;
            closed = true;
            throw new Error('stream interrupted');
          }
          if (position < events.length) return events[position++];
          await new Promise((r) => setTimeout(r, 5));
          return null;
        },
        close: async () => {
          closed = true;
        },
      };
    };
    const db = { databaseName: 'app', watch: openStream, collection: (name: string) => (expect(name).toBe('_tributary_sequences'), { watch: openStream }) } as unknown as Db;
    const signal = await detectCommitSignal({} as MongoClient, db, '_tributary_sequences', pino({ level: 'silent' }));
    expect(signal.kind).toBe('change-stream');
    const woken: Array<string | undefined> = [];
    signal.start((collection) => woken.push(collection));
    await waitFor('the stream is open', () => woken.length === 1);
    expect(woken).toEqual([undefined]);

    events.push({ documentKey: { _id: 'tasks' } }, { documentKey: { _id: 'projects' } });
    await waitFor('both counters signalled', () => woken.length === 3);
    expect(woken.slice(1)).toEqual(['tasks', 'projects']);

    failNext = true;
    await waitFor('reopened after a failure, waking every feed', () => woken.length === 4, 5_000);
    expect(woken[3]).toBeUndefined();
    events.push({ documentKey: { _id: 'tasks' } });
    await waitFor('signalled on the new stream', () => woken.length === 5);
    expect(woken[4]).toBe('tasks');
    await signal.stop();
    const openedAtStop = opened;
    events.push({ documentKey: { _id: 'tasks' } });
    await new Promise((r) => setTimeout(r, 50));
    expect(woken).toHaveLength(5);
    expect(opened).toBe(openedAtStop);
  });
});
