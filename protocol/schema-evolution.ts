// Schema evolution: a canonical form of a data model, its fingerprint, and the differences
// between two of them, each additive (old clients keep syncing) or breaking (old clients and old
// data may no longer fit). The gateway records its schema's canonical form in MongoDB at start
// and refuses a breaking change unless the operator confirms it
// (gateway/store/schema-history.ts); the SDK sends its own in connection_init, and the gateway
// closes the socket of a client whose model breaks against the server's (PROTOCOL.md, "Schema
// versions"). Pure: the SDK imports this file (no node: imports).
import { PRIMARY_KEY, SCALARS, type CollectionModel, type DataModel, type FieldMerge, type FieldModel, type FieldType, type ScalarName } from './model.ts';

/** A field's type, without the names of enum and embedded types (renaming those changes no data). */
export type CanonicalType =
  | { kind: 'scalar'; name: ScalarName }
  | { kind: 'enum'; values: string[] }
  | { kind: 'object'; fields: CanonicalField[] }
  | { kind: 'list'; of: CanonicalType; itemRequired: boolean };

export interface CanonicalField {
  name: string;
  type: CanonicalType;
  required: boolean;
  queryable: boolean;
  merge: FieldMerge;
}

export interface CanonicalCollection {
  /** The MongoDB collection name, e.g. `tasks`. */
  name: string;
  /** The GraphQL type name, e.g. `Task` (for messages; not compared). */
  typeName: string;
  /** The primary key's scalar. */
  key: ScalarName;
  indexedQueryable: string | null;
  /** Sorted by name; includes `id`. */
  fields: CanonicalField[];
}

export interface CanonicalModel {
  format: 1;
  /** Sorted by name. */
  collections: CanonicalCollection[];
}

/** What the gateway accepts of a client's canonical model (JSON text length). */
export const MAX_CANONICAL_BYTES = 64 * 1024;
const MAX_DEPTH = 16;
const MAX_ITEMS = 1_000;

const byName = <T extends { name: string }>(a: T, b: T) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

export function canonicalModel(model: DataModel): CanonicalModel {
  return { format: 1, collections: model.collections.map(canonicalCollection).sort(byName) };
}

export function canonicalCollection(collection: CollectionModel): CanonicalCollection {
  const id = collection.fields.find((f) => f.name === PRIMARY_KEY)!;
  return {
    name: collection.name,
    typeName: collection.typeName,
    key: (id.type as { name: ScalarName }).name,
    indexedQueryable: collection.indexedQueryable ?? null,
    fields: canonicalFields(collection.fields),
  };
}

function canonicalFields(fields: FieldModel[]): CanonicalField[] {
  return fields.map((f) => ({ name: f.name, type: canonicalType(f.type), required: !f.nullable, queryable: f.queryable, merge: f.merge })).sort(byName);
}

function canonicalType(type: FieldType): CanonicalType {
  switch (type.kind) {
    case 'scalar':
      return { kind: 'scalar', name: type.name };
    case 'enum':
      return { kind: 'enum', values: [...type.values].sort() };
    case 'object':
      return { kind: 'object', fields: canonicalFields(type.fields) };
    case 'list':
      return { kind: 'list', of: canonicalType(type.of), itemRequired: !type.itemNullable };
  }
}

/** FNV-1a 64-bit of the canonical JSON text (UTF-8), 16 hex digits. */
export function fingerprint(canonical: CanonicalModel | CanonicalCollection): string {
  return fnv1a64(JSON.stringify(canonical));
}

const FNV_OFFSET = 0xcbf29ce484222325n;
const FNV_PRIME = 0x100000001b3n;
const MASK_64 = (1n << 64n) - 1n;

export function fnv1a64(text: string): string {
  let hash = FNV_OFFSET;
  for (const byte of new TextEncoder().encode(text)) {
    hash ^= BigInt(byte);
    hash = (hash * FNV_PRIME) & MASK_64;
  }
  return hash.toString(16).padStart(16, '0');
}

