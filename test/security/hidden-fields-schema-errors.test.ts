// Hidden fields through schema errors: a push is validated on what the user may read; a stored
// hidden field that breaks the type (another writer left it so) is neither reported nor in the
// way, so an edit of a visible field tells nothing about hidden ones.
import { afterEach, expect, it } from 'vitest';
import { cleanup, newTask, openDb, rulesFixture, startTestGateway } from '../helpers/harness.ts';
import { attacker, seed, tasksOps } from './attack.ts';

afterEach(cleanup);

it('an edit of a visible field says nothing about the stored hidden fields', async () => {
  const gateway = await startTestGateway({ rulesPath: rulesFixture('hidden-fields') });
  await seed(gateway, 'tasks', [newTask({ id: 'a', assigneeIds: ['bob'], priority: 2 }), newTask({ id: 'b', assigneeIds: ['bob'], priority: 2 })]);
  const db = await openDb(gateway.database);
  await db.collection('tasks').updateOne({ _id: 'b' as never }, { $unset: { priority: '' } }); // hidden from bob
  const ops = tasksOps(gateway);
  const bob = await attacker(gateway, 'bob');
  const pulled = (await bob.http(ops.pull, { checkpoint: null, limit: 10 })).data!.pullTasks.documents as Array<Record<string, unknown>>;
  for (const doc of pulled) {
    const answer = await bob.http(ops.push, { rows: [{ assumedMasterState: doc, newDocumentState: { ...doc, title: 'edited' } }] });
    // Now, for "b": rejected SCHEMA_VIOLATION, field "priority", "Task.priority is required".
    expect(JSON.stringify(answer), `answer for ${doc.id}`).not.toContain('priority');
  }
});
