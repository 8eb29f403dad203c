// Rule expressions decided for one session (gateway/rules/expressions.ts): expansions stand for
// the user's values, and a missing value is missing, never a placeholder, so it never widens
// what a role grants, not even under $nor.
import { Query } from 'mingo';
import { describe, expect, it } from 'vitest';
import { resolve, type Expansions } from '../gateway/rules/expressions.ts';

const session = (customData: Record<string, unknown> = {}): Expansions => ({
  user: { id: 'ann', data: { sub: 'ann', role: 'lead' }, custom_data: customData },
  values: { adminIds: ['root'], limits: { max: 3 } },
  environment: { tag: 'production', values: { publicTeam: 'lobby' } },
});
const DOCS = [{ team: 'red', owner: 'ann' }, { team: 'blue', owner: 'bob' }, { owner: 'carl' }];
/** The documents a resolved expression selects. */
const selected = (resolved: unknown) => (typeof resolved === 'boolean' ? (resolved ? DOCS : []) : DOCS.filter((d) => new Query(resolved as object).test(d)));

describe('rule expressions', () => {
  it('replaces expansions with the session’s values: user, claims, custom data, values, environment', () => {
    expect(resolve({ owner: '%%user.id' }, session())).toEqual({ owner: 'ann' });
    expect(resolve({ '%%user.data.role': 'lead' }, session())).toBe(true);
    expect(resolve({ team: { $in: '%%user.custom_data.teams' } }, session({ teams: ['red'] }))).toEqual({ team: { $in: ['red'] } });
    expect(resolve({ '%%user.id': { $in: '%%values.adminIds' } }, session())).toBe(false);
    expect(resolve({ '%%values.limits.max': { $gte: 3 } }, session())).toBe(true);
    expect(resolve({ team: '%%environment.values.publicTeam' }, session())).toEqual({ team: 'lobby' });
    expect(resolve({ '%%environment.tag': 'production' }, session())).toBe(true);
  });

  it('a condition on a missing value is decided as MongoDB decides it for an absent field', () => {
    expect(resolve({ '%%user.custom_data.lead': { $exists: true } }, session())).toBe(false);
    expect(resolve({ '%%user.custom_data.lead': { $exists: false } }, session())).toBe(true);
    expect(resolve({ '%%user.custom_data.isAdmin': true }, session())).toBe(false);
    expect(resolve({ '%%environment.values.nothing': { $exists: true } }, session())).toBe(false);
  });

  it('a missing operand selects nothing where it grants, and nothing more under $nor', () => {
    expect(selected(resolve({ team: { $in: '%%user.custom_data.teams' } }, session()))).toEqual([]);
    expect(selected(resolve({ team: '%%user.custom_data.team' }, session()))).toEqual([]);
    expect(selected(resolve({ team: { $ne: '%%user.custom_data.team' } }, session()))).toEqual([]);
    // Under $nor the undecidable condition counts as true, so the $nor selects nothing rather than everything.
    expect(selected(resolve({ $nor: [{ team: '%%user.custom_data.team' }] }, session()))).toEqual([]);
    // The rest of an $or still grants what it grants.
    expect(selected(resolve({ $or: [{ owner: '%%user.id' }, { team: { $in: '%%user.custom_data.teams' } }] }, session()))).toEqual([DOCS[0]]);
  });

  it('a value the field cannot be compared with leaves that condition undecided, not the whole expression', () => {
    const numbersOnly = (condition: Record<string, unknown>) => {
      if (!('level' in condition)) return true;
      const value = typeof condition.level === 'object' && condition.level !== null ? Object.values(condition.level)[0] : condition.level;
      return typeof value === 'number';
    };
    const expression = { $or: [{ owner: '%%user.id' }, { level: { $gte: '%%user.custom_data.level' } }] };
    expect(resolve(expression, session({ level: 'high' }), numbersOnly)).toEqual({ owner: 'ann' });
    expect(resolve(expression, session({ level: 2 }), numbersOnly)).toEqual({ $or: [{ owner: 'ann' }, { level: { $gte: 2 } }] });
    expect(resolve({ $nor: [{ level: '%%user.custom_data.level' }] }, session({ level: 'high' }), numbersOnly)).toBe(false);
  });

  it('custom data cannot smuggle in an operator: an object where a value belongs is missing', () => {
    expect(selected(resolve({ team: '%%user.custom_data.team' }, session({ team: { $ne: null } })))).toEqual([]);
    expect(resolve({ team: { $in: '%%user.custom_data.teams' } }, session({ teams: ['red', { $gt: '' }] }))).toEqual({ team: { $in: ['red'] } });
  });

  it('mixes conditions on the user with conditions on the document', () => {
    const expression = { $or: [{ '%%user.custom_data.lead': true }, { owner: '%%user.id' }] };
    expect(resolve(expression, session({ lead: true }))).toBe(true);
    expect(resolve(expression, session())).toEqual({ owner: 'ann' });
  });
});
