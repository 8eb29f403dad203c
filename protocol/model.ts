// The data model, read from schema.graphql. Gateway and client SDK both derive everything
// about a collection (validation, RxDB schema, GraphQL operations, value conversion) from this.
// No driver here: the SDK imports this file. What each scalar is in MongoDB and on the wire is
// in protocol/wire-values.ts (the JSON spellings) and protocol/bson-values.ts (the BSON values).
import {
  Kind,
  parse,
  type DocumentNode,
  type FieldDefinitionNode,
  type ObjectTypeDefinitionNode,
  type TypeNode,
} from 'graphql';
import { BASE64_PATTERN, DECIMAL_MAX_LENGTH, DECIMAL_PATTERN, LONG_PATTERN, OBJECT_ID_PATTERN, UUID_PATTERN } from './wire-values.ts';

/**
 * The scalars a field may have. Beyond GraphQL's own: DateTime (BSON date), and the BSON types of
 * Realm apps' data: ObjectId, UUID (binary subtype 4), Long (int64), Decimal (Decimal128), Binary
 * (generic binary data), Mixed (any value) and Dictionary (an embedded document of Mixed values).
 * README.md, "BSON types", has the table of stored and wire forms.
 */
export const SCALARS = ['ID', 'String', 'Int', 'Float', 'Boolean', 'DateTime', 'ObjectId', 'UUID', 'Long', 'Decimal', 'Binary', 'Mixed', 'Dictionary'] as const;
export type ScalarName = (typeof SCALARS)[number];

/** Scalars the gateway defines itself (GraphQL's built-in ones are ID, String, Int, Float, Boolean). */
export const CUSTOM_SCALARS: readonly ScalarName[] = ['DateTime', 'ObjectId', 'UUID', 'Long', 'Decimal', 'Binary', 'Mixed', 'Dictionary'];

/** What a @collection's primary key `id` may be (stored as `_id` with that BSON type). */
export const KEY_SCALARS: readonly ScalarName[] = ['ID', 'ObjectId', 'UUID', 'Long'];

/** Scalars no filter, subscription or rule may compare (nor @queryable mark). */
export const UNQUERYABLE_SCALARS: readonly ScalarName[] = ['Binary', 'Mixed', 'Dictionary'];

export type FieldType =
  | { kind: 'scalar'; name: ScalarName }
  | { kind: 'enum'; name: string; values: string[] }
  | { kind: 'object'; name: string; fields: FieldModel[] }
  | { kind: 'list'; of: FieldType; itemNullable: boolean };

export interface FieldModel {
  name: string;
  type: FieldType;
  nullable: boolean;
  /** Marked @queryable: subscriptions and rules may filter on it; the gateway indexes it. */
  queryable: boolean;
  /**
   * How concurrent changes merge (protocol/field-state.ts): last writer wins (default), or, marked
   * @counter, increments add up, or, marked @addWinsSet, concurrent additions are all kept.
   */
  merge: FieldMerge;
}

export type FieldMerge = 'last-writer-wins' | 'counter' | 'add-wins-set';

export interface CollectionModel {
  /** GraphQL type name, e.g. `Task`. */
  typeName: string;
  /** Collection name in MongoDB and RxDB, e.g. `tasks`. */
  name: string;
  fields: FieldModel[];
  /**
   * The field marked @indexedQueryable, if any (Realm's indexed queryable field): every Flexible
   * Sync subscription on the collection must constrain it at the top level with == or IN
   * (protocol/filter.ts).
   */
  indexedQueryable?: string;
}

export interface DataModel {
  collections: CollectionModel[];
  /** The schema.graphql text the model was read from. */
  sdl: string;
  document: DocumentNode;
}

export const PRIMARY_KEY = 'id';
export const DELETED_FIELD = '_deleted';
/** On the wire, a change's hybrid-logical-clock stamps per field path (clients that stamp). */
export const STAMPS_FIELD = '_stamps';

export class ModelError extends Error {
  override name = 'ModelError';
}

