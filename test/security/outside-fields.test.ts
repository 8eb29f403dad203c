// Cross-user reads through fields other services keep: fields of a stored document that
// schema.graphql does not declare (another service's, or an older schema's) never leave the
// gateway, so no rule has to hide them; the write path keeps them as they are.
import { afterEach, it } from 'vitest';
import { cleanup, newTask, openDb, rulesFixture, startTestGateway } from '../helpers/harness.ts';
import { attacker, expectNothingLeaked, seed, tasksOps } from './attack.ts';

afterEach(cleanup);

it('fields not in the schema are not sent to a role that may read only listed fields', async () => {
  // Everyone reads every task, but only ownerId, title, status, priority and tags.
  const gateway = await startTestGateway({ rulesPath: rulesFixture('field-allowlist') });
  await seed(gateway, 'tasks', [newTask({ id: 't1', ownerId: 'ann', description: 'HIDDEN-DESCRIPTION' })]);
  // Another service adds a field of its own (SECURITY.md: the gateway syncs such data as it is).
  const db = await openDb(gateway.database);
  await db.collection('tasks').updateOne({ _id: 't1' as never }, { $set: { salaryNote: 'EXTRA-SECRET' } });
  const ops = tasksOps(gateway);
  const bob = await attacker(gateway, 'bob');
  await bob.http(ops.pull, { checkpoint: null, limit: 10 });
  await bob.http(ops.bootstrap, { query: {}, limit: 10 });
  // Now both answers hold "salaryNote":"EXTRA-SECRET" (description, a schema field, is removed).
  expectNothingLeaked(bob, ['HIDDEN-DESCRIPTION']);
  expectNothingLeaked(bob, ['EXTRA-SECRET', 'salaryNote']);
});
