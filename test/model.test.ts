// Unit: reading schema.graphql into the data model, and what is derived from it.
import { describe, expect, it } from 'vitest';
import { documentJsonSchema, loadModel } from '../protocol/model.ts';
import { createValidator } from '../gateway/sync/validate.ts';
import { SCHEMA } from './helpers/harness.ts';

const MERGE_DIRECTIVES = 'directive @collection(name: String!) on OBJECT\ndirective @counter on FIELD_DEFINITION\ndirective @addWinsSet on FIELD_DEFINITION';

describe('data model', () => {
  it('reads the collections of schema.graphql', () => {
    const model = loadModel(SCHEMA);
    expect(model.collections.map((c) => [c.typeName, c.name])).toEqual([
      ['Task', 'tasks'],
      ['Project', 'projects'],
    ]);
    const tasks = model.collections[0]!;
    expect(tasks.fields.find((f) => f.name === 'status')).toEqual({
      name: 'status',
      nullable: false,
      queryable: true,
      merge: 'last-writer-wins',
      type: { kind: 'enum', name: 'TaskStatus', values: ['TODO', 'IN_PROGRESS', 'BLOCKED', 'DONE'] },
    });
    expect(tasks.fields.filter((f) => f.merge !== 'last-writer-wins').map((f) => [f.name, f.merge])).toEqual([
      ['assigneeIds', 'add-wins-set'],
      ['minutesLogged', 'counter'],
    ]);
    expect(documentJsonSchema(tasks).required).toEqual(['id', 'ownerId', 'title', 'status', 'priority', 'tags']);
  });

  it.each([
    ['no primary key', 'directive @collection(name: String!) on OBJECT\ntype A @collection(name: "as") { name: String }', /needs a primary key field "id: ID!"/],
    ['a reserved field name', 'directive @collection(name: String!) on OBJECT\ntype A @collection(name: "as") { id: ID!, _rev: String }', /field names starting with "_" are reserved/],
    ['an unknown type', 'directive @collection(name: String!) on OBJECT\ntype A @collection(name: "as") { id: ID!, b: Nope }', /A\.b: unknown type Nope/],
    ['no collection at all', 'type A { id: ID! }', /declares no @collection type/],
    ['@queryable on an embedded object', 'directive @collection(name: String!) on OBJECT\ndirective @queryable on FIELD_DEFINITION\ntype A @collection(name: "as") { id: ID!, n: N @queryable }\ntype N { x: Int }', /@queryable needs a scalar, an enum, or a list of those/],
    ['@counter on a String', `${MERGE_DIRECTIVES}\ntype A @collection(name: "as") { id: ID!, n: String @counter }`, /A\.n: @counter needs Int or Float/],
    ['@counter inside an embedded type', `${MERGE_DIRECTIVES}\ntype A @collection(name: "as") { id: ID!, n: N }\ntype N { x: Int @counter }`, /N\.x: only top-level fields of a @collection type can be @counter/],
    ['@addWinsSet on a scalar', `${MERGE_DIRECTIVES}\ntype A @collection(name: "as") { id: ID!, n: String @addWinsSet }`, /A\.n: @addWinsSet needs a list/],
    ['@addWinsSet of DateTimes', `${MERGE_DIRECTIVES}\nscalar DateTime\ntype A @collection(name: "as") { id: ID!, n: [DateTime!] @addWinsSet }`, /A\.n: @addWinsSet needs a list/],
    ['@addWinsSet with null elements', `${MERGE_DIRECTIVES}\ntype A @collection(name: "as") { id: ID!, n: [String] @addWinsSet }`, /A\.n: @addWinsSet needs a list of non-null/],
    ['both merge directives', `${MERGE_DIRECTIVES}\ntype A @collection(name: "as") { id: ID!, n: Int @counter @addWinsSet }`, /either @counter or @addWinsSet/],
    ['a recursive embedded type', 'directive @collection(name: String!) on OBJECT\ntype A @collection(name: "as") { id: ID!, n: N }\ntype N { n: N }', /embeds itself/],
  ])('refuses a schema with %s', (_what, sdl, message) => {
    expect(() => loadModel(sdl)).toThrow(message);
  });

  it('validates documents, accepting nulls only where the schema allows them', () => {
    const validate = createValidator(loadModel(SCHEMA).collections[0]!);
    const task = { id: 't', ownerId: 'u', title: 'x', status: 'TODO', priority: 1, tags: [], _deleted: false };
    expect(validate(task)).toBeNull();
    expect(validate({ ...task, description: null, dueDate: null, checklist: null })).toBeNull();
    expect(validate({ ...task, tags: ['a', null] })).toMatchObject({ field: 'tags.1' });
  });
});
