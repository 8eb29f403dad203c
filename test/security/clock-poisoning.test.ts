// Security: a user cannot poison the gateway's clock. A stamp `0zzzzzzzzzz:zzzz:zzzz` on the
// user's own document, then one plain update, once made the collection's gateway clock emit
// malformed stamps for up to 60 s (the counter grew a fifth digit): another user's stamped push
// was refused with BAD_ROW for good, and unstamped inserts with set fields answered 500.
// Real gateway over HTTP, MongoDB read with the driver; unit tests for the clock at the end.
import { afterEach, describe, expect, it } from 'vitest';
import type { Gateway } from '../../gateway/server.ts';
import { formatStamp, HybridLogicalClock, MAX_COUNTER, MAX_OBSERVED_AHEAD_MS, MAX_WALL, parseStamp } from '../../protocol/hlc.ts';
import { syncOperations } from '../../protocol/operations.ts';
import { cleanup, graphqlHttp, newTask, openDb, startTestGateway, syncedDocument, testToken } from '../helpers/harness.ts';

afterEach(cleanup);

const POISON = '0zzzzzzzzzz:zzzz:zzzz';
const SKEW_MS = 60_000; // the test gateway's default

async function gatewayAndOps() {
  const gateway = await startTestGateway();
  return { gateway, ops: syncOperations(gateway.model.collections.find((c) => c.name === 'tasks')!) };
}

/** Every stamp stored in the collection, with where it is. */
async function storedStamps(gateway: Gateway & { database: string }): Promise<Array<[string, string]>> {
  const docs = await (await openDb(gateway.database)).collection('_tributary_sync_tasks').find().toArray();
  return docs.flatMap((doc) =>
    Object.entries((doc.stamps ? JSON.parse(doc.stamps as string) : {}) as Record<string, unknown>).flatMap(([path, state]): Array<[string, string]> => {
      if (typeof state === 'string') return [[`${doc._id}.${path}`, state]];
      const set = state as { add?: Record<string, Record<string, string>>; remove?: Record<string, Record<string, string>> };
      if (!set.add) return []; // a counter's state holds no stamps
      return [...Object.entries(set.add), ...Object.entries(set.remove ?? {})].flatMap(([k, m]) => Object.values(m).map((s): [string, string] => [`${doc._id}.${path}.${k}`, s]));
    }),
  );
}

/** Every stored stamp parses, and none the gateway issued is further ahead than the skew (plus a second). */
async function expectWellFormed(gateway: Gateway & { database: string }) {
  const stamps = await storedStamps(gateway);
  expect(stamps.length).toBeGreaterThan(0);
  for (const [where, stamp] of stamps) {
    const parsed = parseStamp(stamp);
    expect(parsed, `${where}: ${stamp}`).not.toBeNull();
    if (parsed!.node.startsWith('gw')) expect(parsed!.wall, `${where}: ${stamp}`).toBeLessThanOrEqual(Date.now() + SKEW_MS + 1_000);
  }
}

