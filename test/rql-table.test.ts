// Issue 13: every RQL form Flexible Sync accepts (point 7), each against a fixed dataset with
// the ids it must select, through the SDK's subscription path (a real SDK client subscribing to a
// real gateway on FerretDB); and each refusal of points 8 to 10 with its message, as the SDK
// reports it (BAD_QUERY, Realm's 226). The indexed queryable field (point 9) is also checked where
// the gateway accepts subscriptions, with a client whose schema does not know of it.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TributaryClient } from '../client-sdk/index.ts';
import type { Gateway } from '../gateway/server.ts';
import { syncOperations } from '../protocol/operations.ts';
import { cleanup, graphqlHttp, openTestClient, SCHEMA, startTestGateway, testToken, waitFor } from './helpers/harness.ts';

// The project's schema (tasks) and two more collections: BSON-typed fields for oid(), uuid(),
// Long and Boolean, and one with an indexed queryable field.
const SDL = `${SCHEMA}
type Item @collection(name: "items") {
  id: ObjectId!
  key: UUID @queryable
  big: Long @queryable
  done: Boolean @queryable
  ratio: Float @queryable
}

type Note @collection(name: "notes") {
  id: ID!
  teamId: String! @indexedQueryable
  body: String @queryable
}
`;

const OID_1 = '64b7f0a1c2d3e4f5a6b7c8d1';
const OID_2 = '64b7f0a1c2d3e4f5a6b7c8d2';
const UUID_1 = '3b241101-e2bb-4255-8caf-4136c566a961';
const UUID_2 = '3b241101-e2bb-4255-8caf-4136c566a962';

const task = (id: string, fields: Record<string, unknown>) => ({ id, ownerId: 'ann', title: id, status: 'TODO', priority: 3, tags: [], ...fields });
const DATA: Record<string, Array<Record<string, unknown>>> = {
  tasks: [
    task('t1', { title: 'Buy milk', ownerId: 'ann', status: 'TODO', priority: 1, tags: ['home'], dueDate: '2024-03-01T10:30:00.000Z', assigneeIds: ['ann'], projectId: 'p1' }),
    task('t2', { title: 'buy bread', ownerId: 'bob', status: 'DONE', priority: 3, tags: ['home', 'shop'], dueDate: '2024-03-01T10:30:00.001Z', assigneeIds: ['ann', 'bob'] }),
    task('t3', { title: 'Write report', ownerId: 'cat', status: 'BLOCKED', priority: 5, tags: [], projectId: 'p2' }),
    task('t4', { title: 'Call Bob', ownerId: 'ann', status: 'IN_PROGRESS', priority: 2, tags: ['work', 'urgent'], dueDate: '2024-06-15T00:00:00.000Z' }),
    task('t5', { title: 'Pay rent', ownerId: 'bob', status: 'TODO', priority: 4, tags: ['home', 'work', 'urgent'], dueDate: '1969-12-31T23:59:59.000Z' }),
  ],
  items: [
    { id: OID_1, key: UUID_1, big: '9007199254740993', done: true, ratio: 0.5 },
    { id: OID_2, key: UUID_2, big: '5', done: false, ratio: 2 },
  ],
  notes: [
    { id: 'n1', teamId: 'a', body: 'x' },
    { id: 'n2', teamId: 'b', body: 'y' },
    { id: 'n3', teamId: 'a', body: 'y' },
  ],
};
const ALL_TASKS = ['t1', 't2', 't3', 't4', 't5'];

