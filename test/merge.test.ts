// Unit: hybrid logical clocks and the merge of stamped changes (issue 6).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatStamp, HybridLogicalClock, parseStamp } from '../protocol/hlc.ts';
import { merge, type Stamps, type Version } from '../protocol/merge.ts';
import { leafPaths } from '../protocol/paths.ts';
import { sameJson } from '../protocol/field-state.ts';

describe('hybrid logical clock', () => {
  it('never goes backwards, orders as strings, and moves past what it observes', () => {
    let now = 1_000;
    const clock = new HybridLogicalClock('a', () => now);
    const first = clock.tick();
    now = 900; // the wall clock stepped back
    const second = clock.tick();
    expect(second > first).toBe(true);
    clock.observe(formatStamp(5_000, 3, 'b'));
    const third = clock.tick();
    expect(parseStamp(third)).toEqual({ wall: 5_000, counter: 4, node: 'a' });
    expect(formatStamp(1, 0, 'b') > formatStamp(1, 0, 'a')).toBe(true); // ties break by device
  });
});

const version = (doc: Record<string, unknown>, stamps: Stamps): Version => ({ doc: { _deleted: false, ...doc }, stamps });

describe('merge', () => {
  it('keeps concurrent edits of different fields, nested paths included', () => {
    const server = version({ id: 't', title: 'a', status: 'TODO', meta: { x: 1, y: 1 } }, { title: 's1', status: 's1', 'meta.x': 's1', 'meta.y': 's1' });
    const client = version({ id: 't', title: 'a', status: 'DONE', meta: { x: 1, y: 2 } }, { status: 's2', 'meta.y': 's2' });
    const merged = merge(server, client, { strategy: 'field-lww' });
    expect(merged.doc).toEqual({ id: 't', title: 'a', status: 'DONE', meta: { x: 1, y: 2 }, _deleted: false });
    expect(merged.stamps).toEqual({ title: 's1', status: 's2', 'meta.x': 's1', 'meta.y': 's2' });
    expect(merge(version({ title: 'late' }, { title: 's9' }), version({ title: 'early' }, { title: 's3' }), { strategy: 'field-lww' }).doc.title).toBe('late');
  });

  it('lets deletes win, and applies the strategies', () => {
    const server = version({ title: 'server' }, { title: 's5' });
    const client = version({ title: 'client' }, { title: 's6' });
    expect(merge({ ...server, doc: { ...server.doc, _deleted: true } }, client, { strategy: 'field-lww' }).doc._deleted).toBe(true);
    // even from a client whose base state is the tombstone (RxDB keeps unpushed edits over it)
    expect(merge({ ...server, doc: { ...server.doc, _deleted: true } }, client, { strategy: 'field-lww', base: { _deleted: true }, concurrent: false }).doc._deleted).toBe(true);
    expect(merge(server, { ...client, doc: { ...client.doc, _deleted: true } }, { strategy: 'field-lww' }).doc._deleted).toBe(true);
    expect(merge(server, client, { strategy: 'server-wins' }).doc.title).toBe('server');
    expect(merge(server, client, { strategy: 'server-wins', base: { title: 'server' }, concurrent: false }).doc.title).toBe('client'); // not concurrent
    expect(merge(server, client, { strategy: 'document-lww' }).doc.title).toBe('client');
    const resolved = merge(server, client, { strategy: ({ base, server: s, client: c }) => ({ ...c, title: `${base?.title}|${s.title}|${c.title}` }), base: { title: 'base' } });
    expect(resolved.doc.title).toBe('base|server|client');
  });

  it('lists the stamped paths of a document', () => {
    expect(leafPaths({ id: 'x', _deleted: false, title: 't', tags: ['a'], meta: { a: 1, b: { c: 2 } } })).toEqual(['title', 'tags', 'meta.a', 'meta.b.c']);
  });

  it('converges: any order of the same stamped changes gives the same document, each field from its latest stamp', () => {
    const fields = ['title', 'status', 'priority'];
    const change = fc.record({
      values: fc.dictionary(fc.constantFrom(...fields), fc.integer({ min: 0, max: 9 }), { minKeys: 1 }),
      deleted: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.array(change, { minLength: 1, maxLength: 6 }), fc.integer(), (changes, seed) => {
        const versions = changes.map((c, i) => version({ id: 'd', ...c.values, _deleted: c.deleted && i % 3 === 0 }, Object.fromEntries(Object.keys(c.values).map((f) => [f, formatStamp(1_000 + i, 0, `n${i}`)]))));
        const apply = (order: Version[]) => order.reduce<Version | null>((server, v) => merge(server, v, { strategy: 'field-lww' }), null)!;
        const shuffled = [...versions].sort((a, b) => ((JSON.stringify(a).length * 31 + seed) % 7) - ((JSON.stringify(b).length * 31 + seed) % 7));
        const one = apply(versions);
        const other = apply(shuffled);
        expect(other.doc._deleted).toBe(one.doc._deleted);
        if (one.doc._deleted) return;
        for (const field of fields) {
          const latest = versions.filter((v) => v.stamps[field]).sort((a, b) => (a.stamps[field]! < b.stamps[field]! ? 1 : -1))[0];
          expect(one.doc[field]).toEqual(latest?.doc[field]);
          expect(other.doc[field]).toEqual(one.doc[field]);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('sameJson (the change check of recordChange)', () => {
  it('agrees with comparing JSON texts, undefined as null', () => {
    const value = fc.oneof(fc.jsonValue(), fc.constantFrom(undefined, Number.NaN, Number.POSITIVE_INFINITY, -0, 0, '', 'null', false));
    fc.assert(
      fc.property(value, value, (a, b) => {
        expect(sameJson(a, b)).toBe(JSON.stringify(a ?? null) === JSON.stringify(b ?? null));
      }),
      { numRuns: 2_000 },
    );
  });
});
