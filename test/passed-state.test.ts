// Unit: which incoming states the SDK drops as ones the device has gone past (client-sdk/stamps.ts,
// isPassedState): an echo of an older write of its own that arrives after a later write was
// acknowledged must not undo that write, and nothing else may be dropped.
import { describe, expect, it } from 'vitest';
import { HybridLogicalClock } from '../protocol/hlc.ts';
import { recordChange, withDerivedValues, type MergedFields, type Stamps } from '../protocol/field-state.ts';
import type { SyncDocument } from '../protocol/messages.ts';
import { isPassedState } from '../client-sdk/stamps.ts';

const fields: MergedFields = { minutes: 'counter', tags: 'add-wins-set' };
type Doc = Record<string, unknown>;

/** A device's write as the SDK records it, in wire form. */
function write(from: SyncDocument, clock: HybridLogicalClock, edit: (doc: Doc) => Doc): SyncDocument {
  const { _stamps, ...doc } = from as Doc & { _stamps?: Stamps };
  const after = edit(structuredClone(doc));
  const stamps = recordChange(fields, doc, after, _stamps ?? {}, () => clock.tick(), clock.node) ?? _stamps ?? {};
  return { ...withDerivedValues(fields, after, stamps), _stamps: stamps } as unknown as SyncDocument;
}

let now = 1_000;
const alice = new HybridLogicalClock('alice', () => now++);
const bob = new HybridLogicalClock('bob', () => now++);
const created = write({ id: 't1', title: 'Write docs', minutes: 0, tags: [], _deleted: false } as SyncDocument, alice, (d) => d);
const titled = write(created, alice, (d) => ({ ...d, title: 'Write the launch docs' }));
const counted = write(titled, alice, (d) => ({ ...d, minutes: (d.minutes as number) + 15 }));

describe('isPassedState', () => {
  it('drops the echo of an earlier write once a later one is the local state (title, then +15)', () => {
    expect(isPassedState(fields, titled, counted)).toBe(true);
    expect(isPassedState(fields, created, counted)).toBe(true);
    expect(isPassedState(fields, { ...titled, minutes: 0 } as SyncDocument, write(titled, alice, (d) => ({ ...d, tags: ['a'] })))).toBe(true);
  });

  it('keeps a newer state, the same state, and anything another device wrote meanwhile', () => {
    expect(isPassedState(fields, counted, titled)).toBe(false);
    expect(isPassedState(fields, counted, structuredClone(counted))).toBe(false);
    // Bob's increment on the state Alice titled: not in Alice's local state.
    expect(isPassedState(fields, write(titled, bob, (d) => ({ ...d, minutes: (d.minutes as number) + 15 })), counted)).toBe(false);
    // Bob's title over an older state: a later stamp on one field is enough.
    expect(isPassedState(fields, write(created, bob, (d) => ({ ...d, title: 'Bob’s title' })), counted)).toBe(false);
  });

  it('never drops a delete of a live document, or a state without stamps', () => {
    expect(isPassedState(fields, { ...titled, _deleted: true }, counted)).toBe(false);
    const { _stamps, ...unstamped } = titled as SyncDocument & { _stamps?: Stamps };
    expect(isPassedState(fields, unstamped as SyncDocument, counted)).toBe(false);
  });
});
