// protocol/schema-evolution.ts: the canonical form of a model, its fingerprint, and every rule
// of diffModels (additive or breaking), plus the strict reading of a client's canonical form.
import { describe, expect, it } from 'vitest';
import { loadModel } from '../protocol/model.ts';
import { breakingOnly, canonicalModel, diffModels, fingerprint, fnv1a64, knownFieldsOf, MAX_CANONICAL_BYTES, parseCanonicalModel, SchemaFormError } from '../protocol/schema-evolution.ts';
import { SCHEMA } from './helpers/harness.ts';

const BASE = /* GraphQL */ `
  enum Status { TODO DONE }
  type Item { text: String!, done: Boolean }
  type Task @collection(name: "tasks") {
    id: ID!
    title: String! @queryable
    notes: String
    status: Status @queryable
    priority: Int
    tags: [String!] @addWinsSet
    minutes: Int @counter
    items: [Item!]
  }
  type Note @collection(name: "notes") { id: ID!, body: String }
`;

const canon = (sdl: string) => canonicalModel(loadModel(sdl));
const diff = (before: string, after: string) => diffModels(canon(before), canon(after)).map((d) => `${d.kind} ${d.change} ${d.message}`);

describe('canonical form and fingerprint', () => {
  it('does not depend on declaration order, type names of enums and embedded objects, descriptions or comments', () => {
    const reordered = /* GraphQL */ `
      # a comment
      type Note @collection(name: "notes") { body: String, id: ID! }
      enum State { DONE TODO }
      type Entry { done: Boolean, text: String! }
      "described"
      type Task @collection(name: "tasks") {
        items: [Entry!]
        minutes: Int @counter
        id: ID!
        tags: [String!] @addWinsSet
        priority: Int
        status: State @queryable
        notes: String
        title: String! @queryable
      }
    `;
    expect(canon(reordered)).toEqual(canon(BASE));
    expect(fingerprint(canon(reordered))).toBe(fingerprint(canon(BASE)));
    expect(diffModels(canon(BASE), canon(reordered))).toEqual([]);
  });

  it('fingerprints are 16 hex digits of FNV-1a 64 and change with the model', () => {
    expect(fnv1a64('')).toBe('cbf29ce484222325');
    expect(fnv1a64('a')).toBe('af63dc4c8601ec8c');
    expect(fingerprint(canon(BASE))).toMatch(/^[0-9a-f]{16}$/);
    expect(fingerprint(canon(BASE.replace('notes: String', 'notes: String @queryable')))).not.toBe(fingerprint(canon(BASE)));
    expect(fingerprint(canon(SCHEMA))).toBe(fingerprint(canon(SCHEMA)));
  });

  it('knownFieldsOf lists the top-level fields per collection', () => {
    expect([...knownFieldsOf(canon(BASE)).get('notes')!]).toEqual(['body', 'id']);
  });
});

describe('additive differences', () => {
  it('a new collection', () => {
    expect(diff(BASE, `${BASE} type Tag @collection(name: "tags") { id: ID! }`)).toEqual(['additive collection-added Tag: new collection "tags"']);
  });
  it('a new optional field, also inside an embedded object', () => {
    expect(diff(BASE, BASE.replace('notes: String', 'notes: String\n color: String'))).toEqual(['additive field-added Task.color: new optional field (String)']);
    expect(diff(BASE, BASE.replace('done: Boolean }', 'done: Boolean, due: DateTime }'))).toEqual(['additive field-added Task.items[].due: new optional field (DateTime)']);
  });
  it('a new enum value', () => {
    expect(diff(BASE, BASE.replace('TODO DONE', 'TODO DOING DONE'))).toEqual(['additive enum-value-added Task.status: new enum value DOING']);
  });
  it('a field made @queryable', () => {
    expect(diff(BASE, BASE.replace('notes: String', 'notes: String @queryable'))).toEqual(['additive made-queryable Task.notes: made @queryable']);
  });
  it('a required field made optional', () => {
    expect(diff(BASE, BASE.replace('title: String!', 'title: String'))).toEqual(['additive made-optional Task.title: required field made optional']);
  });
});

