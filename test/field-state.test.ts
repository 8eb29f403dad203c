// Unit: counters and add-wins sets (protocol/field-state.ts) through the one merge
// (gateway/sync/merge.ts), checked against reference models: a counter is the exact sum of every
// increment ever made, a set is an observed-remove set with a unique tag per addition.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HybridLogicalClock } from '../protocol/hlc.ts';
import { recordChange, stampsProblem, withDerivedValues, type MergedFields, type Stamps } from '../protocol/field-state.ts';
import { merge, type Version } from '../gateway/sync/merge.ts';

const fields: MergedFields = { n: 'counter', s: 'add-wins-set' };
const ELEMENTS = ['a', 'b', 'c'];

/** A device's local change, as the SDK records it. */
function change(local: Version, clock: HybridLogicalClock, edit: (doc: Record<string, unknown>) => Record<string, unknown>): Version {
  const after = edit(structuredClone(local.doc));
  const stamps = recordChange(fields, local.doc, after, local.stamps, () => clock.tick(), clock.node) ?? local.stamps;
  return { doc: withDerivedValues(fields, after, stamps), stamps };
}

/** Reference observed-remove set: every addition a unique tag; a removal removes the tags its replica saw. */
interface RefSet {
  tags: Set<string>;
  removed: Set<string>;
}
const refValue = (r: RefSet) => new Set([...r.tags].filter((t) => !r.removed.has(t)).map((t) => t.split('|')[0]!));
const refJoin = (a: RefSet, b: RefSet): RefSet => ({ tags: new Set([...a.tags, ...b.tags]), removed: new Set([...a.removed, ...b.removed]) });

type Op = { kind: 'inc'; device: number; amount: number } | { kind: 'add' | 'remove'; device: number; element: string } | { kind: 'sync' | 'retry'; device: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('inc' as const), device: fc.nat(2), amount: fc.integer({ min: -3, max: 5 }) }),
  fc.record({ kind: fc.constantFrom('add' as const, 'remove' as const), device: fc.nat(2), element: fc.constantFrom(...ELEMENTS) }),
  fc.record({ kind: fc.constantFrom('sync' as const, 'retry' as const), device: fc.nat(2) }),
);

describe('counters and add-wins sets', () => {
  it('converge to the exact sum and to the observed-remove set, whatever the order of syncs and retries', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        let now = 1_000;
        const clocks = [0, 1, 2].map((d) => new HybridLogicalClock(`d${d}`, () => now++));
        const created = change({ doc: { id: 'x', _deleted: false }, stamps: {} }, clocks[0]!, (d) => ({ ...d, n: 0, s: [] }));
        let server: Version = merge(null, created, { strategy: 'field-lww', fields });
        const locals = [server, server, server];
        const refs: RefSet[] = [0, 1, 2].map(() => ({ tags: new Set(), removed: new Set() }));
        let serverRef: RefSet = { tags: new Set(), removed: new Set() };
        let total = 0;
        let tag = 0;
        const sync = (d: number) => {
          server = merge(server, locals[d]!, { strategy: 'field-lww', fields });
          locals[d] = server;
          serverRef = refJoin(serverRef, refs[d]!);
          refs[d] = refJoin(serverRef, { tags: new Set(), removed: new Set() });
        };
        for (const step of ops) {
          const d = step.device;
          if (step.kind === 'inc') {
            locals[d] = change(locals[d]!, clocks[d]!, (doc) => ({ ...doc, n: (doc.n as number) + step.amount }));
            total += step.amount;
          } else if (step.kind === 'add') {
            const held = locals[d]!.doc.s as string[];
            locals[d] = change(locals[d]!, clocks[d]!, (doc) => ({ ...doc, s: [...held, step.element] }));
            if (!held.includes(step.element)) refs[d]!.tags.add(`${step.element}|${tag++}`);
          } else if (step.kind === 'remove') {
            locals[d] = change(locals[d]!, clocks[d]!, (doc) => ({ ...doc, s: (doc.s as string[]).filter((e) => e !== step.element) }));
            for (const t of refs[d]!.tags) if (t.startsWith(`${step.element}|`)) refs[d]!.removed.add(t);
          } else if (step.kind === 'sync') {
            sync(d);
          } else {
            // A push whose answer was lost, sent again: it must change nothing.
            const once = merge(server, locals[d]!, { strategy: 'field-lww', fields });
            expect(merge(once, locals[d]!, { strategy: 'field-lww', fields })).toEqual(once);
            server = once;
            serverRef = refJoin(serverRef, refs[d]!);
          }
        }
        for (const d of [0, 1, 2, 0, 1, 2]) sync(d);
        for (const local of locals) expect(local).toEqual(server);
        expect(server.doc.n).toBe(total);
        expect(new Set(server.doc.s as string[])).toEqual(refValue(serverRef));
        expect((server.doc.s as string[]).length).toBe(refValue(serverRef).size);
      }),
      { numRuns: 500 },
    );
  });

  it('counts a value that has no state yet (written before the field was a counter) as the server’s', () => {
    const clock = new HybridLogicalClock('dev');
    const legacy: Version = { doc: { id: 'x', n: 10, s: ['b', 'a'], _deleted: false }, stamps: {} };
    const local = change(legacy, clock, (doc) => ({ ...doc, n: 11, s: ['b', 'a', 'c'] }));
    expect(local.stamps.n).toEqual({ server: [10, 0], dev: [1, 0] });
    const merged = merge(legacy, local, { strategy: 'field-lww', fields });
    expect(merged.doc).toMatchObject({ n: 11, s: ['b', 'a', 'c'] }); // order of addition kept
  });

  it('keeps a set in the order its elements were added, also several at once', () => {
    const clock = new HybridLogicalClock('dev');
    const created = change({ doc: { id: 'x', _deleted: false }, stamps: {} }, clock, (doc) => ({ ...doc, s: ['user-9', 'user-10', 'user-1'] }));
    expect(created.doc.s).toEqual(['user-9', 'user-10', 'user-1']);
    const more = change(created, clock, (doc) => ({ ...doc, s: ['b', ...(doc.s as string[]), 'a'] }));
    expect(more.doc.s).toEqual(['user-9', 'user-10', 'user-1', 'b', 'a']); // an unordered set: additions go last
  });

  it('lets concurrent counter changes add up under every strategy', () => {
    const server: Version = { doc: { id: 'x', n: 3, _deleted: false }, stamps: { n: { d1: [3, 0] } } };
    const client: Version = { doc: { id: 'x', n: 2, _deleted: false }, stamps: { n: { d2: [2, 0] } } };
    for (const strategy of ['field-lww', 'document-lww', 'server-wins', () => ({ n: 100 })] as const) {
      expect(merge(server, client, { strategy, fields }).doc.n).toBe(5);
    }
  });

  it('refuses malformed states', () => {
    const bad: Array<[string, unknown]> = [
      ['n', { d1: [1] }],
      ['n', { d1: [-1, 0] }],
      ['n', 'not-a-state'],
      ['s', { add: { notjson: {} }, remove: {} }],
      ['s', { add: { '"a"': { d1: 'nope' } }, remove: {} }],
      ['s', { add: {} }],
      ['title', { d1: [1, 0] }],
    ];
    for (const [path, state] of bad) expect(stampsProblem(fields, { [path]: state } as Stamps), `${path}: ${JSON.stringify(state)}`).not.toBeNull();
    expect(stampsProblem(fields, { n: { d1: [1, 2] }, s: { add: { '"a"': { d1: new HybridLogicalClock('d1').tick() } }, remove: {} } })).toBeNull();
  });
});
