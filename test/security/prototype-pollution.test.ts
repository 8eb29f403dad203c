// Security: no user-supplied key or path reaches `__proto__`, `constructor` or `prototype`. A
// stamped push whose `_stamps` held `title.__proto__.toString` once deleted
// Object.prototype.toString in the gateway process, and every token was refused from then on.
// Pushes here go over HTTP and graphql-ws to a real gateway; the prototype, authentication and
// MongoDB are checked afterwards. Unit tests for protocol/paths.ts at the end.
import { createClient } from 'graphql-ws/client';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { Gateway } from '../../gateway/server.ts';
import { HybridLogicalClock } from '../../protocol/hlc.ts';
import { syncOperations } from '../../protocol/operations.ts';
import { getPath, leafPaths, setPath, unsafeKeyPath } from '../../protocol/paths.ts';
import { cleanup, graphqlHttp, newTask, openDb, rulesFixture, startTestGateway, testToken } from '../helpers/harness.ts';

afterEach(cleanup);

const prototypeKeys = () => Reflect.ownKeys(Object.prototype).map(String).sort();
const KEYS_BEFORE = prototypeKeys();
const STAMP = new HybridLogicalClock('attacker').tick();
const BAD_ROW = (id: string, message: string) => ({ id, code: 'BAD_ROW', field: null, message, realmCode: null });

/** The victim's task, owned by ann (owner-only rules: nobody else may write it). */
async function victimGateway() {
  const gateway = await startTestGateway({ rulesPath: rulesFixture('owner-only') });
  const task = { ...newTask({ id: 'victim', ownerId: 'ann', assigneeIds: ['ann'], minutesLogged: 5 }), _deleted: false };
  const seeded = await gateway.collections.get('tasks')!.writer.push([{ assumedMasterState: null, newDocumentState: task }]);
  expect(seeded.rejected).toEqual([]);
  return { gateway, task, ops: syncOperations(gateway.model.collections.find((c) => c.name === 'tasks')!) };
}

/** Everything MongoDB holds for the collections, to compare before and after. */
async function snapshot(gateway: Gateway & { database: string }) {
  const db = await openDb(gateway.database);
  const collections = (await db.listCollections().toArray()).map((c) => c.name).sort();
  return { collections, tasks: await db.collection('tasks').find().sort({ _id: 1 }).toArray(), projects: await db.collection('projects').find().toArray() };
}

/** The gateway still works for everyone: another user authenticates and reads. */
async function stillServes(gateway: Gateway, ops: ReturnType<typeof syncOperations>) {
  expect(({}).toString()).toBe('[object Object]');
  expect(Object.prototype.toString).toBeTypeOf('function');
  expect(prototypeKeys()).toEqual(KEYS_BEFORE);
  expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  const ann = await testToken('ann');
  expect((await graphqlHttp(gateway.httpUrl, '{ viewer { id } }', {}, ann)).data).toEqual({ viewer: { id: 'ann' } });
  const pulled = await graphqlHttp(gateway.httpUrl, ops.pull, { checkpoint: null, limit: 10 }, ann);
  expect(pulled.errors).toBeUndefined();
  expect(pulled.data!.pullTasks.documents.map((d: { id: string }) => d.id)).toEqual(['victim']);
  const carl = await testToken('carl');
  expect((await graphqlHttp(gateway.httpUrl, '{ viewer { id } }', {}, carl)).data).toEqual({ viewer: { id: 'carl' } });
}

/** JSON as an attacker writes it: `JSON.parse` makes `__proto__` an own key. */
const raw = (json: string): Record<string, unknown> => JSON.parse(json) as Record<string, unknown>;