describe('breaking differences', () => {
  it('a collection removed', () => {
    expect(diff(BASE, BASE.replace('type Note @collection(name: "notes") { id: ID!, body: String }', ''))).toEqual(['breaking collection-removed Note: collection "notes" removed']);
  });
  it('a field removed', () => {
    expect(diff(BASE, BASE.replace('notes: String', ''))).toEqual(['breaking field-removed Task.notes: field removed']);
  });
  it('a type changed (scalar, enum to scalar, list item)', () => {
    expect(diff(BASE, BASE.replace('priority: Int', 'priority: String'))).toEqual(['breaking type-changed Task.priority: type changed from Int to String']);
    expect(diff(BASE, BASE.replace('status: Status', 'status: String'))).toEqual(['breaking type-changed Task.status: type changed from enum(DONE|TODO) to String']);
    expect(diff(BASE, BASE.replace('tags: [String!]', 'tags: [Int!]'))).toEqual(['breaking type-changed Task.tags: type changed from [String!] to [Int!]']);
  });
  it('a required field added (there are no defaults)', () => {
    expect(diff(BASE, BASE.replace('notes: String', 'notes: String\n size: Int!'))).toEqual([
      'breaking required-field-added Task.size: new required field (Int): existing documents and older clients have no value for it, and there are no defaults',
    ]);
  });
  it('an optional field made required', () => {
    expect(diff(BASE, BASE.replace('notes: String', 'notes: String!'))).toEqual(['breaking made-required Task.notes: optional field made required']);
  });
  it('an enum value removed', () => {
    expect(diff(BASE, BASE.replace('TODO DONE', 'TODO'))).toEqual(['breaking enum-value-removed Task.status: enum value DONE removed']);
  });
  it('the key type changed', () => {
    expect(diff(BASE, BASE.replace('type Note @collection(name: "notes") { id: ID!', 'type Note @collection(name: "notes") { id: ObjectId!'))).toEqual([
      'breaking key-type-changed Note.id: key type changed from ID to ObjectId',
    ]);
  });
  it('@queryable removed', () => {
    expect(diff(BASE, BASE.replace('title: String! @queryable', 'title: String!'))).toEqual(['breaking queryable-removed Task.title: @queryable removed']);
  });
  it('the merge strategy changed', () => {
    expect(diff(BASE, BASE.replace('minutes: Int @counter', 'minutes: Int'))).toEqual(['breaking merge-changed Task.minutes: merge strategy changed from @counter to last writer wins']);
    expect(diff(BASE, BASE.replace('tags: [String!] @addWinsSet', 'tags: [String!]'))).toEqual(['breaking merge-changed Task.tags: merge strategy changed from @addWinsSet to last writer wins']);
  });
  it('@indexedQueryable added (every subscription must constrain it); removed is additive', () => {
    const indexed = BASE.replace('title: String! @queryable', 'title: String! @indexedQueryable');
    expect(diff(BASE, indexed)).toEqual(['breaking indexed-queryable-changed Task.title: made @indexedQueryable (every subscription must now constrain it)']);
    expect(diff(indexed, BASE)).toEqual(['additive indexed-queryable-removed Task: @indexedQueryable removed from title']);
  });
  it('names every difference, and breakingOnly keeps the breaking ones', () => {
    const after = BASE.replace('notes: String', 'color: String').replace('priority: Int', 'priority: Float');
    const all = diffModels(canon(BASE), canon(after));
    expect(all.map((d) => d.path).sort()).toEqual(['Task.color', 'Task.notes', 'Task.priority']);
    expect(breakingOnly(all).map((d) => d.message)).toEqual(['Task.notes: field removed', 'Task.priority: type changed from Int to Float']);
  });
});

describe('parseCanonicalModel (hostile input)', () => {
  const good = () => JSON.parse(JSON.stringify(canon(BASE)));
  it('accepts what canonicalModel makes', () => {
    expect(parseCanonicalModel(good())).toEqual(canon(BASE));
    expect(parseCanonicalModel(canon(SCHEMA))).toEqual(canon(SCHEMA));
  });
  it.each([
    ['not an object', () => 'x'],
    ['an array', () => []],
    ['wrong format', () => ({ ...good(), format: 2 })],
    ['an unknown key', () => ({ ...good(), extra: 1 })],
    ['a missing key', () => ({ format: 1 })],
    ['a bad name', () => { const m = good(); m.collections[0].fields[0].name = 'a.b'; return m; }],
    ['__proto__ as a name', () => { const m = good(); m.collections[0].fields[0].name = '__proto__'; return m; }],
    ['an unknown scalar', () => { const m = good(); m.collections[0].key = 'Date'; return m; }],
    ['an unknown kind', () => { const m = good(); m.collections[0].fields[0].type = { kind: 'map' }; return m; }],
    ['a duplicate field', () => { const m = good(); m.collections[0].fields.push(m.collections[0].fields[0]); return m; }],
    ['a non-boolean flag', () => { const m = good(); m.collections[0].fields[0].required = 'yes'; return m; }],
    ['a bad merge', () => { const m = good(); m.collections[0].fields[0].merge = 'sum'; return m; }],
    ['too deep', () => {
      let type: unknown = { kind: 'scalar', name: 'Int' };
      for (let i = 0; i < 40; i++) type = { kind: 'object', fields: [{ name: 'x', type, required: false, queryable: false, merge: 'last-writer-wins' }] };
      const m = good(); m.collections[0].fields[0].type = type; return m;
    }],
    ['too large', () => { const m = good(); m.collections[0].fields[0].type = { kind: 'enum', values: Array.from({ length: 999 }, (_, i) => `V${'x'.repeat(100)}${i}`) }; return m; }],
    ['a class instance', () => new (class { format = 1; collections = []; })()],
  ])('refuses %s', (_, make) => {
    expect(() => parseCanonicalModel(make())).toThrow(SchemaFormError);
  });
  it('bounds the size', () => {
    expect(MAX_CANONICAL_BYTES).toBe(65536);
  });
});
