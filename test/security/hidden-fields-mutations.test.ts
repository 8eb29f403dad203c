// Hidden fields through plain mutations: updateX and deleteX build the new state from what the
// user may read, so their answer is the same whatever the hidden fields hold.
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, newTask, rulesFixture, startTestGateway } from '../helpers/harness.ts';
import { attacker, seed } from './attack.ts';

afterEach(cleanup);

describe('plain mutations and hidden fields', () => {
  it('updateTask / deleteTask answer the same whether a hidden field is set or not', async () => {
    const gateway = await startTestGateway({ rulesPath: rulesFixture('hidden-fields') });
    await seed(gateway, 'tasks', [
      newTask({ id: 'with-desc', ownerId: 'lead', assigneeIds: ['bob'], description: 'SECRET', priority: 4, title: 't' }),
      newTask({ id: 'no-desc', ownerId: 'lead', assigneeIds: ['bob'], priority: 4, title: 't' }),
    ]);
    const bob = await attacker(gateway, 'bob');
    const update = (id: string) => bob.http('mutation ($id: ID!) { updateTask(id: $id, set: { status: DONE }) { id status } }', { id });
    const remove = (id: string) => bob.http('mutation ($id: ID!) { deleteTask(id: $id) }', { id });
    const norm = (a: unknown, id: string) => JSON.stringify(a).replaceAll(id, 'ID');

    const [u1, u2] = [await update('with-desc'), await update('no-desc')];
    // Now: "the role may not write Task.description" vs "... Task.priority": Bob learns description is set.
    expect(norm(u1, 'with-desc')).toBe(norm(u2, 'no-desc'));
    const [d1, d2] = [await remove('with-desc'), await remove('no-desc')];
    expect(norm(d1, 'with-desc')).toBe(norm(d2, 'no-desc'));
    // And nothing an assignee may write (status) should be refused for a field he never sent.
    expect(JSON.stringify(u1)).not.toMatch(/Task\.(description|priority)/);
  });

  it('updateProject succeeds or fails the same whether the hidden color is set or not', async () => {
    const gateway = await startTestGateway({ rulesPath: rulesFixture('public-read') });
    const project = (id: string, color: string | null) => ({ id, ownerId: 'ann', teamId: null, name: id, color, archived: false, createdAt: '2026-01-01T00:00:00.000Z' });
    await seed(gateway, 'projects', [project('p-colored', 'SECRET-COLOR'), project('p-plain', null)]);
    const bob = await attacker(gateway, 'bob');
    const rename = (id: string) => bob.http('mutation ($id: ID!) { updateProject(id: $id, set: { name: "renamed" }) { id name } }', { id });
    const colored = await rename('p-colored');
    const plain = await rename('p-plain');
    // Now: p-plain is renamed, p-colored is refused with "the role may not write Project.color".
    expect(colored.errors).toEqual(plain.errors);
    expect(colored.errors).toBeUndefined();
  });
});
