// Unit: when two document states count as the same (conflict detection, retried pushes).
import { describe, expect, it } from 'vitest';
import { sameState } from '../gateway/sync/same-state.ts';

describe('sameState', () => {
  it('compares field by field, deeply, regardless of key order', () => {
    expect(sameState({ a: 1, b: { c: [1, 2] }, _deleted: false }, { b: { c: [1, 2] }, a: 1, _deleted: false })).toBe(true);
    expect(sameState({ a: 1, b: { c: [1, 2] } }, { a: 1, b: { c: [2, 1] } })).toBe(false);
    expect(sameState({ a: 1 }, { a: '1' })).toBe(false);
  });

  it('treats a missing field and null alike, and dates by instant', () => {
    expect(sameState({ a: 1, b: null }, { a: 1 })).toBe(true);
    expect(sameState({ at: new Date('2026-01-01T00:00:00Z') }, { at: new Date('2026-01-01T00:00:00.000Z') })).toBe(true);
    expect(sameState({ at: new Date('2026-01-01T00:00:00Z') }, { at: new Date('2026-01-01T00:00:01Z') })).toBe(false);
  });

  it('makes all tombstones of a document equal, and a tombstone differ from a live state', () => {
    expect(sameState({ a: 1, _deleted: true }, { a: 2, _deleted: true })).toBe(true);
    expect(sameState({ a: 1, _deleted: true }, { a: 1, _deleted: false })).toBe(false);
  });
});
