// Unit: counters and add-wins sets (protocol/field-state.ts) through the one merge
// (protocol/merge.ts), checked against reference models: a counter is the exact sum of every
// increment ever made, a set is an observed-remove set with a unique tag per addition.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatStamp, HybridLogicalClock } from '../protocol/hlc.ts';
import {
  withoutRemovedElements,
  joinStamps,
  MAX_COUNTER_ENTRIES,
  MAX_SET_ELEMENTS,
  MAX_SET_STAMPS,
  MAX_STAMP_PATHS,
  mergedFields,
  recordChange,
  stampsProblem,
  withDerivedValues,
  type MergedFields,
  type Stamps,
} from '../protocol/field-state.ts';
import { loadModel } from '../protocol/model.ts';
import { merge, type Version } from '../protocol/merge.ts';

const fields: MergedFields = { n: 'counter', s: 'add-wins-set' };
/** A collection with the fields above, and embedded objects and lists for paths. */
const things = loadModel(`
  type Inner { c: Int }
  type Meta { a: Int, b: Inner }
  type Thing @collection(name: "things") { id: ID!, title: String, n: Int @counter, s: [String!] @addWinsSet, meta: Meta, list: [Meta!], tags: [String!] }
`).collections[0]!;
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
    for (const [path, state] of bad) expect(stampsProblem(things, { [path]: state } as Stamps), `${path}: ${JSON.stringify(state)}`).not.toBeNull();
    expect(stampsProblem(things, { n: { d1: [1, 2] }, s: { add: { '"a"': { d1: new HybridLogicalClock('d1').tick() } }, remove: {} } })).toBeNull();
    expect(mergedFields(things)).toEqual(fields);
  });

  it('accepts only paths that name a field of the type, dotted into embedded objects', () => {
    const stamp = new HybridLogicalClock('d1').tick();
    for (const path of ['title', 'meta', 'meta.a', 'meta.b', 'meta.b.c', 'list', 'tags']) expect(stampsProblem(things, { [path]: stamp }), path).toBeNull();
    const refused = ['id', 'nope', '', 'title.x', 'tags.0', 'list.0.a', 'meta.nope', 'meta.b.c.d', 'n.x', 's.x', '__proto__', 'constructor', 'prototype', 'title.__proto__.toString', 'constructor.prototype.x', 'meta.__proto__', 'meta.constructor'];
    for (const path of refused) expect(stampsProblem(things, JSON.parse(JSON.stringify({ [path]: stamp }))), path).toBe(`"${path}" is not a field of Thing`);
    // JSON.parse makes `__proto__` an own key, as a pushed document holds it
    expect(stampsProblem(things, JSON.parse(`{"__proto__": "${stamp}"}`))).toBe('"__proto__" is not a field of Thing');
    expect(stampsProblem(things, { title: 'zzzz' })).toBe('"title" must hold a clock stamp');
  });

  it('refuses device ids and element keys that are not ids or JSON-encoded scalars, and unsafe keys among them', () => {
    const stamp = new HybridLogicalClock('d1').tick();
    for (const node of ['__proto__', 'constructor', 'prototype', 'has space', '', 'x'.repeat(65)]) {
      const counter = JSON.parse(`{"n": {${JSON.stringify(node)}: [1, 0]}}`);
      expect(stampsProblem(things, counter), node).toBe(`"n" names a device ${JSON.stringify(node)} that is not a device id`);
      const set = JSON.parse(`{"s": {"add": {"\\"a\\"": {${JSON.stringify(node)}: "${stamp}"}}, "remove": {}}}`);
      expect(stampsProblem(things, set), node).toBe(`"s" names a device ${JSON.stringify(node)} that is not a device id`);
    }
    for (const key of ['__proto__', 'constructor', 'a', '1.0', '-0', '{"a":1}', '[1]', 'null']) {
      const set = { s: { add: JSON.parse(`{${JSON.stringify(key)}: {"d1": "${stamp}"}}`), remove: {} } };
      expect(stampsProblem(things, set), key).toMatch(/^"s" names an element .* that is not a JSON-encoded/);
    }
    expect(stampsProblem(things, { s: { add: { '"__proto__"': { d1: stamp }, '1': { d1: stamp }, true: { d1: stamp } }, remove: {} } })).toBeNull();
    expect(stampsProblem(things, { title: formatStamp(1, 0, 'd1').replace('d1', '__proto__') })).toBe('"title" must hold a clock stamp');
  });

  it('bounds the number of paths, counter entries, set elements and set stamps', () => {
    const stamp = new HybridLogicalClock('d1').tick();
    const many = (n: number, entry: (i: number) => [string, unknown]) => Object.fromEntries(Array.from({ length: n }, (_, i) => entry(i)));
    expect(stampsProblem(things, many(MAX_STAMP_PATHS + 1, (i) => [`p${i}`, stamp]))).toBe(`holds more than ${MAX_STAMP_PATHS} paths`);
    expect(stampsProblem(things, { n: many(MAX_COUNTER_ENTRIES, (i) => [`d${i}`, [1, 0]]) })).toBeNull();
    expect(stampsProblem(things, { n: many(MAX_COUNTER_ENTRIES + 1, (i) => [`d${i}`, [1, 0]]) })).toBe(`"n" holds more than ${MAX_COUNTER_ENTRIES} devices`);
    const elements = (n: number, devices = 1) => many(n, (i) => [JSON.stringify(`e${i}`), many(devices, (d) => [`d${d}`, stamp])]);
    expect(stampsProblem(things, { s: { add: elements(MAX_SET_ELEMENTS), remove: {} } })).toBeNull();
    // added and removed elements count together
    expect(stampsProblem(things, { s: { add: elements(MAX_SET_ELEMENTS), remove: { '"other"': { d1: stamp } } } })).toBe(`"s" holds more than ${MAX_SET_ELEMENTS} elements`);
    const perElement = Math.floor(MAX_SET_STAMPS / MAX_SET_ELEMENTS) + 1;
    expect(stampsProblem(things, { s: { add: elements(MAX_SET_ELEMENTS, perElement), remove: {} } })).toBe(`"s" holds more than ${MAX_SET_STAMPS} stamps`);
  });

  it('never reads or writes an unsafe key, even in states that were not checked', () => {
    const before = Object.getOwnPropertyNames(Object.prototype).sort();
    const hostile = JSON.parse('{"n": {"__proto__": [5, 0], "constructor": [1, 0], "d1": [2, 0]}, "s": {"add": {"\\"a\\"": {"__proto__": "0000000000a:0000:d1", "d1": "0000000000a:0000:d1"}}, "remove": {"constructor": {"d1": "0000000000b:0000:d1"}}}}');
    const server: Version = { doc: { id: 'x', _deleted: false }, stamps: { n: { constructor: [1, 0] } as never } };
    const joined = joinStamps(fields, server, { doc: { id: 'x', _deleted: false }, stamps: hostile });
    expect(Object.keys(joined.n as object).sort()).toEqual(['constructor', 'd1']); // own `constructor` only from a state that holds it
    expect(Object.getPrototypeOf(joined.n)).toBe(Object.prototype);
    expect(withDerivedValues(fields, {}, joined)).toEqual({ n: 3, s: ['a'] });
    const doc = JSON.parse('{"id": "x", "__proto__": {"polluted": 1}, "constructor": {"prototype": {"polluted": 1}}, "n": 2}');
    const clock = new HybridLogicalClock('d1');
    expect(Object.keys(recordChange(fields, {}, doc, {}, () => clock.tick(), clock.node)!)).toEqual(['n']);
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(before);
    expect(({}) as Record<string, unknown>).not.toHaveProperty('polluted');
  });
});

describe('removed set elements after retention', () => {
  it('drops an element every add of which a removal saw, and keeps one a concurrent add revived', () => {
    const fields = { tags: 'add-wins-set' } as const;
    const [s1, s2, s3] = [1, 2, 3].map((n) => formatStamp(1_000 + n, 0, 'dev1'));
    const other = formatStamp(1_005, 0, 'dev2');
    const stamps = {
      tags: {
        add: { '"gone"': { dev1: s1! }, '"kept"': { dev1: s2! }, '"revived"': { dev1: s1!, dev2: other } },
        remove: { '"gone"': { dev1: s1! }, '"revived"': { dev1: s1! } },
      },
      title: s3!,
    };
    expect(withoutRemovedElements(fields, stamps)).toEqual({
      tags: { add: { '"kept"': { dev1: s2 }, '"revived"': { dev1: s1, dev2: other } }, remove: { '"revived"': { dev1: s1 } } },
      title: s3,
    });
    expect(withoutRemovedElements(fields, withoutRemovedElements(fields, stamps)!)).toBeNull();
  });
});