describe('clock poisoning', () => {
  it('survives the attack: a maximal stamp on the user’s own document, then one plain update', async () => {
    const { gateway, ops } = await gatewayAndOps();
    const mallory = await testToken('mallory');
    const own = newTask({ ownerId: 'mallory' });
    const poisoned = await graphqlHttp(gateway.httpUrl, ops.push, { rows: [{ assumedMasterState: null, newDocumentState: { ...own, _deleted: false, _stamps: { title: POISON } } }] }, mallory);
    expect(poisoned.data!.pushTasks.rejected).toEqual([]);
    const plain = await graphqlHttp(gateway.httpUrl, `mutation ($id: ID!) { updateTask(id: $id, set: { title: "plain" }) { title } }`, { id: own.id }, mallory);
    expect(plain).toEqual({ data: { updateTask: { title: 'plain' } } }); // later than the stored (clamped) stamp, so it applies
    await expectWellFormed(gateway);

    // Another user's stamped push of its own document.
    const bob = await testToken('bob');
    const device = new HybridLogicalClock('bobsdevice');
    const bobs = newTask({ ownerId: 'bob' });
    const stamped = await graphqlHttp(gateway.httpUrl, ops.push, { rows: [{ assumedMasterState: null, newDocumentState: { ...bobs, _deleted: false, _stamps: { title: device.tick(), status: device.tick() } } }] }, bob);
    expect(stamped).toEqual({ data: { pushTasks: { conflicts: [], rejected: [] } } });

    // An unstamped insert with a set field, as a plain mutation and as a stock RxDB push.
    const inserted = await graphqlHttp(gateway.httpUrl, `mutation ($input: TaskInput!) { insertTask(input: $input) { id assigneeIds } }`, { input: newTask({ ownerId: 'bob', assigneeIds: ['ann', 'bob'] }) }, bob);
    expect(inserted.errors).toBeUndefined();
    expect(inserted.data!.insertTask.assigneeIds).toEqual(['ann', 'bob']);
    const stock = newTask({ ownerId: 'bob', assigneeIds: ['carl'] });
    const pushed = await graphqlHttp(gateway.httpUrl, ops.push, { rows: [{ assumedMasterState: null, newDocumentState: { ...stock, _deleted: false } }] }, bob);
    expect(pushed).toEqual({ data: { pushTasks: { conflicts: [], rejected: [] } } });

    // What the gateway stamped (bob's inserts, in the window) comes back to a stamping client and
    // is pushed again with its next change: it must be accepted, not refused for good.
    const pulled = await graphqlHttp(gateway.httpUrl, ops.pull, { checkpoint: null, limit: 100, stamps: true }, bob);
    const stored = (pulled.data!.pullTasks.documents as Array<Record<string, unknown>>).find((d) => d.id === stock.id)!;
    for (const s of Object.values(stored._stamps as Record<string, unknown>)) if (typeof s === 'string') device.observe(s);
    const next = { ...stored, title: 'edited', _stamps: { ...(stored._stamps as object), title: device.tick() } };
    const again = await graphqlHttp(gateway.httpUrl, ops.push, { rows: [{ assumedMasterState: stored, newDocumentState: next }] }, bob);
    expect(again).toEqual({ data: { pushTasks: { conflicts: [], rejected: [] } } });
    // and a plain update of the poisoned document still works
    const later = await graphqlHttp(gateway.httpUrl, `mutation ($id: ID!) { updateTask(id: $id, set: { title: "plain 2", assigneeIds: ["x"] }) { title } }`, { id: own.id }, mallory);
    expect(later.errors).toBeUndefined();

    await expectWellFormed(gateway);
    const db = await openDb(gateway.database);
    expect(await db.collection('tasks').findOne({ _id: stock.id as never })).toMatchObject({ title: 'edited', assigneeIds: ['carl'] });
    // The poisoned stamp was pulled back to the skew on the way in.
    const attacker = (await syncedDocument(db, 'tasks', own.id))!._sync.stamps.title as string;
    expect(parseStamp(attacker)!.wall).toBeLessThanOrEqual(Date.now() + SKEW_MS + 1_000);
  });

  it('does not let far-future stamps in a set state, or a counter at its maximum, move the gateway’s clock', async () => {
    const { gateway, ops } = await gatewayAndOps();
    const mallory = await testToken('mallory');
    const own = newTask({ ownerId: 'mallory', assigneeIds: ['x'] });
    const stamps = { assigneeIds: { add: { '"x"': { zzzz: POISON } }, remove: {} }, status: formatStamp(Date.now(), MAX_COUNTER, 'zzzz') };
    const poisoned = await graphqlHttp(gateway.httpUrl, ops.push, { rows: [{ assumedMasterState: null, newDocumentState: { ...own, _deleted: false, _stamps: stamps } }] }, mallory);
    expect(poisoned.data!.pushTasks.rejected).toEqual([]);
    const plain = await graphqlHttp(gateway.httpUrl, `mutation ($id: ID!) { updateTask(id: $id, set: { status: DONE, assigneeIds: ["x", "y"] }) { status assigneeIds } }`, { id: own.id }, mallory);
    expect(plain).toEqual({ data: { updateTask: { status: 'DONE', assigneeIds: ['y', 'x'] } } }); // x's addition is the later one
    const inserted = await graphqlHttp(gateway.httpUrl, `mutation ($input: TaskInput!) { insertTask(input: $input) { id } }`, { input: newTask({ ownerId: 'bob', assigneeIds: ['ann'] }) }, await testToken('bob'));
    expect(inserted.errors).toBeUndefined();

    const stamped = (await storedStamps(gateway)).filter(([, s]) => parseStamp(s)?.node.startsWith('gw'));
    expect(stamped.length).toBeGreaterThan(0);
    // The status stamp at the counter maximum moved the clock to the next millisecond, no further.
    for (const [where, s] of stamped) expect(parseStamp(s)!.wall, where).toBeLessThanOrEqual(Date.now() + 1_000);
    await expectWellFormed(gateway);
  });
});

