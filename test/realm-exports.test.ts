// Issue 13: App Services exports (test/fixtures/realm-exports/, written from the documented
// layout) load as they are and mean what they meant in Atlas. Each valid app's decisions are
// checked through real SDK clients on a real gateway; each defect Atlas calls not Sync
// compatible is refused at load, naming the file, the namespace, the role's name and the key.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { TributaryClient } from '../client-sdk/index.ts';
import type { SyncError } from '../client-sdk/errors.ts';
import { loadRules } from '../gateway/rules/load.ts';
import { loadRulesForTesting } from '../gateway/rules/testing.ts';
import type { Gateway } from '../gateway/server.ts';
import { loadModel } from '../protocol/model.ts';
import { syncOperations } from '../protocol/operations.ts';
import { cleanup, graphqlHttp, openDb, openTestClient, startTestGateway, TEST_JWT, testToken, waitFor } from './helpers/harness.ts';

const EXPORTS = resolve(import.meta.dirname, 'fixtures/realm-exports');
const SCHEMA_PATH = join(EXPORTS, 'schema.graphql');
const SCHEMA = readFileSync(SCHEMA_PATH, 'utf8');
const MODEL = loadModel(SCHEMA);
const SERVICE = 'data_sources/mongodb-atlas';
const temps: string[] = [];

