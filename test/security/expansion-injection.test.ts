// Injection through rule expansions: a token's claims (`%%user.data.*`, often profile fields a
// user may edit at its identity provider) and custom user data (`%%user.custom_data.*`, often
// written by the users themselves) are values. When a rule puts one into a filter it must stay a
// value, never become an operator.
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, rulesFixture, startTestGateway } from '../helpers/harness.ts';
import { attacker, expectNothingLeaked, seed } from './attack.ts';

afterEach(cleanup);

describe('values in rules', () => {
  it('are values, never operators: a team of {"$ne": null} reads no other team’s projects', async () => {
    const gateway = await startTestGateway({ rulesPath: rulesFixture('team-claim') });
    const project = (id: string, ownerId: string, teamId: string | null) => ({ id, ownerId, teamId, name: `${id} secret name`, archived: false, createdAt: '2026-01-01T00:00:00.000Z' });
    await seed(gateway, 'projects', [project('p-bob', 'bob', null), project('p-a', 'carl', 'team-a'), project('p-b', 'dana', 'team-b')]);
    for (const teamId of [{ $ne: null }, { $exists: true }, [{ $gt: '' }], { $in: ['team-a', 'team-b'] }, { $regex: '.*' }]) {
      const bob = await attacker(gateway, 'bob', { teamId });
      const answer = await bob.http('query { projects { id } }');
      expect(answer.errors).toBeUndefined();
      expect(answer.data!.projects.map((p: { id: string }) => p.id)).toEqual(['p-bob']);
      expectNothingLeaked(bob, ['p-a secret name', 'p-b secret name']);
    }
    // A team that is a value still works.
    const member = await attacker(gateway, 'bob', { teamId: 'team-a' });
    expect((await member.http('query { projects { id } }')).data!.projects.map((p: { id: string }) => p.id)).toEqual(['p-a', 'p-bob']);
  });
});