describe('hybrid logical clock bounds', () => {
  it('moves to the next millisecond instead of overflowing the counter', () => {
    const clock = new HybridLogicalClock('a', () => 1_000);
    const max = formatStamp(1_000, MAX_COUNTER, 'b');
    clock.observe(max);
    const next = clock.tick();
    expect(parseStamp(next)).toEqual({ wall: 1_001, counter: 0, node: 'a' });
    expect(next > max).toBe(true);

    // reaching the maximum by ticking in one frozen millisecond
    const frozen = new HybridLogicalClock('a', () => 5_000);
    frozen.observe(formatStamp(5_000, MAX_COUNTER - 1, 'b'));
    const issued = [frozen.tick(), frozen.tick(), frozen.tick()];
    expect(issued.map(parseStamp)).toEqual([
      { wall: 5_000, counter: MAX_COUNTER, node: 'a' },
      { wall: 5_001, counter: 0, node: 'a' },
      { wall: 5_001, counter: 1, node: 'a' },
    ]);
    expect([...issued].sort()).toEqual(issued);
  });

  it('does not follow a stamp far in the future beyond its bound', () => {
    const clock = new HybridLogicalClock('a', () => 1_000);
    clock.observe(POISON);
    expect(parseStamp(clock.tick())).toEqual({ wall: 1_000 + MAX_OBSERVED_AHEAD_MS, counter: 1, node: 'a' });

    const gatewayLike = new HybridLogicalClock('gw1', () => 1_000);
    gatewayLike.observe(POISON, SKEW_MS);
    expect(parseStamp(gatewayLike.tick())).toEqual({ wall: 1_000 + SKEW_MS, counter: 1, node: 'gw1' });
    // within the bound, a stamp is followed exactly
    const exact = new HybridLogicalClock('gw2', () => 1_000);
    exact.observe(formatStamp(1_000 + SKEW_MS, 7, 'b'), SKEW_MS);
    expect(parseStamp(exact.tick())).toEqual({ wall: 1_000 + SKEW_MS, counter: 8, node: 'gw2' });
    // malformed stamps are ignored
    exact.observe('0zzzzzzzzzz:10000:gw');
    exact.observe(42 as never);
    expect(parseStamp(exact.tick())).toEqual({ wall: 1_000 + SKEW_MS, counter: 9, node: 'gw2' });
  });

  it('never formats a malformed stamp', () => {
    expect(parseStamp(formatStamp(MAX_WALL, MAX_COUNTER, 'n'))).toEqual({ wall: MAX_WALL, counter: MAX_COUNTER, node: 'n' });
    expect(formatStamp(1.7, 0, 'n')).toBe(formatStamp(1, 0, 'n'));
    for (const [wall, counter, node] of [
      [MAX_WALL + 1, 0, 'n'],
      [-1, 0, 'n'],
      [Number.NaN, 0, 'n'],
      [Number.POSITIVE_INFINITY, 0, 'n'],
      [0, MAX_COUNTER + 1, 'n'],
      [0, -1, 'n'],
      [0, 0.5, 'n'],
      [0, 0, 'has space'],
      [0, 0, ''],
      [0, 0, '__proto__'],
    ] as Array<[number, number, string]>) {
      expect(() => formatStamp(wall, counter, node), `${wall} ${counter} ${node}`).toThrow(RangeError);
    }
    expect(parseStamp('0zzzzzzzzzz:zzzz:constructor')).toBeNull();
    expect(parseStamp('zzzzzzzzzzz:0000:n')).toBeNull(); // a wall no number holds exactly
    expect(parseStamp(null as never)).toBeNull();
    expect(() => new HybridLogicalClock('__proto__')).toThrow(RangeError);
  });
});
