// Unit: filters from plain GraphQL clients: allow-listed operators on schema fields only,
// translated to the stored form, with one meaning in MongoDB and in memory; the bounds on what
// one filter may cost; no key that reaches a prototype.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { toFilter } from '../client-sdk/queries.ts';
import { compileFilter } from '../gateway/query/filter.ts';
import {
  MAX_FILTER_DEPTH,
  MAX_FILTER_NODES,
  MAX_FILTER_PATTERNS,
  MAX_IN_VALUES,
  MAX_OPERAND_LENGTH,
  MAX_PATTERN_DOTS,
  MAX_PATTERN_LENGTH,
  MAX_PATTERN_WILDCARDS,
  QueryError,
  rewriteFilter,
  simplifyPattern,
} from '../protocol/filter.ts';
import { loadModel, ModelError } from '../protocol/model.ts';
import { compileView } from '../gateway/sync/view.ts';
import { UNRESTRICTED } from '../gateway/rules/permissions.ts';
import { Query } from 'mingo';
import { SCHEMA } from './helpers/harness.ts';

const tasks = loadModel(SCHEMA).collections.find((c) => c.name === 'tasks')!;
const stored = (fields: Record<string, unknown>) => ({ _id: 't1', _sync: { seq: 1, updatedAt: new Date(), deleted: false }, ...fields }) as never;

