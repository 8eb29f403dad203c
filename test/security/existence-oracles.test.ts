// Existence oracles: a refusal says what the document itself may not be before anything about a
// document the user cannot read, so another user's id and a free id get the same answer (only an
// insert that would succeed on a free id tells that an id is taken: SECURITY.md).
import { afterEach, expect, it } from 'vitest';
import { cleanup, newTask, rulesFixture, startTestGateway } from '../helpers/harness.ts';
import { attacker, seed, tasksOps } from './attack.ts';

afterEach(cleanup);

it('a stamped row with an assumedMasterState is refused the same way on another user’s id and on a free id', async () => {
  const gateway = await startTestGateway({ rulesPath: rulesFixture('owner-only') });
  await seed(gateway, 'tasks', [newTask({ id: 'ann-existing', ownerId: 'ann', title: 'ann secret' })]);
  const ops = tasksOps(gateway);
  const bob = await attacker(gateway, 'bob');
  const push = async (id: string) => {
    const doc = { ...newTask({ id, ownerId: 'ann', title: 'same' }), _deleted: false };
    const answer = await bob.http(ops.push, { rows: [{ assumedMasterState: doc, newDocumentState: { ...doc, _stamps: { title: '000mghl5xb4:0000:dev1' } } }] });
    return JSON.stringify(answer).replaceAll(id, 'ID');
  };
  expect(await push('ann-existing')).toBe(await push('free-id'));
});