export interface SchemaDifference {
  kind: 'additive' | 'breaking';
  /** What changed, e.g. `field-removed`, `type-changed`, `enum-value-added`. */
  change: string;
  collection: string;
  /** `Type.field` (`Type.field.sub` inside an embedded object), or `Type` for the collection. */
  path: string;
  /** `Task.priority: type changed from Int to String`. */
  message: string;
}

/** Every difference from `before` to `after`; an empty list when they describe the same data. */
export function diffModels(before: CanonicalModel, after: CanonicalModel): SchemaDifference[] {
  const out: SchemaDifference[] = [];
  const afterByName = new Map(after.collections.map((c) => [c.name, c]));
  const beforeByName = new Map(before.collections.map((c) => [c.name, c]));
  for (const old of before.collections) {
    const next = afterByName.get(old.name);
    if (!next) {
      out.push({ kind: 'breaking', change: 'collection-removed', collection: old.name, path: old.typeName, message: `${old.typeName}: collection "${old.name}" removed` });
      continue;
    }
    diffCollection(old, next, out);
  }
  for (const next of after.collections) {
    if (!beforeByName.has(next.name)) out.push({ kind: 'additive', change: 'collection-added', collection: next.name, path: next.typeName, message: `${next.typeName}: new collection "${next.name}"` });
  }
  return out;
}

export function breakingOnly(differences: SchemaDifference[]): SchemaDifference[] {
  return differences.filter((d) => d.kind === 'breaking');
}

function diffCollection(old: CanonicalCollection, next: CanonicalCollection, out: SchemaDifference[]): void {
  const type = next.typeName;
  const push = (kind: SchemaDifference['kind'], change: string, path: string, what: string) => out.push({ kind, change, collection: next.name, path, message: `${path}: ${what}` });
  if (old.key !== next.key) push('breaking', 'key-type-changed', `${type}.${PRIMARY_KEY}`, `key type changed from ${old.key} to ${next.key}`);
  if (old.indexedQueryable !== next.indexedQueryable) {
    if (next.indexedQueryable === null) push('additive', 'indexed-queryable-removed', type, `@indexedQueryable removed from ${old.indexedQueryable}`);
    else push('breaking', 'indexed-queryable-changed', `${type}.${next.indexedQueryable}`, old.indexedQueryable === null ? 'made @indexedQueryable (every subscription must now constrain it)' : `made @indexedQueryable instead of ${old.indexedQueryable} (every subscription must now constrain it)`);
  }
  diffFields(old.fields.filter((f) => f.name !== PRIMARY_KEY), next.fields.filter((f) => f.name !== PRIMARY_KEY), type, push);
}

type Push = (kind: SchemaDifference['kind'], change: string, path: string, what: string) => void;

function diffFields(before: CanonicalField[], after: CanonicalField[], prefix: string, push: Push): void {
  const afterByName = new Map(after.map((f) => [f.name, f]));
  const beforeByName = new Map(before.map((f) => [f.name, f]));
  for (const old of before) {
    const path = `${prefix}.${old.name}`;
    const next = afterByName.get(old.name);
    if (!next) {
      push('breaking', 'field-removed', path, 'field removed');
      continue;
    }
    if (old.required && !next.required) push('additive', 'made-optional', path, 'required field made optional');
    if (!old.required && next.required) push('breaking', 'made-required', path, 'optional field made required');
    if (!old.queryable && next.queryable) push('additive', 'made-queryable', path, 'made @queryable');
    if (old.queryable && !next.queryable) push('breaking', 'queryable-removed', path, '@queryable removed');
    if (old.merge !== next.merge) push('breaking', 'merge-changed', path, `merge strategy changed from ${mergeName(old.merge)} to ${mergeName(next.merge)}`);
    diffTypes(old.type, next.type, path, push);
  }
  for (const next of after) {
    if (beforeByName.has(next.name)) continue;
    const path = `${prefix}.${next.name}`;
    if (next.required) push('breaking', 'required-field-added', path, `new required field (${describeType(next.type)}): existing documents and older clients have no value for it, and there are no defaults`);
    else push('additive', 'field-added', path, `new optional field (${describeType(next.type)})`);
  }
}

