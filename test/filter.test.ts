// Unit: filters from plain GraphQL clients: allow-listed operators on schema fields only,
// translated to the stored form, with one meaning in MongoDB and in memory; the bounds on what
// one filter may cost; no key that reaches a prototype.
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
  rewriteFilter,
  simplifyPattern,
} from '../protocol/filter.ts';
import { loadModel } from '../protocol/model.ts';
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
    expect(() => compileFilter(tasks, { description: 'x' }, { queryableOnly: true })).toThrow('Task.description is not queryable');
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
    expect(compileFilter(tasks, { priority: { $regex: '1' } }).matches(stored({ priority: 1 }))).toBe(false);
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