// [collection, RQL, arguments, the ids it selects]
const FORMS: Array<[string, string, unknown[], string[]]> = [
  // nil and null, in any case
  ['tasks', 'dueDate == nil', [], ['t3']],
  ['tasks', 'dueDate != NIL', [], ['t1', 't2', 't4', 't5']],
  ['tasks', 'projectId == null', [], ['t2', 't4', 't5']],
  ['tasks', 'projectId != Null', [], ['t1', 't3']],
  ['tasks', 'nil == dueDate', [], ['t3']],
  // date literals
  ['tasks', 'dueDate == 2024-03-01@10:30:00', [], ['t1']],
  ['tasks', 'dueDate == 2024-03-01T10:30:00', [], ['t1']],
  ['tasks', 'dueDate == 2024-03-01@10:30:00:1000000', [], ['t2']],
  ['tasks', 'dueDate > 2024-03-01T10:30:00:500', [], ['t2', 't4']],
  ['tasks', 'dueDate == T1709289000:0', [], ['t1']],
  ['tasks', 'dueDate == T1709289000:1000000', [], ['t2']],
  ['tasks', 'dueDate == T-1:0', [], ['t5']],
  ['tasks', 'dueDate < T0:0', [], ['t5']],
  ['tasks', 'dueDate >= $0', [new Date('2024-03-01T10:30:00.001Z')], ['t2', 't4']],
  // BETWEEN
  ['tasks', 'priority BETWEEN {2, 4}', [], ['t2', 't4', 't5']],
  ['tasks', 'dueDate between {2024-03-01@00:00:00, 2024-03-31@00:00:00}', [], ['t1', 't2']],
  ['tasks', "ALL tags BETWEEN {'h', 'w'}", [], ['t1', 't2', 't3']],
  // ANY / SOME / ALL / NONE, and the implicit ANY of a list comparison
  ['tasks', "ANY tags == 'work'", [], ['t4', 't5']],
  ['tasks', "SOME tags == 'home'", [], ['t1', 't2', 't5']],
  ['tasks', "any tags == 'urgent'", [], ['t4', 't5']],
  ['tasks', "ALL tags == 'home'", [], ['t1', 't3']],
  ['tasks', "NONE tags == 'home'", [], ['t3', 't4']],
  ['tasks', "none tags BEGINSWITH 'w'", [], ['t1', 't2', 't3']],
  ['tasks', "tags == 'shop'", [], ['t2']],
  ['tasks', "tags != 'home'", [], ['t2', 't4', 't5']],
  ['tasks', "'ann' IN assigneeIds", [], ['t1', 't2']],
  ['tasks', "'urgent' in tags", [], ['t4', 't5']],
  ['tasks', 'ANY priority == 5', [], ['t3']],
  // @count / @size
  ['tasks', 'tags.@count == 2', [], ['t2', 't4']],
  ['tasks', 'tags.@size >= 3', [], ['t5']],
  ['tasks', 'assigneeIds.@count == 0', [], ['t3', 't4', 't5']],
  // oid(), uuid() and the other BSON types
  ['items', `_id == oid(${OID_1})`, [], [OID_1]],
  ['items', `_id == oid(${OID_2.toUpperCase()})`, [], [OID_2]],
  ['items', `_id IN {oid(${OID_1}), oid(${OID_2})}`, [], [OID_1, OID_2]],
  ['items', `key == uuid(${UUID_2})`, [], [OID_2]],
  ['items', `key != uuid(${UUID_2})`, [], [OID_1]],
  ['items', 'big > 10', [], [OID_1]],
  ['items', "big == '9007199254740993'", [], [OID_1]],
  ['items', 'done == true', [], [OID_1]],
  ['items', 'done == FALSE', [], [OID_2]],
  ['items', 'ratio < 1', [], [OID_1]],
  // _id as the key's name
  ['tasks', "_id == 't3'", [], ['t3']],
  ['tasks', "_id IN {'t1', 't4'}", [], ['t1', 't4']],
  // string operators and ==[c]
  ['tasks', "title ==[c] 'BUY MILK'", [], ['t1']],
  ['tasks', "title !=[c] 'buy milk'", [], ['t2', 't3', 't4', 't5']],
  ['tasks', "title BEGINSWITH[c] 'buy'", [], ['t1', 't2']],
  ['tasks', "title CONTAINS 'rent'", [], ['t5']],
  ['tasks', "title ENDSWITH 'Bob'", [], ['t4']],
  ['tasks', "title LIKE '?uy *'", [], ['t1', 't2']],
  // <>, =, &&, ||, !
  ['tasks', 'priority <> 3', [], ['t1', 't3', 't4', 't5']],
  ['tasks', 'priority = 3', [], ['t2']],
  ['tasks', "ownerId == 'ann' && priority > 1", [], ['t4']],
  ['tasks', "ownerId == 'cat' || priority == 1", [], ['t1', 't3']],
  ['tasks', '!(priority > 1)', [], ['t1']],
  ['tasks', "! status == 'TODO' && priority < 3", [], ['t4']],
  // TRUEPREDICATE, FALSEPREDICATE and keyword case
  ['tasks', 'TRUEPREDICATE', [], ALL_TASKS],
  ['tasks', 'truePredicate', [], ALL_TASKS],
  ['tasks', 'FALSEPREDICATE', [], []],
  ['tasks', "status == 'TODO' and priority < 3", [], ['t1']],
  ['tasks', "status == 'DONE' Or priority == 5", [], ['t2', 't3']],
  ['tasks', "not status IN {'TODO', 'DONE'}", [], ['t3', 't4']],
  ['tasks', "NOT (status == 'TODO' OR priority == 1)", [], ['t2', 't3', 't4']],
  ['tasks', 'priority > $0 AND ownerId == $1', [2, 'bob'], ['t2', 't5']],
  // the indexed queryable field, constrained as it must be
  ['notes', "teamId == 'a'", [], ['n1', 'n3']],
  ['notes', "teamId IN {'a', 'b'} AND body == 'y'", [], ['n2', 'n3']],
  ['notes', "body != 'x' && teamId == $0", ['a'], ['n3']],
];