export function loadModel(sdl: string): DataModel {
  const document = parse(sdl);
  const objects = new Map<string, ObjectTypeDefinitionNode>();
  const enums = new Map<string, string[]>();
  for (const def of document.definitions) {
    if (def.kind === Kind.OBJECT_TYPE_DEFINITION) objects.set(def.name.value, def);
    if (def.kind === Kind.ENUM_TYPE_DEFINITION) {
      enums.set(def.name.value, (def.values ?? []).map((v) => v.name.value));
    }
  }

  const resolving = new Set<string>();
  const fieldsOf = (typeName: string): FieldModel[] => {
    if (resolving.has(typeName)) throw new ModelError(`type ${typeName} embeds itself; embedded types cannot be recursive`);
    resolving.add(typeName);
    const def = objects.get(typeName);
    if (!def) throw new ModelError(`unknown type ${typeName}`);
    const isCollection = collectionName(def) !== undefined;
    const fields = (def.fields ?? []).map((f) => fieldModel(typeName, f, isCollection));
    resolving.delete(typeName);
    return fields;
  };

  const typeOf = (owner: string, field: string, node: TypeNode): { type: FieldType; nullable: boolean } => {
    if (node.kind === Kind.NON_NULL_TYPE) return { type: typeOf(owner, field, node.type).type, nullable: false };
    if (node.kind === Kind.LIST_TYPE) {
      const item = typeOf(owner, field, node.type);
      if (item.type.kind === 'list') throw new ModelError(`${owner}.${field}: lists of lists are not supported`);
      return { type: { kind: 'list', of: item.type, itemNullable: item.nullable }, nullable: true };
    }
    const name = node.name.value;
    if ((SCALARS as readonly string[]).includes(name)) return { type: { kind: 'scalar', name: name as ScalarName }, nullable: true };
    const values = enums.get(name);
    if (values) return { type: { kind: 'enum', name, values }, nullable: true };
    const embedded = objects.get(name);
    if (!embedded) throw new ModelError(`${owner}.${field}: unknown type ${name}`);
    if (collectionName(embedded)) throw new ModelError(`${owner}.${field}: references collection type ${name}; store its id instead`);
    return { type: { kind: 'object', name, fields: fieldsOf(name) }, nullable: true };
  };

  const fieldModel = (owner: string, f: FieldDefinitionNode, isCollection: boolean): FieldModel => {
    const name = f.name.value;
    if (name.startsWith('_')) throw new ModelError(`${owner}.${name}: field names starting with "_" are reserved`);
    // Paths into documents are checked against these (protocol/paths.ts): they can never be fields.
    if (name === 'constructor' || name === 'prototype') throw new ModelError(`${owner}.${name}: "${name}" cannot be a field name`);
    if (f.arguments?.length) throw new ModelError(`${owner}.${name}: stored fields cannot take arguments`);
    const { type, nullable } = typeOf(owner, name, f.type);
    const indexed = f.directives?.some((d) => d.name.value === 'indexedQueryable') ?? false;
    const marked = indexed || (f.directives?.some((d) => d.name.value === 'queryable') ?? false);
    if (marked && !isCollection) throw new ModelError(`${owner}.${name}: only top-level fields of a @collection type can be ${indexed ? '@indexedQueryable' : '@queryable'}`);
    if (indexed && !(type.kind === 'enum' || (type.kind === 'scalar' && !UNQUERYABLE_SCALARS.includes(type.name)))) {
      throw new ModelError(`${owner}.${name}: @indexedQueryable needs a scalar or an enum, not a list`);
    }
    if (marked && !isQueryableType(type)) {
      throw new ModelError(`${owner}.${name}: @queryable needs a scalar, an enum, or a list of those`);
    }
    return { name, type, nullable, queryable: marked || (isCollection && name === PRIMARY_KEY), merge: fieldMerge(owner, name, f, type, isCollection) };
  };

  const collections: CollectionModel[] = [];
  for (const def of objects.values()) {
    const name = collectionName(def);
    if (!name) continue;
    const typeName = def.name.value;
    const fields = fieldsOf(typeName);
    const id = fields.find((f) => f.name === PRIMARY_KEY);
    if (!id || id.nullable || id.type.kind !== 'scalar' || !KEY_SCALARS.includes(id.type.name)) {
      throw new ModelError(`${typeName}: a @collection type needs a primary key field "${PRIMARY_KEY}: ID!" (or ObjectId!, UUID!, Long!)`);
    }
    // MongoDB's name as it is (Realm's are capitalised, like `Task`); the device's RxDB collection
    // starts with a lowercase letter (client-sdk/database.ts), so names may not differ only there.
    if (!/^[A-Za-z][a-zA-Z0-9_]*$/.test(name)) throw new ModelError(`${typeName}: collection name "${name}" must be letters, digits and underscores, starting with a letter`);
    if (collections.some((c) => c.name.toLowerCase()[0] + c.name.slice(1) === name.toLowerCase()[0] + name.slice(1))) throw new ModelError(`collection name "${name}" is used twice`);
    const indexed = (def.fields ?? []).filter((f) => f.directives?.some((d) => d.name.value === 'indexedQueryable')).map((f) => f.name.value);
    if (indexed.length > 1) throw new ModelError(`${typeName}: at most one field can be @indexedQueryable (${indexed.join(', ')} are)`);
    collections.push({ typeName, name, fields, ...(indexed.length === 1 ? { indexedQueryable: indexed[0]! } : {}) });
  }
  if (collections.length === 0) throw new ModelError('schema.graphql declares no @collection type');
  return { collections, sdl, document };
}

