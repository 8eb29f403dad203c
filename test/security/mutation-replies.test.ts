// Cross-user reads through plain mutation answers: a mutation answers with the document as the
// user may read it at that moment; if another write took it out of the user's read set in the
// meantime (made deterministic here by wrapping writer.push), the user is told what it wrote.
import { afterEach, expect, it } from 'vitest';
import { cleanup, newTask, rulesFixture, startTestGateway } from '../helpers/harness.ts';
import { attacker, expectNothingLeaked, seed } from './attack.ts';
import { UNRESTRICTED } from '../../gateway/rules/permissions.ts';

afterEach(cleanup);

it('updateTask never answers with a state the user may no longer read (concurrent reassignment)', async () => {
  // lead: everything; everyone else: read and write tasks they are assigned to.
  const gateway = await startTestGateway({ rulesPath: rulesFixture('assignees-write') });
  const base = newTask({ id: 'shared', ownerId: 'lead', assigneeIds: ['bob'], title: 'visible' });
  await seed(gateway, 'tasks', [base]);
  const { writer, store } = gateway.collections.get('tasks')!;
  const push = writer.push.bind(writer);
  let armed = true;
  (writer as { push: typeof writer.push }).push = async (rows, permissions) => {
    const result = await push(rows, permissions);
    if (armed && permissions !== UNRESTRICTED) {
      // The lead's write lands right after Bob's: Bob is unassigned, the title becomes secret.
      armed = false;
      const stored = (await store.current('shared'))!;
      const moved = { ...base, assigneeIds: ['carl'], title: 'LEAD-SECRET-TITLE', _deleted: false };
      expect((await push([{ assumedMasterState: store.toWire(stored), newDocumentState: moved }], UNRESTRICTED)).rejected).toEqual([]);
    }
    return result;
  };
  const bob = await attacker(gateway, 'bob');
  const answer = await bob.http('mutation { updateTask(id: "shared", set: { status: DONE }) { id title assigneeIds } }');
  // Now: {"updateTask":{"id":"shared","title":"LEAD-SECRET-TITLE","assigneeIds":["carl"]}}
  expectNothingLeaked(bob, ['LEAD-SECRET-TITLE', 'carl']);
  expect(answer.data?.updateTask?.title).not.toBe('LEAD-SECRET-TITLE');
});