const INDEXED = 'Note.teamId is the indexed queryable field: every Flexible Sync subscription on Note must constrain it at the top level with == or IN';

// [point, collection, RQL, arguments, what the message says]
const REFUSALS: Array<[string, string, string, unknown[], string]> = [
  ['8', 'tasks', "priority == 'high'", [], 'cannot compare Task.priority (Int) with "high" (a string)'],
  ['8', 'tasks', 'dueDate > 5', [], 'cannot compare Task.dueDate (DateTime) with 5 (a number)'],
  ['8', 'tasks', 'title == $0', [5], 'cannot compare Task.title (String) with 5 (a number)'],
  ['8', 'tasks', 'status == true', [], 'cannot compare Task.status (TaskStatus) with true (a boolean)'],
  ['8', 'tasks', 'tags == 1', [], 'cannot compare Task.tags ([String]) with 1 (a number)'],
  ['8', 'tasks', "priority CONTAINS '1'", [], '$regex on Task.priority: Int values are not text'],
  ['8', 'items', 'done == 1', [], 'cannot compare Item.done (Boolean) with 1 (a number)'],
  ['8', 'items', "big == 'many'", [], 'cannot compare Item.big (Long) with "many" (a string): "many" is not a 64-bit integer'],
  ['8', 'items', "_id == 'xyz'", [], 'cannot compare Item.id (ObjectId) with "xyz" (a string): "xyz" is not an ObjectId'],
  ['8', 'tasks', "description == 'x'", [], '"description" is not a queryable field'],
  ['9', 'notes', "body == 'x'", [], INDEXED],
  ['9', 'notes', "teamId == 'a' OR body == 'x'", [], INDEXED],
  ['9', 'notes', "teamId != 'a'", [], INDEXED],
  ['9', 'notes', "NOT teamId != 'a'", [], INDEXED],
  ['9', 'notes', 'TRUEPREDICATE', [], INDEXED],
  ['10', 'tasks', 'TRUEPREDICATE SORT(priority ASC)', [], 'SORT is not supported in Flexible Sync subscriptions'],
  ['10', 'tasks', 'TRUEPREDICATE DISTINCT(status)', [], 'DISTINCT is not supported in Flexible Sync subscriptions'],
  ['10', 'tasks', "status == 'TODO' LIMIT(5)", [], 'LIMIT is not supported in Flexible Sync subscriptions'],
  ['10', 'tasks', 'SUBQUERY(checklist, $c, $c.done == true).@count > 0', [], 'SUBQUERY is not supported in Flexible Sync subscriptions'],
  ['10', 'tasks', 'tags.@avg > 1', [], 'aggregates (@avg, @min, @max, @sum) are not supported in Flexible Sync subscriptions'],
  ['10', 'tasks', 'checklist.@max > 1', [], 'aggregates (@avg, @min, @max, @sum) are not supported'],
  ['10', 'tasks', 'checklist.done == true', [], 'Task.checklist.done: Flexible Sync subscriptions cannot query through embedded objects or links'],
  ['10', 'tasks', "ANY checklist.text == 'x'", [], 'Flexible Sync subscriptions cannot query through embedded objects or links'],
  ['10', 'tasks', "{'a', 'b'} IN tags", [], 'comparing a list with a list is not supported in Flexible Sync subscriptions'],
  ['10', 'tasks', "tags IN {'a', 'b'}", [], 'comparing a list with a list is not supported in Flexible Sync subscriptions'],
  ['10', 'tasks', 'tags == $0', [['a']], 'comparing a list with a list is not supported'],
  ['7', 'tasks', 'ALL priority == 1', [], "The keypath following 'ALL' must contain a list"],
  ['7', 'tasks', 'NONE ownerId == $0', ['ann'], "The keypath following 'NONE' must contain a list"],
  ['7', 'tasks', "tags BETWEEN {'a', 'b'}", [], 'only ALL is supported with "BETWEEN" on a list'],
  ['7', 'tasks', "ANY tags BETWEEN {'a', 'b'}", [], 'only ALL is supported with "BETWEEN" on a list, not ANY'],
  ['7', 'tasks', 'tags == nil', [], 'comparing the elements of a list with nil'],
];