describe('filters', () => {
  it('maps id to _id and DateTime operands to dates', () => {
    const filter = compileFilter(tasks, { id: 't1', dueDate: { $lt: '2027-01-01T00:00:00Z' } });
    expect(filter.stored).toEqual({ _id: 't1', dueDate: { $lt: new Date('2027-01-01T00:00:00Z') } });
    expect(filter.matches(stored({ dueDate: new Date('2026-06-01T00:00:00Z') }))).toBe(true);
    expect(filter.matches(stored({ dueDate: new Date('2027-06-01T00:00:00Z') }))).toBe(false);
  });

  it('matches array elements, $in, $exists, $not and logical operators', () => {
    expect(compileFilter(tasks, { tags: 'urgent' }).matches(stored({ tags: ['work', 'urgent'] }))).toBe(true);
    expect(compileFilter(tasks, { status: { $in: ['TODO', 'DONE'] } }).matches(stored({ status: 'BLOCKED' }))).toBe(false);
    expect(compileFilter(tasks, { description: { $exists: false } }).matches(stored({}))).toBe(true);
    expect(compileFilter(tasks, { priority: { $not: { $gt: 2 } } }).matches(stored({ priority: 2 }))).toBe(true);
    expect(compileFilter(tasks, { $or: [{ priority: 1 }, { 'checklist.done': true }] }).matches(stored({ priority: 3, checklist: [{ text: 'a', done: true }] }))).toBe(true);
  });

  it('allows literal patterns with wildcards (what RQL string operators produce)', () => {
    const filter = compileFilter(tasks, { title: { $regex: '^Buy .*milk\\.$', $options: 'i' } });
    expect(filter.matches(stored({ title: 'buy oat milk.' }))).toBe(true);
    expect(filter.matches(stored({ title: 'buy oat milk!' }))).toBe(false);
  });

  it('restricts subscriptions to @queryable fields', () => {
    // Realm's text, then what to do about it.
    expect(() => compileFilter(tasks, { description: 'x' }, { queryableOnly: true })).toThrow(/^"description" is not a queryable field \(Task\.description is not queryable: mark it @queryable/);
    expect(compileFilter(tasks, { status: 'TODO' }, { queryableOnly: true }).matches(stored({ status: 'TODO' }))).toBe(true);
  });

  it("takes a list's length as a position with $exists (RQL's list.@count), and nothing else on a position", () => {
    const atLeastTwo = compileFilter(tasks, { 'tags.1': { $exists: true } }, { queryableOnly: true });
    expect(atLeastTwo.stored).toEqual({ 'tags.1': { $exists: true } });
    expect(atLeastTwo.matches(stored({ tags: ['a', 'b'] }))).toBe(true);
    expect(atLeastTwo.matches(stored({ tags: ['a'] }))).toBe(false);
    expect(() => compileFilter(tasks, { 'tags.1': 'b' })).toThrow('a position in a list takes only {$exists: true|false}');
    expect(() => compileFilter(tasks, { 'tags.1': { $exists: true, $eq: 'b' } })).toThrow('a position in a list takes only');
    expect(() => compileFilter(tasks, { 'title.1': { $exists: true } })).toThrow('unknown field title.1 in Task');
    expect(() => compileFilter(tasks, { 'tags.1234567': { $exists: true } })).toThrow('unknown field');
  });

  it.each([
    [{ $where: 'sleep(100)' }, 'unsupported operator $where'],
    [{ title: { $regex: '(a+)+$' } }, '$regex on title may only hold literal text'],
    [{ title: { $options: 'i' } }, '$options on title needs $regex'],
    [{ secret: 1 }, 'unknown field secret in Task'],
    [{ 'checklist.nope': 1 }, 'unknown field checklist.nope in Task'],
    [{ title: { nested: 'object' } }, 'filter values must be scalars'],
    [{ $or: [] }, '$or needs a non-empty array'],
    [{ dueDate: 'soon' }, '"soon" is not a date'],
  ])('refuses %j', (filter, message) => {
    expect(() => compileFilter(tasks, filter)).toThrow(message);
  });
});

/** `levels` of `$and` around `inner`. */
const nested = (levels: number, inner: Record<string, unknown> = { priority: 1 }): Record<string, unknown> => {
  let filter = inner;
  for (let i = 0; i < levels; i++) filter = { $and: [filter] };
  return filter;
};
/** `{ $or: [{ priority: 0 }, { priority: 1 }, …] }`: 1 + 2n conditions and operands. */
const conditions = (n: number) => ({ $or: Array.from({ length: n }, (_, i) => ({ priority: i })) });
const patterns = (n: number) => ({ $or: Array.from({ length: n }, (_, i) => ({ title: { $regex: `x${i}` } })) });
const notGreater = { priority: { $not: { $gt: 1 } } };

describe('filter limits', () => {
  it.each([
    ['conditions and operands', conditions((MAX_FILTER_NODES - 2) / 2), conditions(MAX_FILTER_NODES / 2), `filter has more than ${MAX_FILTER_NODES} conditions and operands (MAX_FILTER_NODES)`],
    ['nesting of $and, $or, $nor', nested(MAX_FILTER_DEPTH), nested(MAX_FILTER_DEPTH + 1), `filter nests $and, $or, $nor and $not more than ${MAX_FILTER_DEPTH} deep (MAX_FILTER_DEPTH)`],
    ['nesting of $not', nested(MAX_FILTER_DEPTH - 1, notGreater), nested(MAX_FILTER_DEPTH, notGreater), `more than ${MAX_FILTER_DEPTH} deep (MAX_FILTER_DEPTH)`],
    ['values of $in', { status: { $in: Array(MAX_IN_VALUES).fill('TODO') } }, { status: { $in: Array(MAX_IN_VALUES + 1).fill('TODO') } }, `$in on status has more than ${MAX_IN_VALUES} values (MAX_IN_VALUES)`],
    ['values of $nin', { tags: { $nin: Array(MAX_IN_VALUES).fill('x') } }, { tags: { $nin: Array(MAX_IN_VALUES + 1).fill('x') } }, `$nin on tags has more than ${MAX_IN_VALUES} values (MAX_IN_VALUES)`],
    ['length of an operand', { title: 'a'.repeat(MAX_OPERAND_LENGTH) }, { title: { $ne: 'a'.repeat(MAX_OPERAND_LENGTH + 1) } }, `a value for title is longer than ${MAX_OPERAND_LENGTH} characters (MAX_OPERAND_LENGTH)`],
    ['length of an $in value', { tags: { $in: ['a'.repeat(MAX_OPERAND_LENGTH)] } }, { tags: { $in: ['a'.repeat(MAX_OPERAND_LENGTH + 1)] } }, `a value for tags is longer than ${MAX_OPERAND_LENGTH} characters (MAX_OPERAND_LENGTH)`],
    ['$regex conditions', patterns(MAX_FILTER_PATTERNS), patterns(MAX_FILTER_PATTERNS + 1), `filter has more than ${MAX_FILTER_PATTERNS} $regex conditions (MAX_FILTER_PATTERNS)`],
    ['length of a pattern', { title: { $regex: 'a'.repeat(MAX_PATTERN_LENGTH) } }, { title: { $regex: 'a'.repeat(MAX_PATTERN_LENGTH + 1) } }, `$regex on title is longer than ${MAX_PATTERN_LENGTH} characters (MAX_PATTERN_LENGTH)`],
    ['.* wildcards', { title: { $regex: 'a.*'.repeat(MAX_PATTERN_WILDCARDS) } }, { title: { $regex: 'a.*'.repeat(MAX_PATTERN_WILDCARDS + 1) } }, `$regex on title has more than ${MAX_PATTERN_WILDCARDS} .* wildcards (MAX_PATTERN_WILDCARDS)`],
    // Escaped dots are text, not wildcards.
    ['. wildcards', { title: { $regex: `\\.${'.'.repeat(MAX_PATTERN_DOTS)}\\.` } }, { title: { $regex: '.'.repeat(MAX_PATTERN_DOTS + 1) } }, `$regex on title has more than ${MAX_PATTERN_DOTS} . wildcards (MAX_PATTERN_DOTS)`],
  ])('%s: up to the limit is allowed, past it refused', (_what, atLimit, pastLimit, message) => {
    expect(() => compileFilter(tasks, atLimit)).not.toThrow();
    expect(() => compileFilter(tasks, pastLimit)).toThrow(message);
  });

  it('refuses a very deep filter without exhausting the stack', () => {
    expect(() => compileFilter(tasks, nested(100_000))).toThrow(`more than ${MAX_FILTER_DEPTH} deep`);
  });

  it('are the same for subscriptions the SDK translates', () => {
    expect(() => toFilter(tasks, `${'NOT '.repeat(MAX_FILTER_DEPTH)}priority > 1`)).not.toThrow();
    expect(() => toFilter(tasks, `${'NOT '.repeat(MAX_FILTER_DEPTH + 1)}priority > 1`)).toThrow(`more than ${MAX_FILTER_DEPTH} deep`);
    expect(() => toFilter(tasks, 'ownerId IN $0', [Array(MAX_IN_VALUES + 1).fill('ann')])).toThrow('(MAX_IN_VALUES)');
  });
});

describe('patterns in memory', () => {
  it('run in linear time, including those a backtracking engine takes forever on', () => {
    const long = stored({ title: 'a'.repeat(1_000_000), tags: ['a'.repeat(100_000)] });
    const started = performance.now();
    for (const pattern of ['.*.*.*.*.*.*.*.*#', '.*a.*a.*a.*a.*c', 'a........#', '^.*a.*a.*a.*a.*a.*a.*a.*b$']) {
      expect(compileFilter(tasks, { title: { $regex: pattern, $options: 'i' } }).matches(long), pattern).toBe(false);
      expect(compileFilter(tasks, { tags: { $regex: pattern } }).matches(long), pattern).toBe(false);
    }
    expect(performance.now() - started).toBeLessThan(2_000);
  });

  it('match as $regex does: array elements, $not, case-insensitivity', () => {
    expect(compileFilter(tasks, { tags: { $regex: '^ur' } }).matches(stored({ tags: ['work', 'urgent'] }))).toBe(true);
    expect(compileFilter(tasks, { tags: { $regex: '^ur' } }).matches(stored({ tags: [] }))).toBe(false);
    expect(compileFilter(tasks, { 'checklist.text': { $regex: 'milk$', $options: 'i' } }).matches(stored({ checklist: [{ text: 'Buy MILK', done: false }] }))).toBe(true);
    expect(compileFilter(tasks, { title: { $not: { $regex: 'milk' } } }).matches(stored({ title: 'buy milk' }))).toBe(false);
    expect(compileFilter(tasks, { title: { $not: { $regex: 'milk' } } }).matches(stored({}))).toBe(true);
    expect(compileFilter(tasks, { title: { $regex: 'a\\.b\\*c\\/d-e' } }).matches(stored({ title: 'xa.b*c/d-ex' }))).toBe(true);
    // Not text: a BAD_QUERY (issue 13, point 8), not a pattern that silently matches nothing.
    expect(() => compileFilter(tasks, { priority: { $regex: '1' } })).toThrow('$regex on Task.priority: Int values are not text');
  });

  it('are simplified in the stored form: a run of wildcards becomes its dots and one .*', () => {
    expect(compileFilter(tasks, { title: { $regex: '^.*.*.*.*.*.*.*.*#$', $options: 'i' } }).stored).toEqual({ title: { $regex: '^.*#$', $options: 'i' } });
    expect(compileFilter(tasks, { title: { $not: { $regex: 'a.*..*.b' } } }).stored).toEqual({ title: { $not: { $regex: 'a...*b' } } });
    expect(simplifyPattern('\\..*.*x\\..*')).toBe('\\..*x\\..*');
    expect(simplifyPattern('\\\\.*.*')).toBe('\\\\.*');
    expect(simplifyPattern('abc')).toBe('abc');
  });
});

describe('prototype keys', () => {
  const raw = (json: string) => JSON.parse(json) as Record<string, unknown>;

  it.each([
    ['{"__proto__": {"polluted": 1}}', '__proto__'],
    ['{"constructor": "x"}', 'constructor'],
    ['{"prototype": "x"}', 'prototype'],
    ['{"checklist.__proto__": "x"}', '__proto__'],
    ['{"checklist.constructor.prototype": "x"}', 'constructor'],
    ['{"$or": [{"title": "x"}, {"__proto__": {"$eq": 1}}]}', '__proto__'],
  ])('refuses %s', (json, key) => {
    expect(() => compileFilter(tasks, raw(json))).toThrow(`names ${key}, which no filter may use`);
    expect(() => rewriteFilter(tasks, raw(json), {})).toThrow(`names ${key}, which no filter may use`);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('builds rewritten filters with own keys only', () => {
    const out = rewriteFilter(tasks, { title: 'x', $or: [{ priority: { $gt: 1 } }] }, { field: (name) => (name === 'title' ? '__proto__' : name) });
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
    expect(Object.keys(out)).toEqual(['__proto__', '$or']);
  });
});

// Issue 13, point 8: an operand of another type than its field's is a BAD_QUERY naming the
// field and both types, not a comparison that selects nothing.
describe('operand types', () => {
  const records = loadModel(readFileSync(resolve(import.meta.dirname, 'fixtures/bson-types.graphql'), 'utf8')).collections[0]!;
  const refused = (collection: typeof tasks, filter: Record<string, unknown>): string => {
    try {
      compileFilter(collection, filter);
    } catch (error) {
      expect(error).toBeInstanceOf(QueryError);
      expect(error).toMatchObject({ code: 'BAD_QUERY', realmCode: 226 });
      return (error as Error).message;
    }
    throw new Error(`${JSON.stringify(filter)} was accepted`);
  };

  it.each<[Record<string, unknown>, string]>([
    [{ priority: 'high' }, 'cannot compare Task.priority (Int) with "high" (a string)'],
    [{ priority: { $gt: '3' } }, 'cannot compare Task.priority (Int) with "3" (a string)'],
    [{ priority: { $in: [1, true] } }, 'cannot compare Task.priority (Int) with true (a boolean)'],
    [{ priority: { $not: { $lt: '2026-01-01T00:00:00Z' } } }, 'cannot compare Task.priority (Int) with "2026-01-01T00:00:00Z" (a string)'],
    [{ priority: new Date(0) }, 'cannot compare Task.priority (Int) with 1970-01-01T00:00:00.000Z (a date)'],
    [{ title: 5 }, 'cannot compare Task.title (String) with 5 (a number)'],
    [{ ownerId: { $ne: false } }, 'cannot compare Task.ownerId (String) with false (a boolean)'],
    [{ id: 7 }, 'cannot compare Task.id (ID) with 7 (a number)'],
    [{ projectId: { $nin: [1] } }, 'cannot compare Task.projectId (ID) with 1 (a number)'],
    [{ status: 1 }, 'cannot compare Task.status (TaskStatus) with 1 (a number)'],
    [{ tags: 5 }, 'cannot compare Task.tags ([String]) with 5 (a number)'],
    [{ dueDate: 1_700_000_000_000 }, 'cannot compare Task.dueDate (DateTime) with 1700000000000 (a number)'],
    [{ dueDate: { $lt: true } }, 'cannot compare Task.dueDate (DateTime) with true (a boolean)'],
    [{ dueDate: 'soon' }, 'cannot compare Task.dueDate (DateTime) with "soon" (a string): "soon" is not a date'],
    [{ 'checklist.done': 'yes' }, 'cannot compare Task.checklist.done (Boolean) with "yes" (a string)'],
    [{ 'checklist.text': 1 }, 'cannot compare Task.checklist.text (String) with 1 (a number)'],
    [{ checklist: 'x' }, 'cannot compare Task.checklist ([ChecklistItem]) with "x" (a string): an embedded object is compared through its fields'],
  ])('refuses %j', (filter, message) => {
    expect(refused(tasks, filter)).toBe(message);
  });

  it.each<[Record<string, unknown>, string]>([
    [{ ratio: '0.5' }, 'cannot compare Record.ratio (Float) with "0.5" (a string)'],
    [{ count: { $gte: 'many' } }, 'cannot compare Record.count (Int) with "many" (a string)'],
    [{ big: '1.5' }, 'cannot compare Record.big (Long) with "1.5" (a string): "1.5" is not a 64-bit integer (a decimal string or a safe integer)'],
    [{ big: 2 ** 60 }, `cannot compare Record.big (Long) with ${2 ** 60} (a number): ${2 ** 60} is not a 64-bit integer (a decimal string or a safe integer)`],
    [{ big: true }, 'cannot compare Record.big (Long) with true (a boolean)'],
    [{ bigs: 'x' }, 'cannot compare Record.bigs ([Long]) with "x" (a string): "x" is not a 64-bit integer (a decimal string or a safe integer)'],
    [{ price: 'cheap' }, 'cannot compare Record.price (Decimal) with "cheap" (a string): "cheap" is not a decimal number (a string such as "1.10", or a number)'],
    [{ price: false }, 'cannot compare Record.price (Decimal) with false (a boolean)'],
    [{ ownerRef: 5 }, 'cannot compare Record.ownerRef (ObjectId) with 5 (a number)'],
    [{ ownerRef: 'xyz' }, 'cannot compare Record.ownerRef (ObjectId) with "xyz" (a string): "xyz" is not an ObjectId (24 hex digits)'],
    [{ token: 'not-a-uuid' }, 'cannot compare Record.token (UUID) with "not-a-uuid" (a string): "not-a-uuid" is not a UUID (8-4-4-4-12 hex digits)'],
    [{ at: 0 }, 'cannot compare Record.at (DateTime) with 0 (a number)'],
    [{ count: { $regex: '1' } }, '$regex on Record.count: Int values are not text (BEGINSWITH, CONTAINS, ENDSWITH, LIKE and [c] apply to strings)'],
  ])('refuses %j on every BSON type', (filter, message) => {
    expect(refused(records, filter)).toBe(message);
  });

  it('keeps the wire forms of typed operands, and null for any type', () => {
    for (const filter of [
      { big: '9007199254740993' }, { big: { $gt: 5 } }, { bigs: '-3' },
      { price: '1.10' }, { price: { $lt: 2.5 } },
      { ownerRef: '5f1d7f3e9c8b7a6d5e4f3a21' }, { ownerRef: '5F1D7F3E9C8B7A6D5E4F3A21' },
      { token: '3b241101-e2bb-4255-8caf-4136c566a962' },
      { at: new Date(0) }, { at: { $gte: '2026-01-01T00:00:00Z' } },
      { ratio: 1 }, { ratio: 0.5 }, { count: { $in: [1, 2.5] } },
      { title: null }, { count: { $ne: null } }, { at: { $in: [null, '2026-01-01T00:00:00Z'] } }, { ownerRef: null }, { bigs: null },
    ]) {
      expect(() => compileFilter(records, filter), JSON.stringify(filter)).not.toThrow();
    }
    for (const filter of [{ priority: null }, { status: { $in: ['TODO', null] } }, { dueDate: { $ne: null } }, { 'checklist.done': false }, { tags: { $exists: true } }]) {
      expect(() => compileFilter(tasks, filter), JSON.stringify(filter)).not.toThrow();
    }
  });

  it('checks subscriptions the SDK translates from RQL, with the same messages', () => {
    expect(() => toFilter(tasks, "priority == 'high'")).toThrow('cannot compare Task.priority (Int) with "high" (a string)');
    expect(() => toFilter(tasks, 'dueDate > 5')).toThrow('cannot compare Task.dueDate (DateTime) with 5 (a number)');
    expect(() => toFilter(tasks, 'title == $0', [true])).toThrow('cannot compare Task.title (String) with true (a boolean)');
    expect(() => toFilter(tasks, "priority BEGINSWITH '1'")).toThrow('$regex on Task.priority: Int values are not text');
    expect(() => toFilter(tasks, "description == 'x'")).toThrow(/^"description" is not a queryable field/);
    expect(toFilter(tasks, 'dueDate == nil AND priority != nil')).toEqual({ $and: [{ dueDate: { $eq: null } }, { priority: { $ne: null } }] });
  });
});

// Issue 13, point 10: a subscription reaches top-level fields only.
describe('paths through embedded objects in subscriptions', () => {
  const message = 'Task.checklist.done: Flexible Sync subscriptions cannot query through embedded objects or links, only top-level @queryable fields';

  it('are refused, wherever the path is, with a reason', () => {
    expect(() => compileFilter(tasks, { 'checklist.done': true }, { queryableOnly: true, subscription: true })).toThrow(message);
    expect(() => compileFilter(tasks, { $or: [{ priority: 1 }, { 'checklist.done': { $ne: true } }] }, { queryableOnly: true, subscription: true })).toThrow(message);
    expect(() => toFilter(tasks, 'checklist.done == true')).toThrow(message);
    expect(() => toFilter(tasks, 'ANY checklist.done == false')).toThrow(message);
    expect(() => toFilter(tasks, { 'checklist.text': 'x' })).toThrow('Task.checklist.text: Flexible Sync subscriptions cannot query through embedded objects or links');
    expect(() => compileView(tasks, [{ 'checklist.done': true }], UNRESTRICTED)).toThrow(message);
  });

  it('stay allowed in plain GraphQL filters, which are not subscriptions', () => {
    expect(compileFilter(tasks, { 'checklist.done': true }).matches(stored({ checklist: [{ text: 'a', done: true }] }))).toBe(true);
  });
});

// Issue 13, point 9: Realm's indexed queryable field.
describe('an @indexedQueryable field', () => {
  const sdl = (fields: string) => `type Note @collection(name: "notes") { id: ID! ${fields} }`;
  const notes = loadModel(sdl('teamId: String! @indexedQueryable  priority: Int @queryable  tags: [String!] @queryable  body: String')).collections[0]!;
  const subscribe = (filter: unknown) => compileFilter(notes, filter, { queryableOnly: true, subscription: true });
  const message = /^Note\.teamId is the indexed queryable field: every Flexible Sync subscription on Note must constrain it at the top level with == or IN, ANDed with anything else/;

  it('is read from schema.graphql: queryable, at most one per collection, a scalar or an enum', () => {
    expect(notes.indexedQueryable).toBe('teamId');
    expect(notes.fields.find((f) => f.name === 'teamId')!.queryable).toBe(true);
    expect(loadModel(sdl('a: String')).collections[0]!.indexedQueryable).toBeUndefined();
    expect(() => loadModel(sdl('a: String @indexedQueryable b: Int @indexedQueryable'))).toThrow(new ModelError('Note: at most one field can be @indexedQueryable (a, b are)'));
    expect(() => loadModel(sdl('a: [String!] @indexedQueryable'))).toThrow('Note.a: @indexedQueryable needs a scalar or an enum, not a list');
    expect(() => loadModel(sdl('a: Mixed @indexedQueryable'))).toThrow('@indexedQueryable needs a scalar or an enum');
    expect(() => loadModel(`${sdl('inner: Inner')} type Inner { a: String @indexedQueryable }`)).toThrow('Inner.a: only top-level fields of a @collection type can be @indexedQueryable');
    // The project's schema declares the directive.
    expect(SCHEMA).toContain('directive @indexedQueryable on FIELD_DEFINITION');
  });

  it.each<[string, unknown]>([
    ['equality', { teamId: 'a' }],
    ['$eq', { teamId: { $eq: 'a' } }],
    ['$in', { teamId: { $in: ['a', 'b'] } }],
    ['equality beside other fields', { teamId: 'a', priority: { $gt: 1 } }],
    ['equality in a top-level $and', { $and: [{ priority: 1 }, { teamId: 'a' }] }],
    ['equality in an $and inside a top-level $and', { $and: [{ priority: 1 }, { $and: [{ tags: 'x' }, { teamId: { $in: ['a'] } }] }] }],
    ['equality ANDed with an $or', { $and: [{ teamId: 'a' }, { $or: [{ priority: 1 }, { tags: 'x' }] }] }],
  ])('accepts a subscription that constrains it: %s', (_what, filter) => {
    expect(() => subscribe(filter)).not.toThrow();
  });

  it.each<[string, unknown]>([
    ['no filter', {}],
    ['another field only', { priority: 1 }],
    ['$ne', { teamId: { $ne: 'a' } }],
    ['a range', { teamId: { $gt: 'a' } }],
    ['$nin', { teamId: { $nin: ['a'] } }],
    ['$exists', { teamId: { $exists: true } }],
    ['inside $or', { $or: [{ teamId: 'a' }, { teamId: 'b' }] }],
    ['one branch of an $or', { $or: [{ teamId: 'a' }, { priority: 1 }] }],
    ['inside $nor', { $nor: [{ teamId: { $ne: 'a' } }] }],
    ['inside $not', { teamId: { $not: { $ne: 'a' } } }],
  ])('refuses a subscription that does not: %s', (_what, filter) => {
    expect(() => subscribe(filter)).toThrow(message);
    expect(() => subscribe(filter)).toThrow(QueryError);
  });

  it('is checked by the SDK before sending, for RQL and Mango alike', () => {
    const teams = ["teamId == 'a'", "teamId == $0 AND priority > 1", "teamId IN {'a', 'b'}", "priority > 1 && teamId == 'a'", "(teamId == 'a' AND priority > 1) AND 'x' IN tags"];
    for (const query of teams) expect(() => toFilter(notes, query, ['a']), query).not.toThrow();
    for (const query of ['TRUEPREDICATE', "teamId == 'a' OR priority > 1", "teamId != 'a'", "NOT teamId != 'a'", "teamId BEGINSWITH 'a'", "priority > 1"]) {
      expect(() => toFilter(notes, query), query).toThrow(message);
    }
    expect(() => toFilter(notes, { priority: 1 })).toThrow(message);
  });

  it('is checked by the gateway where subscriptions arrive (views, bootstraps), and nowhere else', () => {
    expect(() => compileView(notes, [{ teamId: 'a' }, { priority: 1 }], UNRESTRICTED)).toThrow(message);
    expect(() => compileView(notes, [{ teamId: 'a' }, { teamId: { $in: ['b'] }, priority: 1 }], UNRESTRICTED)).not.toThrow();
    expect(compileView(notes, null, UNRESTRICTED).filter).toBeNull(); // no subscriptions: a stock client
    expect(() => compileFilter(notes, { priority: 1 })).not.toThrow(); // a plain GraphQL list
    expect(() => compileFilter(notes, { priority: 1 }, { queryableOnly: true })).not.toThrow(); // a rule
  });

  it('selects what the rest of the query says, within the constrained values', () => {
    const filter = toFilter(notes, "teamId IN {'a', 'b'} AND priority >= 2");
    const docs = [{ teamId: 'a', priority: 2 }, { teamId: 'b', priority: 1 }, { teamId: 'c', priority: 3 }, { teamId: 'b', priority: 5 }];
    expect(docs.filter((d) => new Query(filter).test(d))).toEqual([docs[0], docs[3]]);
  });
});
