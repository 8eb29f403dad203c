// The change-stream source of outside changes (gateway/store/outside-changes.ts), the MongoDB
// path. No MongoDB server can run on this machine and FerretDB has no change streams, so the
// stream here is scripted: it replays an event log from a resume token as a server does. Its
// resume points go to the test FerretDB through the driver. What this checks is the source's
// own logic: where it starts, when it stores its point, what it does with a failed apply and
// with a point the server no longer has. (With MONGODB_URI set to a replica set, the
// outside-writers tests run the real thing.)
import { MongoServerError, type Db, type MongoClient } from 'mongodb';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { detectOutsideChangeSource, type OutsideChange, type OutsideChangeSource } from '../gateway/store/outside-changes.ts';
import { cleanup, openDb, uniqueName, waitFor } from './helpers/harness.ts';

afterEach(cleanup);

interface Token {
  n: number;
}

/** Change streams over one event log: a stream opened after token n returns events n+1, n+2, … */
class ScriptedChangeStreams {
  readonly events: Array<{ _id: Token; operationType: string; ns: { db: string; coll: string }; documentKey: { _id: unknown } }> = [];
  readonly opened: Array<{ startAfter?: Token }> = [];
  /** Makes the next stream fail as a server does when the point is gone from its history. */
  failNextOpen: MongoServerError | null = null;

  add(operationType: 'insert' | 'update' | 'replace' | 'delete', id: string): void {
    this.events.push({ _id: { n: this.events.length + 1 }, operationType, ns: { db: 'app', coll: 'tasks' }, documentKey: { _id: id } });
  }

  db(): Db {
    return { databaseName: 'app', watch: (_pipeline: unknown, options: { startAfter?: Token }) => this.open(options) } as unknown as Db;
  }

  private open(options: { startAfter?: Token }) {
    this.opened.push({ ...(options.startAfter ? { startAfter: options.startAfter } : {}) });
    const failure = this.failNextOpen;
    this.failNextOpen = null;
    let position = options.startAfter ? options.startAfter.n : this.events.length;
    let closed = false;
    return {
      get closed() {
        return closed;
      },
      get resumeToken(): Token {
        return { n: position };
      },
      bufferedCount: () => this.events.length - position,
      tryNext: async () => {
        if (failure) throw failure;
        if (!closed && position < this.events.length) return this.events[position++];
        await new Promise((r) => setTimeout(r, 10));
        return null;
      },
      close: async () => {
        closed = true;
      },
    };
  }
}

const log = pino({ level: 'silent' });

describe('the change-stream source (scripted stream)', () => {
  it('starts from now, stores its point after each applied batch, resumes after it, and replays a batch whose apply failed', async () => {
    const streams = new ScriptedChangeStreams();
    const resumeStore = (await openDb(uniqueName('stream'))).collection<{ _id: string; [k: string]: unknown }>('_tributary_resume');
    const stored = async () => (await resumeStore.findOne({ _id: 'outside-changes:change-stream:app' }))?.token as Token | undefined;
    const open = async (): Promise<{ source: OutsideChangeSource; applied: OutsideChange[] }> => {
      const source = await detectOutsideChangeSource({} as MongoClient, streams.db(), { collections: ['tasks'], resumeStore, log, maxAwaitTimeMS: 10 });
      expect(source.kind).toBe('change-stream');
      return { source, applied: [] };
    };

    streams.add('insert', 'before'); // made before the first start: the full pass's, not the stream's
    const first = await open();
    let failOnce = false;
    const lost: string[] = [];
    await first.source.start({
      apply: async (changes) => {
        if (failOnce) {
          failOnce = false;
          throw new Error('the store was unreachable');
        }
        first.applied.push(...changes);
      },
      lost: async (reason) => void lost.push(reason),
    });
    expect(streams.opened.at(-1)).toEqual({});
    expect(await stored()).toEqual({ n: 1 }); // "now", stored at once

    streams.add('insert', 'a');
    streams.add('update', 'a');
    streams.add('delete', 'b');
    await waitFor('the batch is applied', () => first.applied.length >= 2);
    expect(first.applied).toEqual([
      { collection: 'tasks', id: 'a', op: 'upsert' },
      { collection: 'tasks', id: 'b', op: 'delete' },
    ]);
    await waitFor('its point is stored', async () => (await stored())?.n === 4);

    // An apply that fails: the same change comes again, and the point does not pass it until it is applied.
    failOnce = true;
    streams.add('replace', 'c');
    await waitFor('the change is applied on the second try', () => first.applied.some((c) => c.id === 'c'));
    expect(first.applied.filter((c) => c.id === 'c')).toHaveLength(1);
    expect(streams.opened.at(-1)).toEqual({ startAfter: { n: 4 } });
    await waitFor('its point is stored', async () => (await stored())?.n === 5);
    await first.source.stop();

    // A change made while stopped; a restart resumes after the stored point, nothing twice.
    streams.add('insert', 'd');
    const second = await open();
    await second.source.start({ apply: async (changes) => void second.applied.push(...changes), lost: async (reason) => void lost.push(reason) });
    expect(streams.opened.at(-1)).toEqual({ startAfter: { n: 5 } });
    await waitFor('the change made while stopped is applied', () => second.applied.length >= 1);
    expect(second.applied).toEqual([{ collection: 'tasks', id: 'd', op: 'upsert' }]);
    await second.source.stop();
    expect(lost).toEqual([]);
  });

  it('reports a point the server no longer has as lost, then follows from now', async () => {
    const streams = new ScriptedChangeStreams();
    const resumeStore = (await openDb(uniqueName('stream'))).collection<{ _id: string; [k: string]: unknown }>('_tributary_resume');
    await resumeStore.insertOne({ _id: 'outside-changes:change-stream:app', token: { n: 0 } });
    streams.add('insert', 'rolled-off');
    const source = await detectOutsideChangeSource({} as MongoClient, streams.db(), { collections: ['tasks'], resumeStore, log, maxAwaitTimeMS: 10 });
    streams.failNextOpen = new MongoServerError({ message: 'Resume of change stream was not possible, as the resume point may no longer be in the oplog', code: 286 });
    const lost: string[] = [];
    const applied: OutsideChange[] = [];
    await source.start({ apply: async (changes) => void applied.push(...changes), lost: async (reason) => void lost.push(reason) });
    await waitFor('the loss is reported', () => lost.length === 1);
    expect(lost[0]).toMatch(/286/);
    await waitFor('it follows again from now', () => streams.opened.length >= 3 && streams.opened.at(-1)!.startAfter === undefined);
    streams.add('insert', 'after');
    await waitFor('a later change is applied', () => applied.length >= 1);
    expect(applied).toEqual([{ collection: 'tasks', id: 'after', op: 'upsert' }]);
    await source.stop();
  });
});