describe('prototype pollution', () => {
  it('refuses the attack (a stamp path title.__proto__.toString) against an id the user may not write, over HTTP and graphql-ws', async () => {
    const { gateway, task, ops } = await victimGateway();
    const before = await snapshot(gateway);
    const attack = { rows: [{ assumedMasterState: null, newDocumentState: { ...task, title: 'x', _stamps: { 'title.__proto__.toString': STAMP } } }] };
    const expected = { conflicts: [], rejected: [BAD_ROW('victim', 'newDocumentState._stamps: "title.__proto__.toString" is not a field of Task')] };

    const overHttp = await graphqlHttp(gateway.httpUrl, ops.push, attack, await testToken('mallory'));
    expect(overHttp).toEqual({ data: { pushTasks: expected } });

    const ws = createClient({ url: gateway.wsUrl, webSocketImpl: WebSocket, retryAttempts: 0, connectionParams: { authToken: await testToken('mallory') } });
    try {
      const overWs = await new Promise((resolve, reject) => ws.subscribe({ query: ops.push, variables: attack }, { next: resolve, error: reject, complete: () => {} }));
      expect(overWs).toEqual({ data: { pushTasks: expected } });
    } finally {
      await ws.dispose();
    }
    // Also as the owner, who may write the document: the path is refused before permissions.
    expect((await graphqlHttp(gateway.httpUrl, ops.push, attack, await testToken('ann'))).data!.pushTasks).toEqual(expected);

    await stillServes(gateway, ops);
    expect(await snapshot(gateway)).toEqual(before);
  });

  it('refuses every variant with the exact rejection, and nothing changes', async () => {
    const { gateway, task, ops } = await victimGateway();
    const before = await snapshot(gateway);
    const body = JSON.stringify({ ...task, title: 'x' }).slice(1, -1); // the task's fields, to splice into raw JSON
    const variants: Array<[string, Record<string, unknown>, string]> = [
      ['a top-level stamp path __proto__', { assumedMasterState: null, newDocumentState: raw(`{${body}, "_stamps": {"__proto__": "${STAMP}"}}`) }, 'newDocumentState._stamps: "__proto__" is not a field of Task'],
      ['a stamp path constructor.prototype.x', { assumedMasterState: null, newDocumentState: { ...task, _stamps: { 'constructor.prototype.x': STAMP } } }, 'newDocumentState._stamps: "constructor.prototype.x" is not a field of Task'],
      ['a stamp path into a list', { assumedMasterState: null, newDocumentState: { ...task, _stamps: { 'checklist.0.__proto__': STAMP } } }, 'newDocumentState._stamps: "checklist.0.__proto__" is not a field of Task'],
      ['a stamp path on a field the type lacks', { assumedMasterState: null, newDocumentState: { ...task, _stamps: { toString: STAMP } } }, 'newDocumentState._stamps: "toString" is not a field of Task'],
      ['a document key __proto__', { assumedMasterState: null, newDocumentState: raw(`{${body}, "__proto__": {"toString": null, "polluted": 1}}`) }, 'newDocumentState.__proto__: "__proto__" may not be used as a key'],
      ['a stamped document key __proto__', { assumedMasterState: null, newDocumentState: raw(`{${body}, "__proto__": {"polluted": 1}, "_stamps": {"title": "${STAMP}"}}`) }, 'newDocumentState.__proto__: "__proto__" may not be used as a key'],
      ['a nested document key constructor', { assumedMasterState: null, newDocumentState: raw(`{${body}, "checklist": [{"text": "a", "done": false, "constructor": {"prototype": {"polluted": 1}}}]}`) }, 'newDocumentState.checklist.0.constructor: "constructor" may not be used as a key'],
      ['an assumedMasterState key __proto__', { assumedMasterState: raw(`{${body}, "__proto__": {"polluted": 1}}`), newDocumentState: { ...task, title: 'y' } }, 'assumedMasterState.__proto__: "__proto__" may not be used as a key'],
      ['a counter state with device id __proto__', { assumedMasterState: null, newDocumentState: raw(`{${body}, "_stamps": {"minutesLogged": {"__proto__": [1, 0]}}}`) }, 'newDocumentState._stamps: "minutesLogged" names a device "__proto__" that is not a device id'],
      ['a counter state with device id constructor', { assumedMasterState: null, newDocumentState: { ...task, _stamps: { minutesLogged: { constructor: [1, 0] } } } }, 'newDocumentState._stamps: "minutesLogged" names a device "constructor" that is not a device id'],
      ['a set element key __proto__', { assumedMasterState: null, newDocumentState: raw(`{${body}, "_stamps": {"assigneeIds": {"add": {"__proto__": {"dev": "${STAMP}"}}, "remove": {}}}}`) }, 'newDocumentState._stamps: "assigneeIds" names an element "__proto__" that is not a JSON-encoded ID, String, Int, Float, Boolean or enum value'],
      ['a set element key prototype', { assumedMasterState: null, newDocumentState: { ...task, _stamps: { assigneeIds: { add: {}, remove: { prototype: { dev: STAMP } } } } } }, 'newDocumentState._stamps: "assigneeIds" names an element "prototype" that is not a JSON-encoded ID, String, Int, Float, Boolean or enum value'],
      ['a set device id __proto__', { assumedMasterState: null, newDocumentState: raw(`{${body}, "_stamps": {"assigneeIds": {"add": {"\\"ann\\"": {"__proto__": "${STAMP}"}}, "remove": {}}}}`) }, 'newDocumentState._stamps: "assigneeIds" names a device "__proto__" that is not a device id'],
      ['a stamp whose device is __proto__', { assumedMasterState: null, newDocumentState: { ...task, _stamps: { title: STAMP.replace('attacker', '__proto__') } } }, 'newDocumentState._stamps: "title" must hold a clock stamp'],
    ];
    const token = await testToken('mallory');
    for (const [what, row, message] of variants) {
      const body = JSON.stringify({ query: ops.push, variables: { rows: [row] } });
      if (/(key|path|id) __proto__/.test(what)) expect(body, what).toContain('"__proto__"'); // sent as an own key
      const result = await graphqlHttp(gateway.httpUrl, ops.push, { rows: [row] }, token);
      expect(result, what).toEqual({ data: { pushTasks: { conflicts: [], rejected: [BAD_ROW('victim', message)] } } });
      expect(prototypeKeys(), what).toEqual(KEYS_BEFORE);
    }
    // The owner gets the same answers: it is the row, not the user, that is refused.
    const ann = await testToken('ann');
    for (const [what, row, message] of variants) {
      expect((await graphqlHttp(gateway.httpUrl, ops.push, { rows: [row] }, ann)).data!.pushTasks.rejected, what).toEqual([BAD_ROW('victim', message)]);
    }

    await stillServes(gateway, ops);
    expect(await snapshot(gateway)).toEqual(before);
  });

  it('refuses filters and sync views with those keys', async () => {
    const { gateway, ops } = await victimGateway();
    const ann = await testToken('ann');
    for (const filter of [raw('{"__proto__": {"polluted": 1}}'), { constructor: 'x' }, { 'title.__proto__': 'x' }, { 'constructor.prototype': 'x' }]) {
      const listed = await graphqlHttp(gateway.httpUrl, 'query ($filter: JSONObject) { tasks(filter: $filter) { id } }', { filter }, ann);
      expect(listed.errors?.[0]?.extensions, JSON.stringify(filter)).toMatchObject({ code: 'BAD_QUERY' });
      const pulled = await graphqlHttp(gateway.httpUrl, ops.pull, { checkpoint: null, limit: 10, view: [filter] }, ann);
      expect(pulled.errors?.[0]?.extensions, JSON.stringify(filter)).toMatchObject({ code: 'BAD_QUERY' });
    }
    await stillServes(gateway, ops);
  });
});