afterEach(cleanup);
afterAll(() => temps.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

type Gw = Gateway & { database: string };

/** A gateway on an export, pointed at its root or at its data source folder. */
async function gatewayOn(app: string, at: 'root' | 'service' = 'root'): Promise<Gw> {
  return startTestGateway({
    schemaPath: SCHEMA_PATH,
    rulesPath: at === 'root' ? join(EXPORTS, app) : join(EXPORTS, app, SERVICE),
    auth: { jwt: TEST_JWT, customData: { collection: 'User', userIdField: 'user_id' } },
    customDataPollMs: 100,
  });
}

const task = (id: string, fields: Record<string, unknown> = {}) => ({ id, owner_id: 'nobody', team: null, status: 'open', title: id, notes: null, budget: null, ...fields });

async function seed(gateway: Gw, collection: string, docs: Array<Record<string, unknown>>): Promise<void> {
  const result = await gateway.collections.get(collection)!.writer.push(docs.map((d) => ({ assumedMasterState: null, newDocumentState: { ...d, _deleted: false } })));
  expect(result.rejected).toEqual([]);
}

async function customData(gateway: Gw, users: Array<Record<string, unknown>>): Promise<void> {
  await (await openDb(gateway.database)).collection('User').insertMany(users);
}

interface Device {
  client: TributaryClient;
  rejected: Array<Extract<SyncError, { kind: 'rejected' }>>;
  ids(collection?: string): Promise<string[]>;
}

/** A user's device, subscribed to everything in the given collections. */
async function device(gateway: Gw, user: string, collections = ['Task']): Promise<Device> {
  const client = await openTestClient(gateway.wsUrl, { schema: SCHEMA, connectionParams: { authToken: await testToken(user) }, flexibleSync: true });
  const rejected: Device['rejected'] = [];
  client.errors$.subscribe((e) => e.kind === 'rejected' && rejected.push(e));
  await client.subscriptions.update((m) => collections.forEach((c) => m.add(c, 'TRUEPREDICATE', { name: `all ${c}` })));
  return { client, rejected, ids: async (c = 'Task') => (await client.collections[c]!.find().exec()).map((d) => d.id as string).sort() };
}

/** Waits for the compensating write of `id` and returns its reason. */
async function refusal(d: Device, id: string): Promise<string> {
  const found = await waitFor(`a compensating write for ${id}`, () => d.rejected.find((r) => r.id === id));
  expect(found).toMatchObject({ code: 'PERMISSION_DENIED', realmCode: 231 });
  return found.message;
}

async function stored(gateway: Gw, id: string, collection = 'Task'): Promise<Record<string, unknown> | null> {
  return (await openDb(gateway.database)).collection(collection).findOne({ _id: id as never });
}

describe('App Services exports load as they are', () => {
  it('owner-only, from the export root: each user syncs its own tasks; a task for someone else is a compensating write in Realm’s words', async () => {
    const gateway = await gatewayOn('owner-only');
    await seed(gateway, 'Task', [task('ann-1', { owner_id: 'ann' }), task('bob-1', { owner_id: 'bob' })]);
    const ann = await device(gateway, 'ann');
    expect(await ann.ids()).toEqual(['ann-1']);

    await ann.client.collections.Task!.insert(task('forged', { owner_id: 'bob' }));
    expect(await refusal(ann, 'forged')).toBe('write to "forged" in table "Task" not allowed; the document would leave what the role may write (write filter)');
    await waitFor('the forged task is removed from the device', async () => !(await ann.ids()).includes('forged'));
    expect(await stored(gateway, 'forged')).toBeNull();

    await ann.client.collections.Task!.insert(task('ann-2', { owner_id: 'ann' }));
    await waitFor('ann-2 lands', () => stored(gateway, 'ann-2'));
    // Note has no rules and the app no default rule: closed, as in App Services.
    const note = await graphqlHttp(gateway.httpUrl, '{ Note { id } }', {}, await testToken('ann'));
    expect(note.data).toEqual({ Note: [] });
  });

  it('the same export from its data_sources/mongodb-atlas folder; a write outside the subscriptions is refused as outside the query view', async () => {
    const gateway = await gatewayOn('owner-only', 'service');
    const ann = await device(gateway, 'ann', []);
    await ann.client.subscriptions.update((m) => m.add('Task', 'status == "open"', { name: 'open tasks' }));
    await ann.client.collections.Task!.insert(task('closed-1', { owner_id: 'ann', status: 'done' }));
    expect(await refusal(ann, 'closed-1')).toBe('write to "closed-1" in table "Task" not allowed; object is outside of the current query view');
    await waitFor('the write is reverted on the device', async () => !(await ann.ids()).includes('closed-1'));
    expect(await stored(gateway, 'closed-1')).toBeNull();
    await ann.client.collections.Task!.insert(task('open-1', { owner_id: 'ann' }));
    await waitFor('a write inside the view lands', () => stored(gateway, 'open-1'));
  });

  it('default rule plus one override: Task keeps its own rules, Note takes the default (read all, write nothing)', async () => {
    const gateway = await gatewayOn('default-plus-override');
    await seed(gateway, 'Task', [task('ann-1', { owner_id: 'ann' }), task('bob-1', { owner_id: 'bob' })]);
    await seed(gateway, 'Note', [{ id: 'n-bob', author: 'bob', text: 'hello' }]);
    const ann = await device(gateway, 'ann', ['Task', 'Note']);
    expect(await ann.ids('Task')).toEqual(['ann-1']);
    expect(await ann.ids('Note')).toEqual(['n-bob']);
    await ann.client.collections.Note!.insert({ id: 'n-ann', author: 'ann', text: 'mine' });
    expect(await refusal(ann, 'n-ann')).toContain('write to "n-ann" in table "Note" not allowed');
    await waitFor('the note is removed from the device', async () => !(await ann.ids('Note')).includes('n-ann'));
    expect(await stored(gateway, 'n-ann', 'Note')).toBeNull();
  });

  it('team sharing through a custom-data array with $in: teammates read, owners write, a user without custom data sees only its own', async () => {
    const gateway = await gatewayOn('team-sharing');
    await customData(gateway, [{ user_id: 'ann', teams: ['red', 'blue'] }, { user_id: 'bob', teams: ['red'] }]);
    await seed(gateway, 'Task', [task('red-bob', { owner_id: 'bob', team: 'red' }), task('blue-dan', { owner_id: 'dan', team: 'blue' }), task('green-dan', { owner_id: 'dan', team: 'green' }), task('carl-1', { owner_id: 'carl' })]);
    const ann = await device(gateway, 'ann');
    const carl = await device(gateway, 'carl');
    expect(await ann.ids()).toEqual(['blue-dan', 'red-bob']);
    expect(await carl.ids()).toEqual(['carl-1']);

    const bobs = await ann.client.collections.Task!.findOne('red-bob').exec();
    await bobs!.incrementalPatch({ title: 'ann was here' });
    expect(await refusal(ann, 'red-bob')).toContain('write to "red-bob" in table "Task" not allowed');
    await waitFor('the edit is reverted', async () => (await ann.client.collections.Task!.findOne('red-bob').exec())?.title === 'red-bob');
  });

  it('apply_when roles: admins listed in %%values, leads by custom data, everyone else a visitor of the environment’s public team', async () => {
    const env = await loadRulesForTesting({ rules: join(EXPORTS, 'admins'), schema: SCHEMA_PATH });
    expect(env.as({ id: 'root-1' }).roleOf('Task')).toBe('admin');
    expect(env.as({ id: 'lee', customData: { lead: 'red' } }).roleOf('Task')).toBe('teamLead');
    // Without custom data (or without the key), the lead role's condition is false: missing is not a value.
    expect(env.as({ id: 'val', customData: null }).roleOf('Task')).toBe('visitor');
    expect(env.as({ id: 'val', customData: { team: 'red' } }).roleOf('Task')).toBe('visitor');

    const gateway = await gatewayOn('admins');
    await customData(gateway, [{ user_id: 'lee', lead: 'red' }]);
    await seed(gateway, 'Task', [task('red-1', { team: 'red' }), task('lobby-1', { team: 'lobby' }), task('blue-1', { team: 'blue' })]);
    const root = await device(gateway, 'root-2');
    const lee = await device(gateway, 'lee');
    const val = await device(gateway, 'val');
    expect(await root.ids()).toEqual(['blue-1', 'lobby-1', 'red-1']);
    expect(await lee.ids()).toEqual(['red-1']);
    expect(await val.ids()).toEqual(['lobby-1']);

    await lee.client.collections.Task!.insert(task('red-2', { owner_id: 'lee', team: 'red' }));
    await waitFor('the lead’s insert lands', () => stored(gateway, 'red-2'));
    await (await lee.client.collections.Task!.findOne('red-1').exec())!.remove();
    expect(await refusal(lee, 'red-1')).toBe('write to "red-1" in table "Task" not allowed; the role may not delete this document');
    await waitFor('the delete is reverted', async () => (await lee.ids()).includes('red-1'));
    await (await lobbyOf(val)).incrementalPatch({ title: 'visited' });
    expect(await refusal(val, 'lobby-1')).toContain('write to "lobby-1" in table "Task" not allowed');
    await (await root.client.collections.Task!.findOne('blue-1').exec())!.remove();
    await waitFor('the admin’s delete lands', () => syncedDeleted(gateway, 'blue-1'));
  });

  it('field-level permissions: a hidden field never leaves the gateway, a read-only one cannot be written', async () => {
    const gateway = await gatewayOn('field-level');
    await seed(gateway, 'Task', [task('ann-1', { owner_id: 'ann', notes: 'salary review', budget: 10 }), task('bob-1', { owner_id: 'bob', notes: 'secret plan', budget: 20 })]);
    const ann = await device(gateway, 'ann');
    expect(await ann.ids()).toEqual(['ann-1', 'bob-1']);
    const local = (await ann.client.collections.Task!.find().exec()).map((d) => d.toJSON());
    expect(JSON.stringify(local)).not.toMatch(/salary review|secret plan/);
    expect(local.find((d) => d.id === 'ann-1')).toMatchObject({ budget: 10, title: 'ann-1' });
    const ops = syncOperations(MODEL.collections.find((c) => c.name === 'Task')!);
    const pulled = await graphqlHttp(gateway.httpUrl, ops.pull, { checkpoint: null, limit: 10, stamps: true }, await testToken('ann'));
    expect(pulled.data![ops.fields.pull].documents).toHaveLength(2);
    expect(JSON.stringify(pulled)).not.toMatch(/salary review|secret plan|"notes"/);

    const mine = await ann.client.collections.Task!.findOne('ann-1').exec();
    await mine!.incrementalPatch({ budget: 99 });
    expect(await refusal(ann, 'ann-1')).toBe('write to "ann-1" in table "Task" not allowed; the role may not write Task.budget');
    await waitFor('the budget is reverted', async () => (await ann.client.collections.Task!.findOne('ann-1').exec())?.budget === 10);
    await (await ann.client.collections.Task!.findOne('ann-1').exec())!.incrementalPatch({ title: 'renamed' });
    await waitFor('a writable field lands', async () => (await stored(gateway, 'ann-1'))?.title === 'renamed');
    expect(await stored(gateway, 'ann-1')).toMatchObject({ notes: 'salary review', budget: 10 });
  });

  it('insert and delete as expressions, decided on the document inserted or deleted', async () => {
    const gateway = await gatewayOn('insert-delete-expressions');
    await customData(gateway, [{ user_id: 'ann', team: 'red' }, { user_id: 'lee', team: 'red', lead: true }]);
    await seed(gateway, 'Task', [task('open-1', { owner_id: 'bob', team: 'red' }), task('done-1', { owner_id: 'bob', team: 'red', status: 'done' }), task('open-2', { owner_id: 'bob', team: 'red' })]);
    const ann = await device(gateway, 'ann');
    const lee = await device(gateway, 'lee');
    expect(await ann.ids()).toEqual(['done-1', 'open-1', 'open-2']);

    await ann.client.collections.Task!.insert(task('for-bob', { owner_id: 'bob', team: 'red' }));
    expect(await refusal(ann, 'for-bob')).toBe('write to "for-bob" in table "Task" not allowed; the role may not insert this document');
    await ann.client.collections.Task!.insert(task('by-ann', { owner_id: 'ann', team: 'red' }));
    await waitFor('her own insert lands', () => stored(gateway, 'by-ann'));

    await (await ann.client.collections.Task!.findOne('open-1').exec())!.remove();
    expect(await refusal(ann, 'open-1')).toBe('write to "open-1" in table "Task" not allowed; the role may not delete this document');
    await waitFor('the delete is reverted', async () => (await ann.ids()).includes('open-1'));
    await (await ann.client.collections.Task!.findOne('done-1').exec())!.remove();
    await waitFor('a done task may be deleted', () => syncedDeleted(gateway, 'done-1'));
    // The lead's custom data makes the delete expression true whatever the document.
    await (await lee.client.collections.Task!.findOne('open-2').exec())!.remove();
    await waitFor('the lead deletes an open task', () => syncedDeleted(gateway, 'open-2'));
    expect(lee.rejected).toEqual([]);
  });
});

async function lobbyOf(d: Device) {
  return (await d.client.collections.Task!.findOne('lobby-1').exec())!;
}

/** Whether the gateway keeps `id` as deleted (its tombstone). */
async function syncedDeleted(gateway: Gw, id: string): Promise<boolean> {
  const db = await openDb(gateway.database);
  return (await db.collection('Task').countDocuments({ _id: id as never })) === 0;
}

describe('what Atlas calls not Sync compatible is refused at load', () => {
  const RULES = join(SERVICE, 'todo/Task/rules.json');
  /** The owner-only export with its one role changed. */
  function brokenExport(change: (role: Record<string, any>) => void): string {
    const dir = mkdtempSync(join(tmpdir(), 'realm-export-'));
    temps.push(dir);
    cpSync(join(EXPORTS, 'owner-only'), dir, { recursive: true });
    const file = JSON.parse(readFileSync(join(dir, RULES), 'utf8'));
    change(file.roles[0]);
    writeFileSync(join(dir, RULES), JSON.stringify(file));
    return dir;
  }

  it.each<[string, (role: Record<string, any>) => void, string]>([
    ['a missing read filter', (r) => delete r.document_filters.read, 'document_filters.read: missing'],
    ['a missing write filter', (r) => delete r.document_filters.write, 'document_filters.write: missing'],
    ['no document_filters', (r) => delete r.document_filters, 'document_filters: missing'],
    ['a field permission that is an expression', (r) => (r.fields = { notes: { read: { '%%user.custom_data.hr': true } } }), 'fields.notes.read: must be true or false'],
    ['an additional_fields permission that is an expression', (r) => (r.additional_fields = { write: { owner_id: '%%user.id' } }), 'additional_fields.write: must be true or false'],
    ['a top-level read that is an expression', (r) => (r.read = { owner_id: '%%user.id' }), 'read: must be true or false'],
    ['a top-level write that is an expression', (r) => (r.write = { owner_id: '%%user.id' }), 'write: must be true or false'],
    ['field permissions on _id', (r) => (r.fields = { _id: { read: true, write: false } }), 'fields._id: field-level permissions on the primary key'],
    ['%%root in a filter', (r) => (r.document_filters.read = { owner_id: '%%root.owner_id' }), '%%root.owner_id is not Sync compatible'],
    ['%%prevRoot in a filter', (r) => (r.document_filters.write = { owner_id: '%%prevRoot.owner_id' }), '%%prevRoot.owner_id is not Sync compatible'],
    ['%%this in a filter', (r) => (r.document_filters.read = { owner_id: { $eq: '%%this' } }), '%%this is not Sync compatible'],
    ['%%prev in a filter', (r) => (r.document_filters.read = { owner_id: '%%prev' }), '%%prev is not Sync compatible'],
    ['%%request in apply_when', (r) => (r.apply_when = { '%%request.remoteIPAddress': '127.0.0.1' }), '%%request.remoteIPAddress is not Sync compatible'],
    ['%%partition in a filter', (r) => (r.document_filters.read = { team: '%%partition' }), '%%partition is not Sync compatible'],
    ['%function in apply_when', (r) => (r.apply_when = { '%%true': { '%function': { name: 'isAllowed', arguments: ['%%user'] } } }), '%function calls an Atlas Function'],
    ['%function in insert', (r) => (r.insert = { '%%true': { '%function': { name: 'mayInsert' } } }), '%function calls an Atlas Function'],
    ['a filter on a field that is not queryable', (r) => (r.document_filters.read = { title: 'x' }), '"title" is not a queryable field'],
    ['a delete expression on a field that is not queryable', (r) => (r.delete = { notes: null }), '"notes" is not a queryable field'],
  ])('%s', async (_, change, key) => {
    const dir = brokenExport(change);
    const error = await loadRules(dir, MODEL).then(() => null, (e: Error) => e);
    expect(error?.name).toBe('RulesError');
    expect(error!.message).toContain(`${RULES}: todo.Task role "owner": `);
    expect(error!.message).toContain(key);
  });

  it('a rules file it cannot place is an error, never skipped', async () => {
    const dir = brokenExport(() => {});
    cpSync(join(dir, RULES), join(dir, SERVICE, 'todo/Comment/rules.json'));
    writeFileSync(join(dir, SERVICE, 'todo/Comment/rules.json'), JSON.stringify({ collection: 'Comment', database: 'todo', roles: [] }));
    await expect(loadRules(dir, MODEL)).rejects.toThrow(/todo\/Comment\/rules\.json: rules for todo\.Comment, but schema\.graphql has no collection "Comment"/);
    const stray = brokenExport(() => {});
    writeFileSync(join(stray, SERVICE, 'todo/rules.json'), '{"roles": []}');
    await expect(loadRules(stray, MODEL)).rejects.toThrow(/todo\/rules\.json: not a file of an App Services data source/);
  });

  it('a folder of our own takes %%values from its values.json', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'rules-'));
    temps.push(dir);
    const roles = JSON.parse(readFileSync(join(EXPORTS, 'admins', RULES), 'utf8')).roles.slice(0, 1);
    writeFileSync(join(dir, 'Task.json'), JSON.stringify({ roles }));
    writeFileSync(join(dir, 'values.json'), JSON.stringify({ adminIds: ['boss'] }));
    const env = await loadRulesForTesting({ rules: dir, schema: SCHEMA_PATH });
    expect(env.as({ id: 'boss' }).roleOf('Task')).toBe('admin');
    expect(env.as({ id: 'root-1' }).roleOf('Task')).toBeNull();
  });

  it('a %%values name the export does not have is an error; a missing environment value is missing', async () => {
    const unknown = brokenExport((r) => (r.apply_when = { '%%user.id': { $in: '%%values.nobody' } }));
    await expect(loadRules(unknown, MODEL)).rejects.toThrow(/todo\.Task role "owner": apply_when\.%%user\.id\.\$in: %%values\.nobody: there is no value "nobody"/);
    const env = await loadRulesForTesting({ rules: join(EXPORTS, 'admins'), schema: SCHEMA_PATH });
    expect(env.as({ id: 'val' }).roleOf('Task')).toBe('visitor');
  });
});
