// gateway/query/containment.ts: a bootstrap is answered empty without a read only when its query
// is proven to select nothing the held queries do not. A wrong proof would lose documents on a
// device, so the property checks every proof against mingo on random documents, arrays included.
import fc from 'fast-check';
import { Query } from 'mingo';
import { Int32, Long, ObjectId } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { coveredBy } from '../gateway/query/containment.ts';

describe('coveredBy', () => {
  it('proves the covers Flexible Sync meets: narrowing, and a query inside one held', () => {
    expect(coveredBy({ projectId: 'C' }, { projectId: { $in: ['B', 'C'] } })).toBe(true);
    expect(coveredBy({ projectId: { $in: ['B'] } }, { $or: [{ projectId: 'A' }, { projectId: { $in: ['B', 'C'] } }] })).toBe(true);
    expect(coveredBy({ projectId: 'C', status: 'DONE' }, { projectId: 'C' })).toBe(true);
    expect(coveredBy({ $and: [{ projectId: 'C' }, { priority: { $gt: 3 } }] }, { projectId: { $eq: 'C' } })).toBe(false); // $gt: not understood
    expect(coveredBy({ $and: [{ projectId: 'C' }, { status: 'DONE' }] }, { projectId: { $eq: 'C' } })).toBe(true);
    expect(coveredBy({ status: 'DONE' }, {})).toBe(true); // everything held
    expect(coveredBy({ _id: new ObjectId('65f000000000000000000001') }, { _id: { $in: [new ObjectId('65f000000000000000000001')] } })).toBe(true);
  });

  it('proves nothing it cannot: wider queries, other fields, other operators, other BSON types', () => {
    expect(coveredBy({ projectId: { $in: ['B', 'C'] } }, { projectId: 'C' })).toBe(false);
    expect(coveredBy({ projectId: 'C' }, { projectId: 'C', status: 'DONE' })).toBe(false);
    expect(coveredBy({}, { projectId: 'C' })).toBe(false);
    expect(coveredBy({ $or: [{ projectId: 'C' }] }, { projectId: 'C' })).toBe(false);
    expect(coveredBy({ title: { $regex: 'a' } }, { title: { $regex: 'a' } })).toBe(false);
    expect(coveredBy({ tags: ['a'] }, { tags: ['a'] })).toBe(false); // arrays and documents: not scalars
    expect(coveredBy({ n: new Long(1) }, { n: new Int32(1) })).toBe(false); // equal in MongoDB, not proven here
    expect(coveredBy({ priority: 1 }, { $nor: [{ priority: 2 }] })).toBe(false);
  });

  it('never proves a cover that a document contradicts (random filters and documents, arrays included)', () => {
    const value = fc.constantFrom<unknown>('a', 'b', 'c', 1, 2, null, true);
    const condition = fc.oneof(value, value.map((v) => ({ $eq: v })), fc.uniqueArray(value, { maxLength: 3 }).map((vs) => ({ $in: vs })), value.map((v) => ({ $ne: v })));
    const fieldName = fc.constantFrom('x', 'y', 'z');
    const conjunction = fc.dictionary(fieldName, condition, { maxKeys: 3 });
    const filter = fc.oneof(conjunction, fc.array(conjunction, { minLength: 1, maxLength: 3 }).map((parts) => ({ $and: parts })));
    const union = fc.oneof(filter, fc.array(filter, { minLength: 1, maxLength: 3 }).map((parts) => ({ $or: parts })));
    const fieldValue = fc.oneof(value, fc.array(value, { maxLength: 3 }));
    const doc = fc.record({ x: fieldValue, y: fieldValue, z: fieldValue }, { requiredKeys: [] });
    let proofs = 0;
    fc.assert(
      fc.property(filter, union, fc.array(doc, { minLength: 20, maxLength: 40 }), (query, held, docs) => {
        if (!coveredBy(query, held)) return;
        proofs++;
        const selects = new Query(query as Record<string, unknown>);
        const holds = new Query(held as Record<string, unknown>);
        for (const d of docs) if (selects.test(d)) expect(holds.test(d), JSON.stringify({ query, held, d })).toBe(true);
      }),
      { numRuns: 5_000 },
    );
    expect(proofs).toBeGreaterThan(50); // the property checked real proofs, not only refusals
  });
});