function fieldMerge(owner: string, name: string, f: FieldDefinitionNode, type: FieldType, isCollection: boolean): FieldMerge {
  const has = (directive: string) => f.directives?.some((d) => d.name.value === directive) ?? false;
  const counter = has('counter');
  const set = has('addWinsSet');
  if (!counter && !set) return 'last-writer-wins';
  const marked = counter ? '@counter' : '@addWinsSet';
  if (counter && set) throw new ModelError(`${owner}.${name}: a field is either @counter or @addWinsSet`);
  if (!isCollection) throw new ModelError(`${owner}.${name}: only top-level fields of a @collection type can be ${marked}`);
  if (name === PRIMARY_KEY) throw new ModelError(`${owner}.${name}: the primary key cannot be ${marked}`);
  if (counter && !(type.kind === 'scalar' && (type.name === 'Int' || type.name === 'Float'))) throw new ModelError(`${owner}.${name}: @counter needs Int or Float`);
  // Set elements are compared as written, so only types with one spelling per value: not
  // DateTime or Decimal (one instant or number, several spellings), nor Binary, Mixed or
  // Dictionary. ObjectId, UUID and Long have one canonical wire form each.
  const element = type.kind === 'list' ? type.of : null;
  const elementOk = element !== null && ((element.kind === 'scalar' && SET_ELEMENT_SCALARS.includes(element.name)) || element.kind === 'enum');
  if (set && (!elementOk || (type.kind === 'list' && type.itemNullable))) {
    throw new ModelError(`${owner}.${name}: @addWinsSet needs a list of non-null ID, String, Int, Float, Boolean, ObjectId, UUID, Long or enum values`);
  }
  return counter ? 'counter' : 'add-wins-set';
}

const SET_ELEMENT_SCALARS: readonly ScalarName[] = ['ID', 'String', 'Int', 'Float', 'Boolean', 'ObjectId', 'UUID', 'Long'];

function isQueryableType(type: FieldType): boolean {
  const scalar = type.kind === 'list' ? type.of : type;
  return (scalar.kind === 'scalar' && !UNQUERYABLE_SCALARS.includes(scalar.name)) || scalar.kind === 'enum';
}

function collectionName(def: ObjectTypeDefinitionNode): string | undefined {
  const directive = def.directives?.find((d) => d.name.value === 'collection');
  if (!directive) return undefined;
  const arg = directive.arguments?.find((a) => a.name.value === 'name');
  if (!arg || arg.value.kind !== Kind.STRING) throw new ModelError(`${def.name.value}: @collection needs name: "..."`);
  return arg.value.value;
}