describe('paths', () => {
  it('never walk into, read or create __proto__, constructor or prototype', () => {
    const doc = raw('{"title": "t", "__proto__": {"polluted": 1}, "meta": {"a": 1, "constructor": {"prototype": {"polluted": 1}}}}');
    expect(leafPaths(doc)).toEqual(['title', 'meta.a']);
    expect(getPath(doc, '__proto__')).toBeUndefined();
    expect(getPath(doc, 'meta.constructor.prototype')).toBeUndefined();
    expect(getPath({ title: 't' }, 'title.constructor')).toBeUndefined();
    expect(getPath({ meta: {} }, 'meta.toString')).toBeUndefined(); // inherited: not the document's
    expect(getPath({ meta: { a: 1 } }, 'meta.a')).toBe(1);

    for (const path of ['title.__proto__.toString', '__proto__.toString', 'constructor.prototype.toString', 'meta.__proto__.polluted', 'prototype']) {
      const target: Record<string, unknown> = { title: 't', meta: {} };
      setPath(target, path, undefined);
      setPath(target, path, 'polluted');
      expect(target, path).toEqual({ title: 't', meta: {} });
    }
    expect(Object.prototype.toString).toBeTypeOf('function');
    expect(prototypeKeys()).toEqual(KEYS_BEFORE);
  });

  it('set and delete own properties, creating plain objects on the way', () => {
    const target: Record<string, unknown> = { meta: 'scalar' };
    setPath(target, 'meta.b.c', 1);
    expect(target).toEqual({ meta: { b: { c: 1 } } });
    expect(Object.getPrototypeOf(target.meta)).toBe(Object.prototype);
    setPath(target, 'meta.b.c', undefined);
    expect(target).toEqual({ meta: { b: {} } });
    // a null-prototype object (graphql-js builds those from literals) works the same
    const bare = Object.assign(Object.create(null) as Record<string, unknown>, { a: { b: 1 } });
    expect(getPath(bare, 'a.b')).toBe(1);
    setPath(bare, 'a.c', 2);
    expect(leafPaths(bare)).toEqual(['a.b', 'a.c']);
  });

  it('find unsafe keys at any depth, in objects and lists', () => {
    expect(unsafeKeyPath({ a: 1, b: [{ c: 2 }] })).toBeNull();
    expect(unsafeKeyPath(raw('{"a": {"__proto__": 1}}'))).toBe('a.__proto__');
    expect(unsafeKeyPath({ list: [{}, { constructor: 1 }] })).toBe('list.1.constructor');
    expect(unsafeKeyPath({ prototype: 1 })).toBe('prototype');
    expect(unsafeKeyPath('__proto__')).toBeNull(); // values are not keys
    let deep: Record<string, unknown> = { __proto_: 1 };
    for (let i = 0; i < 100_000; i++) deep = { d: deep };
    expect(unsafeKeyPath(deep)).toBeNull(); // no stack overflow
  });
});
