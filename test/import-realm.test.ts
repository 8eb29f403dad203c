// `npm run import-realm`: App Services exports (test/fixtures/realm-apps/) become a schema.graphql
// and rules that the gateway's own loaders accept and that start a gateway which syncs; an export
// with something untranslatable is refused, naming each item, and nothing is written.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ObjectId } from 'mongodb';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { loadRules, type Role } from '../gateway/rules/load.ts';
import { loadModel, type CollectionModel, type DataModel, type FieldType } from '../protocol/model.ts';
import { cleanup, graphqlHttp, openDb, startTestGateway, TEST_JWT, testToken } from './helpers/harness.ts';

const ROOT = resolve(import.meta.dirname, '..');
const APPS = resolve(import.meta.dirname, 'fixtures/realm-apps');
const temps: string[] = [];

afterEach(cleanup);
afterAll(() => temps.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `npm run import-realm -- <args>`, as a user runs it. */
function importRealm(...args: string[]): Promise<Run> {
  return new Promise((done, fail) => {
    const child = spawn('npm', ['run', '--silent', 'import-realm', '--', ...args], { cwd: ROOT, env: { ...process.env, NO_COLOR: '1' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'import-realm-'));
  temps.push(dir);
  return dir;
}

/** Imports a fixture into a fresh folder; fails with the importer's own output otherwise. */
async function imported(app: string, ...flags: string[]): Promise<{ out: string; run: Run; model: DataModel; roles: Map<string, Role[]> }> {
  const out = join(tempDir(), 'config');
  const run = await importRealm(join(APPS, app), '--out', out, ...flags);
  expect(run.code, `import-realm exited ${run.code}:\n${run.stderr}${run.stdout}`).toBe(0);
  const model = loadModel(readFileSync(join(out, 'schema.graphql'), 'utf8'));
  const { roles } = await loadRules(join(out, 'rules'), model);
  return { out, run, model, roles };
}

/** A field's type as text: `ObjectId`, `[ChecklistItem]`, ... */
function describeType(type: FieldType): string {
  switch (type.kind) {
    case 'scalar':
    case 'enum':
    case 'object':
      return type.name;
    case 'list':
      return `[${describeType(type.of)}]`;
  }
}

function collection(model: DataModel, name: string): CollectionModel {
  const found = model.collections.find((c) => c.name === name);
  expect(found, `collection ${name} in ${model.collections.map((c) => c.name).join(', ')}`).toBeDefined();
  return found!;
}

function types(c: CollectionModel): Record<string, string> {
  return Object.fromEntries(c.fields.map((f) => [f.name, `${describeType(f.type)}${f.nullable ? '' : '!'}`]));
}

function queryable(c: CollectionModel): string[] {
  return c.fields.filter((f) => f.queryable).map((f) => f.name).sort();
}

describe('import-realm: a task app (ObjectId keys, link, embedded list, Decimal128, date, dictionary, values, environments)', () => {
  it('writes a schema and rules that say what the export says', async () => {
    const { out, run, model, roles } = await imported('task-app');

    const task = collection(model, 'Task');
    expect(task.typeName).toBe('Task');
    expect(types(task)).toEqual({
      id: 'ObjectId!',
      owner_id: 'String!',
      name: 'String!',
      status: 'String!',
      priority: 'Long',
      progress: 'Int',
      estimateHours: 'Float',
      budget: 'Decimal',
      dueDate: 'DateTime',
      projectId: 'ObjectId',
      checklist: '[ChecklistItem]',
      labels: 'Dictionary',
      tags: '[String]',
      attachment: 'Binary',
      extra: 'Mixed',
    });
    const checklist = task.fields.find((f) => f.name === 'checklist')!.type;
    expect(checklist.kind === 'list' && checklist.of.kind === 'object' && checklist.of.fields.map((f) => `${f.name}:${describeType(f.type)}${f.nullable ? '' : '!'}`)).toEqual([
      'text:String!',
      'done:Boolean!',
      'doneAt:DateTime',
    ]);
    expect(task.fields.find((f) => f.name === 'tags')!.merge).toBe('add-wins-set'); // a Realm set
    // queryable_fields_names (every collection) + collection_queryable_fields_names.Task
    expect(queryable(task)).toEqual(['dueDate', 'id', 'owner_id', 'projectId', 'status', 'tags']);

    const project = collection(model, 'Project');
    expect(types(project)).toMatchObject({ id: 'ObjectId!', name: 'String!', owner_id: 'String!', members: '[String]', archived: 'Boolean', createdAt: 'DateTime' });
    expect(queryable(project)).toEqual(['archived', 'id', 'owner_id', 'team']);
    // indexed_queryable_fields_names: every subscription must constrain it
    expect([task.indexedQueryable, project.indexedQueryable]).toEqual(['owner_id', 'owner_id']);

    const sdl = readFileSync(join(out, 'schema.graphql'), 'utf8');
    expect(sdl).toMatch(/# link to Project \(collection "Project"\) by its id\n\s+projectId: ObjectId @queryable/);

    // Task's own roles, in order, with values/adminIds.json and environments/production.json inlined
    const taskRoles = roles.get('Task')!;
    expect(taskRoles.map((r) => r.name)).toEqual(['admin', 'ops', 'owner']);
    expect(taskRoles[0]!.apply_when).toEqual({ '%%user.id': { $in: ['admin-1', 'admin-2'] } });
    expect(taskRoles[1]!.apply_when).toEqual({ '%%user.custom_data.team': 'ops' });
    expect(taskRoles[1]!.fields).toEqual({ status: { read: true, write: true } });
    expect(taskRoles[2]!.document_filters).toEqual({ read: { owner_id: '%%user.id' }, write: { owner_id: '%%user.id' } });
    expect(taskRoles.every((r) => !('search' in r))).toBe(true);
    // Project has no rules.json: default_rule.json applies, as in App Services
    expect(roles.get('Project')!.map((r) => r.name)).toEqual(['admin', 'readAll']);
    expect(readdirSync(join(out, 'rules')).sort()).toEqual(['Task.json', 'default_rule.json']); // User has no schema: not synced

    // How to start it, with custom user data from auth/custom_user_data.json
    const starts = run.stdout.split('\n').filter((l) => l.includes('npm start'));
    expect(starts).toHaveLength(2);
    for (const line of starts) {
      expect(line).toContain(`TRIBUTARY_SCHEMA=${join(out, 'schema.graphql')}`);
      expect(line).toContain(`TRIBUTARY_RULES=${join(out, 'rules')}`);
      expect(line).toContain('TRIBUTARY_DATABASE=todo');
      expect(line).toContain('TRIBUTARY_CUSTOM_DATA_COLLECTION=User TRIBUTARY_CUSTOM_DATA_USER_FIELD=user_id');
      expect(line).not.toContain('TRIBUTARY_ANONYMOUS=false'); // anon-user is enabled in the export
    }
    expect(starts[1]).toMatch(/^\s*MONGODB_URI=/);
    const notes = readFileSync(join(out, 'IMPORT-NOTES.md'), 'utf8');
    expect(notes).toContain('collection `User` whose `user_id` equals');
    expect(notes).toContain('TRIBUTARY_JWKS_URL=https://auth.example.com/.well-known/jwks.json');
    expect(notes).toContain('"createUserData"');
    expect(notes).toMatch(/- functions\/: /);
    expect(notes).toMatch(/- triggers\/: /);
    expect(notes).not.toContain('## Problems');
  });

  it('starts a gateway that syncs with it: a plain GraphQL write is read back, under the imported rules', async () => {
    const { out } = await imported('task-app');
    const gateway = await startTestGateway({
      schemaPath: join(out, 'schema.graphql'),
      rulesPath: join(out, 'rules'),
      auth: { jwt: TEST_JWT, anonymous: { enabled: true }, customData: { collection: 'User', userIdField: 'user_id' } },
    });
    const db = await openDb(gateway.database);
    await db.collection('User').insertOne({ user_id: 'ops-1', team: 'ops' });

    const id = new ObjectId().toHexString();
    const owner = await testToken('user-1');
    const inserted = await graphqlHttp(
      gateway.httpUrl,
      'mutation ($input: TaskInput!) { insertTask(input: $input) { id owner_id name status checklist { text done } tags } }',
      { input: { id, owner_id: 'user-1', name: 'Migrated from Realm', status: 'TODO', dueDate: '2025-10-01T09:00:00.000Z', checklist: [{ text: 'export the app', done: true }], tags: ['realm'] } },
      owner,
    );
    expect(inserted.errors, JSON.stringify(inserted.errors)).toBeUndefined();
    expect(inserted.data!.insertTask).toEqual({ id, owner_id: 'user-1', name: 'Migrated from Realm', status: 'TODO', checklist: [{ text: 'export the app', done: true }], tags: ['realm'] });

    const read = `{ task(id: ${JSON.stringify(id)}) { id name status dueDate checklist { text done } } Task(filter: { status: "TODO" }) { id } }`;
    const back = await graphqlHttp(gateway.httpUrl, read, {}, owner);
    expect(back.errors, JSON.stringify(back.errors)).toBeUndefined();
    expect(back.data!.task).toMatchObject({ id, name: 'Migrated from Realm', status: 'TODO', checklist: [{ text: 'export the app', done: true }] });
    expect(new Date(back.data!.task.dueDate).toISOString()).toBe('2025-10-01T09:00:00.000Z');
    expect(back.data!.Task).toEqual([{ id }]);

    // "owner" role: another user does not see it; "ops" role (custom data team = the production environment value) does
    const stranger = await graphqlHttp(gateway.httpUrl, read, {}, await testToken('user-2'));
    expect(stranger.data).toEqual({ task: null, Task: [] });
    const ops = await graphqlHttp(gateway.httpUrl, read, {}, await testToken('ops-1'));
    expect(ops.errors, JSON.stringify(ops.errors)).toBeUndefined();
    expect(ops.data!.task).toMatchObject({ id, name: 'Migrated from Realm' });
  });
});

describe('import-realm: UUID and string keys, custom user data in a role', () => {
  it('writes a schema and rules that say what the export says', async () => {
    const { out, run, model, roles } = await imported('field-notes');
    const note = collection(model, 'Note');
    expect(types(note)).toEqual({
      id: 'UUID!',
      author: 'String!',
      team: 'String!',
      body: 'String!',
      createdAt: 'DateTime!',
      location: 'GeoPoint',
      photos: '[Binary]',
      mentions: '[String]',
      rating: 'Int',
    });
    expect(queryable(note)).toEqual(['author', 'createdAt', 'id', 'team']); // keyed by title in sync/config.json
    const member = collection(model, 'Member');
    expect(types(member)).toEqual({ id: 'ID!', name: 'String!', team: 'String!', phone: 'String' });
    expect(queryable(member)).toEqual(['id', 'team']);
    expect(readFileSync(join(out, 'schema.graphql'), 'utf8')).toMatch(/# link to Member \(collection "Member"\) by its id, to-many\n\s+mentions: \[String!\]/);

    expect(roles.get('Note')).toEqual([
      {
        name: 'team-member',
        apply_when: { '%%user.custom_data.team': { $exists: true } },
        document_filters: { read: { team: '%%user.custom_data.team' }, write: { team: '%%user.custom_data.team', author: '%%user.id' } },
        read: true,
        write: true,
        insert: true,
        delete: true,
        fields: {},
        additional_fields: {},
      },
    ]);
    const teammate = roles.get('Member')![0]!;
    expect(teammate.document_filters.write).toEqual({ id: '%%user.id' }); // Realm's _id
    expect(teammate.fields).toEqual({ name: { read: true, write: true }, phone: { read: false, write: true } });
    expect(teammate.additional_fields).toEqual({ read: true, write: false });

    expect(run.stdout).toContain('TRIBUTARY_CUSTOM_DATA_COLLECTION=UserData TRIBUTARY_CUSTOM_DATA_USER_FIELD=userId');
    expect(run.stdout).toContain('TRIBUTARY_ANONYMOUS=false'); // no anon-user provider in the export
    expect(readFileSync(join(out, 'IMPORT-NOTES.md'), 'utf8')).toContain('TRIBUTARY_JWT_ALGORITHMS=HS256');
  });

  it('starts a gateway that syncs with it: team members read each other\'s notes through custom user data', async () => {
    const { out } = await imported('field-notes');
    const gateway = await startTestGateway({
      schemaPath: join(out, 'schema.graphql'),
      rulesPath: join(out, 'rules'),
      auth: { jwt: TEST_JWT, anonymous: { enabled: false }, customData: { collection: 'UserData', userIdField: 'userId' } },
    });
    const db = await openDb(gateway.database);
    await db.collection('UserData').insertMany([
      { userId: 'ann', team: 'north' },
      { userId: 'bob', team: 'north' },
      { userId: 'carl', team: 'south' },
    ]);

    const id = randomUUID();
    const input = { id, author: 'ann', team: 'north', body: 'Heron nest by the weir', createdAt: '2025-09-30T12:00:00.000Z', rating: 4 };
    const inserted = await graphqlHttp(gateway.httpUrl, 'mutation ($input: NoteInput!) { insertNote(input: $input) { id author team body } }', { input }, await testToken('ann'));
    expect(inserted.errors, JSON.stringify(inserted.errors)).toBeUndefined();
    expect(inserted.data!.insertNote).toEqual({ id, author: 'ann', team: 'north', body: 'Heron nest by the weir' });

    const read = `{ note(id: ${JSON.stringify(id)}) { id body rating } }`;
    const bob = await graphqlHttp(gateway.httpUrl, read, {}, await testToken('bob'));
    expect(bob.errors, JSON.stringify(bob.errors)).toBeUndefined();
    expect(bob.data!.note).toEqual({ id, body: 'Heron nest by the weir', rating: 4 });
    const carl = await graphqlHttp(gateway.httpUrl, read, {}, await testToken('carl'));
    expect(carl.data).toEqual({ note: null });
  });
});

describe('import-realm: what cannot be translated', () => {
  const expected = [
    'data_sources/mongodb-atlas/inventory/Item/schema.json: Item.lastSynced: bsonType "timestamp"',
    'data_sources/mongodb-atlas/inventory/Item/schema.json: Item._legacyCode: field names starting with "_" are reserved',
    'data_sources/mongodb-atlas/inventory/Item/rules.json: roles[0] "auditor".apply_when.%%true.%function: calls an Atlas Function',
    'data_sources/mongodb-atlas/inventory/Item/rules.json: roles[1] "owner".fields.costPrice.read: a field-level rule that is an expression',
  ];

  it('lists each item (file, field or role, reason), exits non-zero and writes nothing', async () => {
    const parent = tempDir();
    const out = join(parent, 'config');
    const run = await importRealm(join(APPS, 'untranslatable'), '--out', out);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('Cannot translate 4 item(s)');
    for (const line of expected) expect(run.stderr).toContain(line);
    expect(run.stderr).toContain('nothing was written');
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(parent)).toEqual([]); // no half-written staging folder either
  });

  it('with --force writes the rest, denying what it could not translate, and lists the problems in IMPORT-NOTES.md', async () => {
    const { out, model, roles } = await imported('untranslatable', '--force');
    expect(types(collection(model, 'Item'))).toEqual({ id: 'ObjectId!', owner: 'String!', name: 'String!', costPrice: 'Decimal' });
    const [auditor, owner] = roles.get('Item')!;
    // The role whose condition called a function now applies to everyone and denies everything,
    // so no later (possibly wider) role takes its place.
    expect(auditor).toEqual({ name: 'auditor', apply_when: {}, document_filters: { read: false, write: false }, read: false, write: false, insert: false, delete: false, fields: {}, additional_fields: {} });
    expect(owner!.fields!.costPrice).toEqual({ read: false, write: false });
    const notes = readFileSync(join(out, 'IMPORT-NOTES.md'), 'utf8');
    expect(notes).toContain('## Problems: not translated');
    for (const line of expected) expect(notes).toContain(line);
  });

  it('refuses an output folder that is not empty', async () => {
    const out = tempDir();
    mkdirSync(join(out, 'rules'));
    writeFileSync(join(out, 'rules', 'old.json'), '{}');
    const run = await importRealm(join(APPS, 'task-app'), '--out', out);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('already exists and is not empty');
    expect(readdirSync(out)).toEqual(['rules']);
  });

  it('refuses a folder that is not an App Services export', async () => {
    const out = join(tempDir(), 'config');
    const run = await importRealm(join(APPS, 'task-app', 'values'), '--out', out);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('data_sources/: (folder): missing');
    expect(existsSync(out)).toBe(false);
  });
});
