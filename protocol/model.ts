// The data model, read from schema.graphql. Gateway and client SDK both derive everything
// about a collection (validation, RxDB schema, GraphQL operations, date conversion) from this.
import {
  Kind,
  parse,
  type DocumentNode,
  type FieldDefinitionNode,
  type ObjectTypeDefinitionNode,
  type TypeNode,
} from 'graphql';

export const SCALARS = ['ID', 'String', 'Int', 'Float', 'Boolean', 'DateTime'] as const;
export type ScalarName = (typeof SCALARS)[number];

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
    const marked = f.directives?.some((d) => d.name.value === 'queryable') ?? false;
    if (marked && !isCollection) throw new ModelError(`${owner}.${name}: only top-level fields of a @collection type can be @queryable`);
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
    if (!id || id.nullable || id.type.kind !== 'scalar' || id.type.name !== 'ID') {
      throw new ModelError(`${typeName}: a @collection type needs a primary key field "${PRIMARY_KEY}: ID!"`);
    }
    if (!/^[a-z][a-zA-Z0-9]*$/.test(name)) throw new ModelError(`${typeName}: collection name "${name}" must be camelCase letters and digits`);
    if (collections.some((c) => c.name === name)) throw new ModelError(`collection name "${name}" is used twice`);
    collections.push({ typeName, name, fields });
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
  // DateTime is left out: one instant has several spellings, and set elements are compared as written.
  const element = type.kind === 'list' ? type.of : null;
  const elementOk = element !== null && ((element.kind === 'scalar' && element.name !== 'DateTime') || element.kind === 'enum');
  if (set && (!elementOk || (type.kind === 'list' && type.itemNullable))) {
    throw new ModelError(`${owner}.${name}: @addWinsSet needs a list of non-null ID, String, Int, Float, Boolean or enum values`);
  }
  return counter ? 'counter' : 'add-wins-set';
}

function isQueryableType(type: FieldType): boolean {
  if (type.kind === 'list') return type.of.kind === 'scalar' || type.of.kind === 'enum';
  return type.kind === 'scalar' || type.kind === 'enum';
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
    if (isRoot && f.name === PRIMARY_KEY) schema.maxLength = 128;
    properties[f.name] = f.nullable ? nullable(schema) : schema;
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
      }
    // eslint-disable-next-line no-fallthrough
    case 'enum':
      return { type: 'string', enum: type.values };
    case 'object':
      return objectSchema(type.fields, false);
    case 'list': {
      const items = typeSchema(type.of);
      return { type: 'array', items: type.itemNullable ? nullable(items) : items };
    }
  }
}

function nullable(schema: JsonSchema): JsonSchema {
  if (typeof schema.type === 'string') {
    const copy: JsonSchema = { ...schema, type: [schema.type, 'null'] };
    if (Array.isArray(schema.enum)) copy.enum = [...schema.enum, null];
    return copy;
  }
  return { anyOf: [schema, { type: 'null' }] };
}

/**
 * Applies `convert` to every DateTime value of a document, following the model through embedded
 * objects and lists. Used at the store boundary (ISO string on the wire, BSON date in MongoDB).
 */
export function mapDateTimes(fields: FieldModel[], doc: Record<string, unknown>, convert: (v: unknown) => unknown): Record<string, unknown> {
  const out: Record<string, unknown> = { ...doc };
  for (const f of fields) {
    const value = out[f.name];
    if (value !== undefined && value !== null) out[f.name] = mapValue(f.type, value, convert);
  }
  return out;
}

function mapValue(type: FieldType, value: unknown, convert: (v: unknown) => unknown): unknown {
  if (value === null || value === undefined) return value;
  switch (type.kind) {
    case 'scalar':
      return type.name === 'DateTime' ? convert(value) : value;
    case 'enum':
      return value;
    case 'object':
      return typeof value === 'object' ? mapDateTimes(type.fields, value as Record<string, unknown>, convert) : value;
    case 'list':
      return Array.isArray(value) ? value.map((v) => mapValue(type.of, v, convert)) : value;
  }
}

export function hasDateTimes(fields: FieldModel[]): boolean {
  const has = (t: FieldType): boolean =>
    t.kind === 'scalar' ? t.name === 'DateTime' : t.kind === 'object' ? t.fields.some((f) => has(f.type)) : t.kind === 'list' ? has(t.of) : false;
  return fields.some((f) => has(f.type));
}