function diffTypes(old: CanonicalType, next: CanonicalType, path: string, push: Push): void {
  const changed = () => push('breaking', 'type-changed', path, `type changed from ${describeType(old)} to ${describeType(next)}`);
  if (old.kind !== next.kind) return changed();
  switch (old.kind) {
    case 'scalar':
      if (old.name !== (next as typeof old).name) changed();
      return;
    case 'enum': {
      const after = new Set((next as typeof old).values);
      const before = new Set(old.values);
      for (const v of old.values) if (!after.has(v)) push('breaking', 'enum-value-removed', path, `enum value ${v} removed`);
      for (const v of (next as typeof old).values) if (!before.has(v)) push('additive', 'enum-value-added', path, `new enum value ${v}`);
      return;
    }
    case 'object':
      diffFields(old.fields, (next as typeof old).fields, path, push);
      return;
    case 'list': {
      const n = next as typeof old;
      if (old.of.kind !== n.of.kind || (old.of.kind === 'scalar' && old.of.name !== (n.of as { name: string }).name)) return changed();
      if (old.itemRequired && !n.itemRequired) push('additive', 'items-made-optional', path, 'list items made nullable');
      if (!old.itemRequired && n.itemRequired) push('breaking', 'items-made-required', path, 'list items made non-null');
      diffTypes(old.of, n.of, `${path}[]`, push);
      return;
    }
  }
}

function mergeName(merge: FieldMerge): string {
  return merge === 'counter' ? '@counter' : merge === 'add-wins-set' ? '@addWinsSet' : 'last writer wins';
}

export function describeType(type: CanonicalType): string {
  switch (type.kind) {
    case 'scalar':
      return type.name;
    case 'enum':
      return `enum(${type.values.join('|')})`;
    case 'object':
      return `{${type.fields.map((f) => f.name).join(', ')}}`;
    case 'list':
      return `[${describeType(type.of)}${type.itemRequired ? '!' : ''}]`;
  }
}

/** The top-level field names a model has per collection. */
export function knownFieldsOf(canonical: CanonicalModel): Map<string, ReadonlySet<string>> {
  return new Map(canonical.collections.map((c) => [c.name, new Set(c.fields.map((f) => f.name))]));
}

export class SchemaFormError extends Error {
  override name = 'SchemaFormError';
}

/**
 * A canonical model received from outside (a client's connection_init), checked strictly: exactly
 * the shape canonicalModel() makes, names that could be schema names, bounded size and depth.
 * Throws SchemaFormError.
 */
export function parseCanonicalModel(input: unknown): CanonicalModel {
  let text: string;
  try {
    text = JSON.stringify(input);
  } catch {
    throw new SchemaFormError('the schema is not JSON');
  }
  if (typeof text !== 'string' || text.length > MAX_CANONICAL_BYTES) throw new SchemaFormError(`the schema exceeds ${MAX_CANONICAL_BYTES} bytes`);
  const root = record(input, 'schema', ['format', 'collections']);
  if (root.format !== 1) throw new SchemaFormError('schema.format must be 1');
  const collections = list(root.collections, 'schema.collections').map((c, i) => parseCollection(c, `schema.collections[${i}]`));
  unique(collections, 'schema.collections');
  return { format: 1, collections };
}

function parseCollection(input: unknown, at: string): CanonicalCollection {
  const c = record(input, at, ['name', 'typeName', 'key', 'indexedQueryable', 'fields']);
  const fields = list(c.fields, `${at}.fields`).map((f, i) => parseField(f, `${at}.fields[${i}]`, 0));
  unique(fields, `${at}.fields`);
  if (c.indexedQueryable !== null) name(c.indexedQueryable, `${at}.indexedQueryable`);
  return { name: name(c.name, `${at}.name`), typeName: name(c.typeName, `${at}.typeName`), key: scalar(c.key, `${at}.key`), indexedQueryable: c.indexedQueryable as string | null, fields };
}

