// Issue 14, point 1: schema evolution through real gateways and real SDK clients. The gateway
// records its schema in MongoDB at start; an additive change lets old clients keep syncing
// (they never receive the fields they do not know, and their writes keep those fields), a
// client reopened with the new schema migrates its local database keeping its unsynced
// writes, and a breaking change is refused at start unless confirmed, after which old clients
// are told (close 4426, errors$, onSchemaOutdated).
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getRxStorageMemory } from 'rxdb/plugins/storage-memory';
import { afterEach, describe, expect, it } from 'vitest';
import type { SyncError } from '../client-sdk/errors.ts';
import { freePort } from '../gateway/store/embedded-ferretdb.ts';
import { recordSchema, SCHEMA_COLLECTION } from '../gateway/store/schema-history.ts';
import { CLOSE_CODES } from '../protocol/messages.ts';
import { loadModel } from '../protocol/model.ts';
import { syncOperations } from '../protocol/operations.ts';
import { canonicalModel } from '../protocol/schema-evolution.ts';
import { createClient } from 'graphql-ws/client';
import { WebSocket } from 'ws';
import { cleanup, newTask, openDb, openTestClient, SCHEMA, SCHEMA_PATH, startTestGateway, testToken, uniqueName, waitFor } from './helpers/harness.ts';

afterEach(cleanup);

const folder = mkdtempSync(join(tmpdir(), 'tributary-schema-'));
function schemaFile(name: string, sdl: string): string {
  const path = join(folder, `${name}.graphql`);
  writeFileSync(path, sdl);
  return path;
}

// The next version of the app's schema: Task gains an optional field.
const WITH_NOTES = SCHEMA.replace('  description: String\n', '  description: String\n  notes: String\n');
// A breaking version: Task.priority removed, Task.description retyped.
const BREAKING = SCHEMA.replace('  priority: Int! @queryable\n', '').replace('  description: String\n', '  description: Int\n');

