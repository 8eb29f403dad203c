// Issue 2, case 6: a document that violates schema.graphql is refused with a message naming
// the field; the rest of the push batch is handled; nothing of it is written; the server stays up.
import { afterEach, describe, expect, it } from 'vitest';
import { firstValueFrom, filter } from 'rxjs';
import { syncOperations } from '../protocol/operations.ts';
import { cleanup, graphqlHttp, newTask, openDb, openTestClient, startTestGateway, waitFor } from './helpers/harness.ts';

afterEach(cleanup);

const violations: Array<[string, Record<string, unknown>, string, RegExp]> = [
  ['an enum value not in the enum', { status: 'SOMEDAY' }, 'status', /Task\.status must be one of TODO, IN_PROGRESS, BLOCKED, DONE/],
  ['a wrong scalar type', { priority: 'high' }, 'priority', /Task\.priority must be integer/],
  ['a missing required field', { title: undefined }, 'title', /Task\.title is required/],
  ['a field the type does not have', { color: 'red' }, 'color', /Task\.color is not a field of Task/],
  ['a bad nested field', { checklist: [{ text: 'x', done: 'yes' }] }, 'checklist.0.done', /Task\.checklist\.0\.done must be boolean/],
  ['a date that is not ISO 8601', { dueDate: 'next tuesday' }, 'dueDate', /Task\.dueDate must match format "date-time"/],
  ['null in a non-null field', { ownerId: null }, 'ownerId', /Task\.ownerId must be string/],
];

describe('schema validation of pushed documents', () => {
  it.each(violations)('refuses %s, naming the field, and applies the rest of the batch', async (_what, change, field, message) => {
    const gateway = await startTestGateway();
    const ops = syncOperations(gateway.model.collections.find((c) => c.name === 'tasks')!);
    const before = { ...newTask({ title: 'before' }), _deleted: false };
    const bad = JSON.parse(JSON.stringify({ ...newTask(), ...change, _deleted: false }));
    const after = { ...newTask({ title: 'after' }), _deleted: false };

    const response = await graphqlHttp(gateway.httpUrl, ops.push, {
      rows: [before, bad, after].map((doc) => ({ assumedMasterState: null, newDocumentState: doc })),
    });
    expect(response.errors).toBeUndefined();
    const result = response.data!.pushTasks;
    expect(result.rejected).toEqual([{ id: bad.id, code: 'SCHEMA_VIOLATION', field, message: expect.stringMatching(message), realmCode: null }]);
    // The refused new document comes back as a tombstone, so a client drops its local copy.
    expect(result.conflicts).toEqual([expect.objectContaining({ id: bad.id, _deleted: true })]);

    const db = await openDb(gateway.database);
    const stored = await db.collection('tasks').find().project({ _id: 1 }).toArray();
    expect(stored.map((d) => d._id).sort()).toEqual([before.id, after.id].sort());

    const ready = await fetch(gateway.httpUrl.replace('/graphql', '/ready'));
    expect(ready.status).toBe(200);
  });

  it('refuses an invalid update and keeps the stored version whole', async () => {
    const gateway = await startTestGateway();
    const ops = syncOperations(gateway.model.collections.find((c) => c.name === 'tasks')!);
    const original = { ...newTask({ title: 'original' }), _deleted: false };
    await graphqlHttp(gateway.httpUrl, ops.push, { rows: [{ assumedMasterState: null, newDocumentState: original }] });
    const response = await graphqlHttp(gateway.httpUrl, ops.push, {
      rows: [{ assumedMasterState: original, newDocumentState: { ...original, title: 'changed', priority: 1.5 } }],
    });
    expect(response.data!.pushTasks.rejected[0]).toMatchObject({ field: 'priority', code: 'SCHEMA_VIOLATION' });
    expect(response.data!.pushTasks.conflicts).toEqual([expect.objectContaining({ id: original.id, title: 'original' })]);
    const db = await openDb(gateway.database);
    expect(await db.collection('tasks').findOne({ _id: original.id as never })).toMatchObject({ title: 'original', priority: 3 });
  });

  it('rejects malformed rows with BAD_ROW and oversized batches with a request error', async () => {
    const gateway = await startTestGateway({ maxPushRows: 3 });
    const ops = syncOperations(gateway.model.collections.find((c) => c.name === 'tasks')!);
    const response = await graphqlHttp(gateway.httpUrl, ops.push, { rows: [{ newDocumentState: { title: 'no id' } }] });
    expect(response.data!.pushTasks.rejected).toEqual([expect.objectContaining({ id: null, code: 'BAD_ROW', message: 'newDocumentState.id must be a non-empty string' })]);
    const tooMany = Array.from({ length: 4 }, () => ({ assumedMasterState: null, newDocumentState: { ...newTask(), _deleted: false } }));
    const refused = await graphqlHttp(gateway.httpUrl, ops.push, { rows: tooMany });
    expect(refused.errors![0]!.message).toBe('rows must be between 1 and 3');
  });

  it('reverts an SDK client’s invalid local write and reports it on errors$', async () => {
    const gateway = await startTestGateway();
    const client = await openTestClient(gateway.wsUrl);
    const rejected = firstValueFrom(client.errors$.pipe(filter((e) => e.kind === 'rejected')));
    const task = newTask({ priority: 2.5 }); // Int field; RxDB's local schema check is off in production builds
    await client.collections.tasks!.insert(task);
    expect(await rejected).toMatchObject({ kind: 'rejected', collection: 'tasks', id: task.id, field: 'priority' });
    await waitFor('local copy removed', async () => (await client.collections.tasks!.findOne(task.id).exec()) === null);
  });
});
