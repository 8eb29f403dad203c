// Issue 3: every Mango and RQL operator, through the gateway's one matcher; the RQL and Mango
// forms of the same query select the same documents.
import { describe, expect, it } from 'vitest';
import { compileFilter } from '../gateway/query/filter.ts';
import { loadModel } from '../protocol/model.ts';
import { parseRql } from '../protocol/rql.ts';
import { toFilter } from '../client-sdk/queries.ts';
import { SCHEMA } from './helpers/harness.ts';

const tasks = loadModel(SCHEMA).collections.find((c) => c.name === 'tasks')!;
const docs = [
  { _id: 't1', title: 'Buy milk', ownerId: 'ann', status: 'TODO', priority: 1, tags: ['home', 'shop'], dueDate: new Date('2026-12-01T00:00:00Z') },
  { _id: 't2', title: 'Write report', ownerId: 'bob', status: 'DONE', priority: 3, tags: ['work'], dueDate: new Date('2026-12-20T00:00:00Z') },
  { _id: 't3', title: 'buy GIFTS', ownerId: 'cat', status: 'IN_PROGRESS', priority: 5, tags: [], projectId: 'p1' },
  { _id: 't4', title: 'Call Bob', ownerId: 'ann', status: 'BLOCKED', priority: 2, tags: ['work', 'urgent'] },
].map((d) => ({ ...d, _sync: { seq: 1, updatedAt: new Date(), deleted: false } }));

const select = (filter: unknown) =>
  docs.filter((d) => compileFilter(tasks, filter, { queryableOnly: true }).matches(d as never)).map((d) => d._id);

// [what, RQL, args, Mango, expected ids]
const cases: Array<[string, string, unknown[], Record<string, unknown>, string[]]> = [
  ['$eq / ==', "ownerId == 'ann'", [], { ownerId: { $eq: 'ann' } }, ['t1', 't4']],
  ['$ne / !=', "ownerId != 'ann'", [], { ownerId: { $ne: 'ann' } }, ['t2', 't3']],
  ['$gt / >', 'priority > 2', [], { priority: { $gt: 2 } }, ['t2', 't3']],
  ['$gte / >=', 'priority >= 3', [], { priority: { $gte: 3 } }, ['t2', 't3']],
  ['$lt / <', 'priority < 2', [], { priority: { $lt: 2 } }, ['t1']],
  ['$lte / <=', 'priority <= 2', [], { priority: { $lte: 2 } }, ['t1', 't4']],
  ['$in / IN {…}', "status IN {'TODO', 'DONE'}", [], { status: { $in: ['TODO', 'DONE'] } }, ['t1', 't2']],
  ['$nin / NOT IN {…}', "NOT status IN {'TODO', 'DONE'}", [], { status: { $nin: ['TODO', 'DONE'] } }, ['t3', 't4']],
  ['$exists / != null', 'projectId != null', [], { projectId: { $exists: true } }, ['t3']],
  ['$and / AND', "ownerId == 'ann' AND priority > 1", [], { $and: [{ ownerId: 'ann' }, { priority: { $gt: 1 } }] }, ['t4']],
  ['$or / OR', "ownerId == 'bob' OR priority == 5", [], { $or: [{ ownerId: 'bob' }, { priority: 5 }] }, ['t2', 't3']],
  ['$not / NOT', 'NOT priority > 2', [], { priority: { $not: { $gt: 2 } } }, ['t1', 't4']],
  ['element in array', "'work' IN tags", [], { tags: 'work' }, ['t2', 't4']],
  ['BEGINSWITH', "title BEGINSWITH 'Buy'", [], { title: { $regex: '^Buy' } }, ['t1']],
  ['BEGINSWITH[c]', "title BEGINSWITH[c] 'buy'", [], { title: { $regex: '^buy', $options: 'i' } }, ['t1', 't3']],
  ['CONTAINS[c]', "title CONTAINS[c] 'bob'", [], { title: { $regex: 'bob', $options: 'i' } }, ['t4']],
  ['ENDSWITH', "title ENDSWITH 'port'", [], { title: { $regex: 'port$' } }, ['t2']],
  ['LIKE', "title LIKE '?uy *'", [], { title: { $regex: '^.uy .*$' } }, ['t1', 't3']],
  ['$0 arguments', 'priority >= $0 AND ownerId == $1', [2, 'ann'], { priority: { $gte: 2 }, ownerId: 'ann' }, ['t4']],
  ['dates', 'dueDate < $0', ['2026-12-10T00:00:00Z'], { dueDate: { $lt: '2026-12-10T00:00:00Z' } }, ['t1']],
  ['TRUEPREDICATE', 'TRUEPREDICATE', [], {}, ['t1', 't2', 't3', 't4']],
];

describe('query forms', () => {
  it.each(cases)('%s: RQL and Mango select the same documents', (_what, rql, args, mango, expected) => {
    expect(select(mango)).toEqual(expected);
    expect(select(parseRql(rql, args))).toEqual(expected);
    // and the SDK turns both into a filter the gateway accepts
    expect(select(toFilter(tasks, rql, args))).toEqual(expected);
    expect(select(toFilter(tasks, mango))).toEqual(expected);
  });
});