describe('schema evolution', () => {
  it('an additive change: an old client keeps syncing, never receives the new field, and its writes keep it', async () => {
    expect(WITH_NOTES).not.toBe(SCHEMA);
    const database = uniqueName('evolve');
    const port = await freePort();
    const url = `ws://127.0.0.1:${port}/graphql`;
    const oldGateway = await startTestGateway({ database, port, schemaPath: SCHEMA_PATH });
    const oldClient = await openTestClient(url);
    const task = newTask({ title: 'before the upgrade' });
    await oldClient.collections.tasks!.insert(task);
    await oldClient.waitForSync();
    await oldGateway.stop();

    // The gateway restarts with the new schema on the same database; the old client reconnects.
    await startTestGateway({ database, port, schemaPath: schemaFile('with-notes', WITH_NOTES) });
    const db = await openDb(database);
    const history = await db.collection(SCHEMA_COLLECTION).find({}).sort({ _id: 1 }).toArray();
    expect(history.map((h) => [h._id, h.lastBreaking])).toEqual([[1, 0], [2, 0]]);
    expect(history[1]!.differences.map((d: { message: string }) => d.message)).toEqual(['Task.notes: new optional field (String)']);

    const newClient = await openTestClient(url, { schema: WITH_NOTES });
    await waitFor('the new client has the task', () => newClient.collections.tasks!.findOne(task.id).exec());
    await (await newClient.collections.tasks!.findOne(task.id).exec())!.incrementalPatch({ notes: 'written by the new app' });
    await newClient.waitForSync();
    await waitFor('MongoDB has the note', async () => (await db.collection('tasks').findOne({ _id: task.id as never }))?.notes === 'written by the new app');

    // The old client still syncs: it gets the new client's other changes, and edits another field.
    await (await newClient.collections.tasks!.findOne(task.id).exec())!.incrementalPatch({ status: 'IN_PROGRESS' });
    await waitFor('the old client gets the new status', async () => (await oldClient.collections.tasks!.findOne(task.id).exec())?.status === 'IN_PROGRESS');
    await (await oldClient.collections.tasks!.findOne(task.id).exec())!.incrementalPatch({ title: 'edited by the old app' });
    await oldClient.waitForSync();
    await waitFor('MongoDB has the old client\'s title', async () => (await db.collection('tasks').findOne({ _id: task.id as never }))?.title === 'edited by the old app');
    const stored = await db.collection('tasks').findOne({ _id: task.id as never });
    expect(stored).toMatchObject({ title: 'edited by the old app', status: 'IN_PROGRESS', notes: 'written by the new app' });
    await waitFor('the new client gets the old client\'s title', async () => (await newClient.collections.tasks!.findOne(task.id).exec())?.title === 'edited by the old app');
    expect((await newClient.collections.tasks!.findOne(task.id).exec())!.toJSON().notes).toBe('written by the new app');

    // The old client never received the field it does not know (RxDB keeps whatever it is given).
    const oldLocal = (await oldClient.collections.tasks!.findOne(task.id).exec())!.toJSON() as Record<string, unknown>;
    expect(oldLocal.title).toBe('edited by the old app');
    expect(Object.keys(oldLocal)).not.toContain('notes');
    expect(JSON.stringify(oldLocal.syncStamps ?? {})).not.toContain('notes');
    // A client on the old schema that does not stamp (it sends whole documents, as RxDB's stock
    // plugin does) writes the document as it knows it: the field it does not know stays.
    const push = syncOperations(loadModel(SCHEMA).collections.find((c) => c.name === 'tasks')!).push;
    const raw = createClient({ url, webSocketImpl: WebSocket, lazy: false, retryAttempts: 0, connectionParams: { authToken: await testToken(), schema: canonicalModel(loadModel(SCHEMA)) } });
    const { syncStamps: _, ...known } = oldLocal;
    const result = await new Promise<Record<string, any>>((resolve, reject) => {
      raw.subscribe(
        { query: push, variables: { rows: [{ assumedMasterState: { ...known, _deleted: false }, newDocumentState: { ...known, description: 'whole document from an old app', _deleted: false } }] } },
        { next: (r) => resolve(r as Record<string, any>), error: reject, complete: () => {} },
      );
    });
    await raw.dispose();
    expect(result.errors).toBeUndefined();
    expect(Object.values(result.data!)[0]).toEqual({ conflicts: [], rejected: [] });
    expect(await db.collection('tasks').findOne({ _id: task.id as never })).toMatchObject({ description: 'whole document from an old app', notes: 'written by the new app' });

    // An old client inserting a document leaves the field unset, and a new one can set it.
    const fromOld = newTask({ title: 'inserted by the old app' });
    await oldClient.collections.tasks!.insert(fromOld);
    await oldClient.waitForSync();
    await waitFor('the new client has the old client\'s insert', () => newClient.collections.tasks!.findOne(fromOld.id).exec());
  });

  it('a client reopened with the new schema migrates its local database and pushes the writes it had not synced', async () => {
    const database = uniqueName('migrate');
    const gateway = await startTestGateway({ database, schemaPath: schemaFile('with-notes-2', WITH_NOTES) });
    const db = await openDb(database);
    // One storage object across close and reopen: the app restarting on persistent storage.
    const storage = getRxStorageMemory();
    const databaseName = uniqueName('device');
    const synced = newTask({ title: 'synced before the update' });
    const v1 = await openTestClient(gateway.wsUrl, { storage, databaseName, schema: SCHEMA });
    await v1.collections.tasks!.insert(synced);
    await v1.waitForSync();
    await waitFor('MongoDB has the synced task', () => db.collection('tasks').findOne({ _id: synced.id as never }));

    // Offline: an insert and an update that never reach the gateway before the app closes.
    await v1.pause();
    const offline = newTask({ title: 'written offline with the old app' });
    await v1.collections.tasks!.insert(offline);
    await (await v1.collections.tasks!.findOne(synced.id).exec())!.incrementalPatch({ priority: 1 });
    await v1.close();
    expect(await db.collection('tasks').findOne({ _id: offline.id as never })).toBeNull();

    // The app update: the same device database, opened with the new schema.
    const v2 = await openTestClient(gateway.wsUrl, { storage, databaseName, schema: WITH_NOTES });
    expect(v2.collections.tasks!.schema.version).toBe(1);
    const versions = (await v2.database.getLocal('tributary-schema-versions'))!.toJSON().data as { collections: Record<string, { version: number }> };
    expect(versions.collections.tasks!.version).toBe(1);
    expect(versions.collections.projects!.version).toBe(0);
    expect((await v2.collections.tasks!.findOne(offline.id).exec())?.title).toBe('written offline with the old app');
    await v2.waitForSync();
    await waitFor('the offline insert reached MongoDB', () => db.collection('tasks').findOne({ _id: offline.id as never }));
    await waitFor('the offline update reached MongoDB', async () => (await db.collection('tasks').findOne({ _id: synced.id as never }))?.priority === 1);
    // And the new field works on migrated documents.
    await (await v2.collections.tasks!.findOne(offline.id).exec())!.incrementalPatch({ notes: 'after the update' });
    await v2.waitForSync();
    await waitFor('the note reached MongoDB', async () => (await db.collection('tasks').findOne({ _id: offline.id as never }))?.notes === 'after the update');
    await v2.close();

    // Opened again with the same schema: no further migration.
    const again = await openTestClient(gateway.wsUrl, { storage, databaseName, schema: WITH_NOTES });
    expect(again.collections.tasks!.schema.version).toBe(1);
    expect((await again.collections.tasks!.findOne(offline.id).exec())?.notes).toBe('after the update');
  });

  it('a breaking change is refused at start naming every difference; confirmed, old clients are told to update', async () => {
    const database = uniqueName('breaking');
    const first = await startTestGateway({ database, schemaPath: SCHEMA_PATH });
    await first.stop();
    const breaking = schemaFile('breaking', BREAKING);

    const refused = await startTestGateway({ database, schemaPath: breaking }).then(
      () => null,
      (error: Error) => error,
    );
    expect(refused).toBeInstanceOf(Error);
    expect(refused!.message).toContain('Task.description: type changed from String to Int');
    expect(refused!.message).toContain('Task.priority: field removed');
    expect(refused!.message).toContain('TRIBUTARY_ACCEPT_BREAKING_SCHEMA');
    const db = await openDb(database);
    expect(await db.collection(SCHEMA_COLLECTION).countDocuments()).toBe(1);

    const gateway = await startTestGateway({ database, schemaPath: breaking, acceptBreakingSchema: true });
    const history = await db.collection(SCHEMA_COLLECTION).find({}).sort({ _id: 1 }).toArray();
    expect(history.map((h) => [h._id, h.lastBreaking])).toEqual([[1, 0], [2, 2]]);

    const outdated: SyncError[] = [];
    const closes: number[] = [];
    const errors: SyncError[] = [];
    const old = await openTestClient(gateway.wsUrl, { schema: SCHEMA, onSchemaOutdated: (error) => outdated.push(error), onClosed: (code) => closes.push(code) });
    old.errors$.subscribe((e) => errors.push(e));
    await waitFor('the old client is told its schema is outdated', () => outdated.length === 1);
    expect(outdated[0]).toEqual({ kind: 'schema', code: CLOSE_CODES.SCHEMA_OUTDATED, reason: 'schema outdated: Task.description: type changed from String to Int; Task.priority: field removed' });
    // (errors$ needs client-sdk/index.ts to report close 4426: see the schema evolution wiring.)
    await waitFor('errors$ reports it', () => errors.some((e) => e.kind === 'schema'), 5_000);
    expect(errors.find((e) => e.kind === 'schema')).toEqual(outdated[0]);
    // It does not retry: one refusal, and local work goes on.
    await new Promise((r) => setTimeout(r, 1_500));
    expect(closes).toEqual([CLOSE_CODES.SCHEMA_OUTDATED]);
    expect(outdated).toHaveLength(1);
    expect(old.connectionState).toBe('disconnected');
    await old.collections.tasks!.insert(newTask());

    // A client on the new schema syncs.
    const current = await openTestClient(gateway.wsUrl, { schema: BREAKING });
    const task = newTask({ description: 7 });
    delete (task as Record<string, unknown>).priority;
    await current.collections.tasks!.insert(task);
    await current.waitForSync();
    await waitFor('MongoDB has the new client\'s task', () => db.collection('tasks').findOne({ _id: task.id as never }));
  });

  it('gateways starting at once record each schema once', async () => {
    const db = await openDb(uniqueName('concurrent'));
    const record = (sdl: string) => Promise.all(Array.from({ length: 5 }, () => recordSchema(db, canonicalModel(loadModel(sdl)), { acceptBreaking: false })));
    const first = await record(SCHEMA);
    expect(new Set(first.map((r) => r.record._id))).toEqual(new Set([1]));
    const second = await record(WITH_NOTES);
    expect(new Set(second.map((r) => r.record._id))).toEqual(new Set([2]));
    expect(await db.collection(SCHEMA_COLLECTION).countDocuments()).toBe(2);
    await expect(recordSchema(db, canonicalModel(loadModel(BREAKING)), { acceptBreaking: false })).rejects.toThrow(/Task\.priority: field removed/);
  });

  it('a malformed schema in connection_init closes with 4400; a client with a field the gateway lacks gets 4426', async () => {
    const gateway = await startTestGateway({ schemaPath: SCHEMA_PATH });
    const closeOf = async (schema: unknown) => {
      const token = await testToken();
      return new Promise<{ code: number; reason: string }>((resolve) => {
        const raw = createClient({
          url: gateway.wsUrl,
          webSocketImpl: WebSocket,
          lazy: false,
          retryAttempts: 0,
          connectionParams: { authToken: token, schema },
          on: { closed: (e) => resolve({ code: (e as { code: number }).code, reason: (e as { reason: string }).reason }) },
          onNonLazyError: () => {},
        });
        void raw;
      });
    };
    expect(await closeOf('v1')).toEqual({ code: 4400, reason: 'bad schema: schema must be an object' });
    const hostile = JSON.parse(JSON.stringify(canonicalModel(loadModel(SCHEMA))));
    hostile.collections[0].fields[0].name = '$where';
    expect((await closeOf(hostile)).code).toBe(4400);
    expect(await closeOf(canonicalModel(loadModel(WITH_NOTES)))).toEqual({ code: CLOSE_CODES.SCHEMA_OUTDATED, reason: 'schema outdated: Task.notes: field removed' });
    // Its own schema: served.
    const current = await openTestClient(gateway.wsUrl, { schema: SCHEMA });
    await waitFor('a current client connects', () => current.connectionState === 'connected');
  });
});