let gateway: Gateway;
let client: TributaryClient;
let folder: string;

beforeAll(async () => {
  folder = mkdtempSync(join(tmpdir(), 'rql-table-'));
  const schemaPath = join(folder, 'schema.graphql');
  writeFileSync(schemaPath, SDL);
  gateway = await startTestGateway({ schemaPath });
  for (const [collection, docs] of Object.entries(DATA)) {
    const result = await gateway.collections.get(collection)!.writer.push(docs.map((d) => ({ assumedMasterState: null, newDocumentState: { ...d, _deleted: false } })));
    expect(result.rejected, collection).toEqual([]);
  }
  client = await openTestClient(gateway.wsUrl, { schema: SDL, flexibleSync: true });
}, 60_000);

afterAll(async () => {
  await cleanup();
  rmSync(folder, { recursive: true, force: true });
});

async function localIds(c: TributaryClient, collection: string): Promise<string[]> {
  return (await c.collections[collection]!.find().exec()).map((d) => d.id as string).sort();
}

describe('every RQL form Flexible Sync accepts, through the SDK against a real gateway', () => {
  it.each(FORMS)('%s: %s', async (collection, query, args, expected) => {
    await client.subscriptions.update((m) => {
      m.removeAll();
      m.add(collection, query, { args });
    });
    expect(client.subscriptions.state).toBe('complete');
    for (const other of Object.keys(DATA)) {
      expect(await localIds(client, other), other).toEqual(other === collection ? [...expected].sort() : []);
    }
  });
});

describe('refusals, with their reasons, as the SDK reports them', () => {
  it.each(REFUSALS)('point %s: %s: %s', async (_point, collection, query, args, message) => {
    const failed = client.subscriptions.update((m) => {
      m.removeAll();
      m.add(collection, query, { args, name: 'refused' });
    });
    await expect(failed).rejects.toMatchObject({ code: 'BAD_QUERY', realmCode: 226 });
    await failed.catch((error: Error) => expect(error.message).toContain(message));
    expect(client.subscriptions.state).toBe('error');
    expect(client.subscriptions.error?.message).toContain(message);
  });

  it('point 9: the gateway refuses a view that leaves the indexed field open, from a client that does not check', async () => {
    // A client without the SDK's check: a plain pull whose view leaves Note.teamId open.
    const notes = gateway.model.collections.find((c) => c.name === 'notes')!;
    const ops = syncOperations(notes);
    const refused = await graphqlHttp(gateway.httpUrl, ops.pull, { checkpoint: null, limit: 10, view: [{ body: 'y' }] }, await testToken());
    expect(refused.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_QUERY', realmCode: 226 });
    expect(refused.errors?.[0]?.message).toContain(INDEXED);
    const constrained = await graphqlHttp(gateway.httpUrl, ops.pull, { checkpoint: null, limit: 10, view: [{ teamId: 'red', body: 'y' }] }, await testToken());
    expect(constrained.errors).toBeUndefined();
    // An SDK built from a schema without the @indexedQueryable is older than the gateway's: refused at connect.
    const unaware = await openTestClient(gateway.wsUrl, { schema: SDL.replace('teamId: String! @indexedQueryable', 'teamId: String! @queryable'), flexibleSync: true });
    const errors: Array<{ kind: string }> = [];
    unaware.errors$.subscribe((e) => errors.push(e));
    await waitFor('the outdated client is told', () => errors.find((e) => e.kind === 'schema'));
    await unaware.close();
  });
});
