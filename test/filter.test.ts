// Unit: filters from plain GraphQL clients: allow-listed operators on schema fields only,
// translated to the stored form, with one meaning in MongoDB and in memory.
import { describe, expect, it } from 'vitest';
import { compileFilter } from '../gateway/query/filter.ts';
import { loadModel } from '../protocol/model.ts';
import { SCHEMA } from './helpers/harness.ts';

const tasks = loadModel(SCHEMA).collections.find((c) => c.name === 'tasks')!;
const stored = (fields: Record<string, unknown>) => ({ _id: 't1', _sync: { seq: 1, updatedAt: new Date(), deleted: false }, ...fields }) as never;

describe('filters', () => {
  it('maps id to _id and DateTime operands to dates', () => {
    const filter = compileFilter(tasks, { id: 't1', dueDate: { $lt: '2027-01-01T00:00:00Z' } });
    expect(filter.mongo).toEqual({ $and: [{ _id: 't1', dueDate: { $lt: new Date('2027-01-01T00:00:00Z') } }, { '_sync.deleted': false }] });
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
