// An example of testing this app's rules with tributary/testing: in memory (no server), and the
// same checks against a running gateway. Copy it for your own rules.
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { assertFails, assertSucceeds, gatewayTestContext, loadRulesForTesting } from '../gateway/rules/testing.ts';
import { cleanup, newTask, startTestGateway, testToken } from '../test/helpers/harness.ts';
import { afterEach } from 'vitest';

const RULES = resolve(import.meta.dirname);
const SCHEMA = resolve(import.meta.dirname, '../schema.graphql');
const task = (overrides: Record<string, unknown>) => ({ id: 't1', ownerId: 'ann', title: 'Plan', status: 'TODO', priority: 2, tags: [], ...overrides });

afterEach(cleanup);

describe('tasks rules (in memory)', () => {
  it('lets owners do everything with their tasks, and assignees read them', async () => {
    const env = await loadRulesForTesting({ rules: RULES, schema: SCHEMA });
    const ann = env.as({ id: 'ann' });
    const bob = env.as({ id: 'bob' });
    await assertSucceeds(ann.insert('tasks', task({})));
    await assertSucceeds(ann.update('tasks', task({}), task({ title: 'Plan B' })));
    await assertSucceeds(ann.delete('tasks', task({})));
    await assertFails(bob.read('tasks', task({})));
    await assertSucceeds(bob.read('tasks', task({ assigneeIds: ['bob'] })));
    await assertFails(bob.update('tasks', task({ assigneeIds: ['bob'] }), task({ assigneeIds: ['bob'], title: 'hijacked' })));
    const denied = await assertFails(ann.insert('tasks', task({ ownerId: 'bob' })));
    expect(denied.message).toMatch(/write filter/);
    await assertFails(ann.update('tasks', task({}), task({ ownerId: 'bob' })));
  });

  it('makes admins of users whose custom data says so, and only them', async () => {
    const env = await loadRulesForTesting({ rules: RULES, schema: SCHEMA });
    expect(env.as({ id: 'ann', customData: { isAdmin: true } }).roleOf('projects')).toBe('admin');
    expect(env.as({ id: 'ann', customData: { isAdmin: false } }).roleOf('projects')).toBe('owner-or-team');
    expect(env.as({ id: 'ann' }).roleOf('projects')).toBe('owner-or-team');
  });
});

describe('tasks rules (against a running gateway)', () => {
  it('gives the same answers', async () => {
    const gateway = await startTestGateway({ rulesPath: RULES });
    const ann = gatewayTestContext(gateway.httpUrl, await testToken('ann'), gateway.model);
    const bob = gatewayTestContext(gateway.httpUrl, await testToken('bob'), gateway.model);
    const mine = newTask({ id: 'g1', ownerId: 'ann' });
    await assertSucceeds(ann.insert('tasks', mine));
    await assertSucceeds(ann.read('tasks', mine));
    await assertFails(bob.read('tasks', mine));
    await assertFails(bob.update('tasks', mine, { ...mine, title: 'hijacked' }));
    await assertFails(ann.insert('tasks', newTask({ id: 'g2', ownerId: 'bob' })));
    await assertSucceeds(ann.delete('tasks', mine));
  });
});