function parseField(input: unknown, at: string, depth: number): CanonicalField {
  const f = record(input, at, ['name', 'type', 'required', 'queryable', 'merge']);
  if (typeof f.required !== 'boolean') throw new SchemaFormError(`${at}.required must be a boolean`);
  if (typeof f.queryable !== 'boolean') throw new SchemaFormError(`${at}.queryable must be a boolean`);
  if (f.merge !== 'last-writer-wins' && f.merge !== 'counter' && f.merge !== 'add-wins-set') throw new SchemaFormError(`${at}.merge is not a merge strategy`);
  return { name: name(f.name, `${at}.name`), type: parseType(f.type, `${at}.type`, depth), required: f.required, queryable: f.queryable, merge: f.merge };
}

function parseType(input: unknown, at: string, depth: number): CanonicalType {
  if (depth > MAX_DEPTH) throw new SchemaFormError(`${at}: nested deeper than ${MAX_DEPTH}`);
  const kind = (input !== null && typeof input === 'object' ? (input as { kind?: unknown }).kind : undefined) as unknown;
  switch (kind) {
    case 'scalar':
      return { kind, name: scalar(record(input, at, ['kind', 'name']).name, `${at}.name`) };
    case 'enum': {
      const values = list(record(input, at, ['kind', 'values']).values, `${at}.values`).map((v, i) => name(v, `${at}.values[${i}]`));
      if (new Set(values).size !== values.length) throw new SchemaFormError(`${at}.values: a value is listed twice`);
      return { kind, values };
    }
    case 'object': {
      const fields = list(record(input, at, ['kind', 'fields']).fields, `${at}.fields`).map((f, i) => parseField(f, `${at}.fields[${i}]`, depth + 1));
      unique(fields, `${at}.fields`);
      return { kind, fields };
    }
    case 'list': {
      const l = record(input, at, ['kind', 'of', 'itemRequired']);
      if (typeof l.itemRequired !== 'boolean') throw new SchemaFormError(`${at}.itemRequired must be a boolean`);
      return { kind, of: parseType(l.of, `${at}.of`, depth + 1), itemRequired: l.itemRequired };
    }
    default:
      throw new SchemaFormError(`${at}.kind must be scalar, enum, object or list`);
  }
}

function record(input: unknown, at: string, keys: string[]): Record<string, unknown> {
  if (input === null || typeof input !== 'object' || Array.isArray(input) || Object.getPrototypeOf(input) !== Object.prototype) throw new SchemaFormError(`${at} must be an object`);
  const own = Object.keys(input);
  const extra = own.find((k) => !keys.includes(k));
  if (extra !== undefined) throw new SchemaFormError(`${at}: unknown key ${JSON.stringify(extra.slice(0, 64))}`);
  const missing = keys.find((k) => !Object.hasOwn(input, k));
  if (missing !== undefined) throw new SchemaFormError(`${at}.${missing} is missing`);
  return input as Record<string, unknown>;
}

function list(input: unknown, at: string): unknown[] {
  if (!Array.isArray(input)) throw new SchemaFormError(`${at} must be a list`);
  if (input.length > MAX_ITEMS) throw new SchemaFormError(`${at} holds more than ${MAX_ITEMS} entries`);
  return input;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

function name(input: unknown, at: string): string {
  if (typeof input !== 'string' || !NAME.test(input) || input === '__proto__') throw new SchemaFormError(`${at} must be a name (letters, digits, underscores)`);
  return input;
}

function scalar(input: unknown, at: string): ScalarName {
  if (typeof input !== 'string' || !(SCALARS as readonly string[]).includes(input)) throw new SchemaFormError(`${at} must be one of ${SCALARS.join(', ')}`);
  return input as ScalarName;
}

function unique(items: { name: string }[], at: string): void {
  const seen = new Set<string>();
  for (const { name: n } of items) {
    if (seen.has(n)) throw new SchemaFormError(`${at}: "${n}" is listed twice`);
    seen.add(n);
  }
}