export function queryableFields(collection: CollectionModel): FieldModel[] {
  return collection.fields.filter((f) => f.queryable);
}

export function getCollection(model: DataModel, name: string): CollectionModel {
  const collection = model.collections.find((c) => c.name === name);
  if (!collection) throw new ModelError(`unknown collection "${name}"`);
  return collection;
}

/** `tasks` → `Tasks`: the suffix of the collection's sync operations (`pullTasks`, ...). */
export function operationSuffix(collection: CollectionModel): string {
  return collection.name[0]!.toUpperCase() + collection.name.slice(1);
}

type JsonSchema = Record<string, unknown>;

/**
 * JSON Schema of a collection's documents (without `_deleted`). The gateway validates pushed
 * documents with it; the client SDK hands it to RxDB.
 */
export function documentJsonSchema(collection: CollectionModel): JsonSchema {
  return objectSchema(collection.fields, true);
}

function objectSchema(fields: FieldModel[], isRoot: boolean): JsonSchema {
  const properties: Record<string, JsonSchema> = {};
  for (const f of fields) {
    const schema = typeSchema(f.type);
    // RxDB needs a maxLength on the primary key (ObjectId, UUID and Long keys have their own).
    if (isRoot && f.name === PRIMARY_KEY) schema.maxLength ??= 128;
    properties[f.name] = orNull(f.type, schema, f.nullable);
  }
  return {
    type: 'object',
    properties,
    required: fields.filter((f) => !f.nullable).map((f) => f.name),
    additionalProperties: false,
  };
}

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

function typeSchema(type: FieldType): JsonSchema {
  switch (type.kind) {
    case 'scalar':
      switch (type.name) {
        case 'ID':
        case 'String':
          return { type: 'string' };
        case 'Int':
          // GraphQL's Int is 32-bit: a value past it could be stored but never returned.
          return { type: 'integer', minimum: INT32_MIN, maximum: INT32_MAX };
        case 'Float':
          return { type: 'number' };
        case 'Boolean':
          return { type: 'boolean' };
        case 'DateTime':
          return { type: 'string', format: 'date-time' };
        case 'ObjectId':
          return { type: 'string', pattern: OBJECT_ID_PATTERN, maxLength: 24 };
        case 'UUID':
          return { type: 'string', pattern: UUID_PATTERN, maxLength: 36 };
        case 'Long':
          return { type: 'string', pattern: LONG_PATTERN, maxLength: 20 };
        case 'Decimal':
          return { type: 'string', pattern: DECIMAL_PATTERN, maxLength: DECIMAL_MAX_LENGTH };
        case 'Binary':
          return { type: 'string', pattern: BASE64_PATTERN };
        case 'Mixed':
          // Any JSON value; what it may hold (Extended JSON wrappers, keys) is checked by the
          // gateway's codec (protocol/bson-values.ts), which JSON Schema cannot express.
          return {};
        case 'Dictionary':
          return { type: 'object' };
      }
    // eslint-disable-next-line no-fallthrough
    case 'enum':
      return { type: 'string', enum: type.values };
    case 'object':
      return objectSchema(type.fields, false);
    case 'list': {
      const items = typeSchema(type.of);
      return { type: 'array', items: orNull(type.of, items, type.itemNullable) };
    }
  }
}

/** The schema of a value of `type` that may (or may not) be null. */
function orNull(type: FieldType, schema: JsonSchema, allowNull: boolean): JsonSchema {
  // Null is one of the values a Mixed holds: only a non-null one says so.
  if (type.kind === 'scalar' && type.name === 'Mixed') return allowNull ? schema : { not: { type: 'null' } };
  return allowNull ? nullable(schema) : schema;
}

function nullable(schema: JsonSchema): JsonSchema {
  if (typeof schema.type === 'string') {
    const copy: JsonSchema = { ...schema, type: [schema.type, 'null'] };
    if (Array.isArray(schema.enum)) copy.enum = [...schema.enum, null];
    return copy;
  }
  return { anyOf: [schema, { type: 'null' }] };
}
