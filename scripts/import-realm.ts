// `npm run import-realm -- <export folder> [--out <dir>] [--environment <name>] [--force]`
// (or, installed as a package: `tributary import-realm <export folder> ...`)
//
// Turns an Atlas App Services export (App Services CLI `appservices pull`, or the UI's export) of
// a Flexible Sync app into Tributary's configuration:
//
//   <out>/schema.graphql          from data_sources/<service>/<db>/<collection>/schema.json
//                                 (+ relationships.json for link comments, sync/config.json for @queryable)
//   <out>/rules/<collection>.json from .../<collection>/rules.json, values/ and environments/ inlined
//   <out>/rules/default_rule.json from data_sources/<service>/default_rule.json
//   <out>/IMPORT-NOTES.md         how to start the gateway, custom user data, authentication,
//                                 what was translated with a difference and what was not imported
//
// All or nothing: when anything cannot be translated faithfully, it prints each item (file,
// field or role, reason) and exits 1 without writing. `--force` writes what it could instead:
// untranslatable fields are left out, untranslatable permissions are replaced by denials (never
// by something wider), and every problem is listed in IMPORT-NOTES.md.
// The result is checked with the gateway's own loaders (loadModel, loadRules) before it is moved
// into place; the output folder must not exist yet (or be empty).
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { loadRules, PERCENT_OPERATORS } from '../gateway/rules/load.ts';
import { loadModel } from '../protocol/model.ts';

// ---------------------------------------------------------------------------------------------
// What can be said about an export

export interface Finding {
  /** Path inside the export, e.g. `data_sources/mongodb-atlas/todo/Task/rules.json`. */
  file: string;
  /** Field, role or setting inside the file, e.g. `Task.dueDate` or `roles[1] "owner".apply_when`. */
  where: string;
  reason: string;
}

export interface Translation {
  appName: string;
  database: string | null;
  schema: string;
  /** File name inside rules/ → contents. */
  rules: Map<string, unknown>;
  /** Cannot be translated faithfully: blocks the import unless --force. */
  problems: Finding[];
  /** Translated, with a difference worth knowing. */
  differences: Finding[];
  /** Parts of the app outside what Tributary configures (functions, triggers, ...). */
  notImported: string[];
  /** Environment variables the gateway needs for this app (besides schema and rules). */
  env: Array<[string, string]>;
  /** Notes about authentication and custom user data, for IMPORT-NOTES.md. */
  notes: string[];
  collections: Array<{ name: string; typeName: string; queryable: string[] }>;
}

/** Our scalars (protocol/model.ts) and what each stands for in Realm. */
const BSON_SCALARS: Record<string, string> = {
  objectId: 'ObjectId',
  uuid: 'UUID',
  long: 'Long',
  int: 'Int',
  double: 'Float',
  float: 'Float',
  decimal: 'Decimal',
  date: 'DateTime',
  bool: 'Boolean',
  string: 'String',
  mixed: 'Mixed',
  binData: 'Binary',
  binary: 'Binary',
};
/** JSON Schema's `type`, which App Services accepts instead of `bsonType`. */
const JSON_TYPES: Record<string, string> = { string: 'string', boolean: 'bool', object: 'object', array: 'array', null: 'null', number: 'number' };
const KEY_TYPES: Record<string, string> = { objectId: 'ObjectId', uuid: 'UUID', string: 'ID', long: 'Long', int: 'Long' };
const BUILT_IN_SCALARS = new Set(['ID', 'String', 'Int', 'Float', 'Boolean']);
/** Type names the gateway's GraphQL schema defines itself (gateway/graphql/schema.ts). */
const RESERVED_TYPE_NAMES = new Set([
  'Query', 'Mutation', 'Subscription', 'JSONObject', 'SyncCheckpoint', 'SyncCheckpointInput', 'SyncPullBulk', 'SyncBootstrapPage',
  'SyncStreamEvent', 'SyncPushRow', 'PushRejection', 'SyncPushResult', 'Viewer',
  'ID', 'String', 'Int', 'Float', 'Boolean', 'ObjectId', 'UUID', 'Long', 'Decimal', 'Binary', 'DateTime', 'Mixed', 'Dictionary',
]);
const GENERATED_SUFFIXES = ['Input', 'Patch', 'Increment', 'Change'];
const GRAPHQL_NAME = /^[_A-Za-z][_0-9A-Za-z]*$/;
/** Rule operators of App Services expressions that are MongoDB query operators under another name. */
const ROLE_SETTINGS = new Set(['name', 'apply_when', 'document_filters', 'read', 'write', 'insert', 'delete', 'search', 'fields', 'additional_fields']);
/** Components of an App Services app that Tributary does not configure. */
const OUT_OF_SCOPE: Record<string, string> = {
  functions: 'Atlas Functions (server-side JavaScript)',
  triggers: 'database, authentication and scheduled triggers',
  https_endpoints: 'HTTPS endpoints',
  graphql: 'the App Services GraphQL API settings and custom resolvers (Tributary generates its own GraphQL API)',
  hosting: 'static hosting',
  log_forwarders: 'log forwarders',
  services: 'third-party services',
  edge_server: 'Edge Server',
  data_api: 'the Data API',
};

type Json = unknown;
type Report = (where: string, reason: string) => void;
type JsonObject = Record<string, unknown>;

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

interface FieldDef {
  name: string;
  /** GraphQL type reference, e.g. `[ChecklistItem!]!`. */
  type: string;
  directives: string[];
  comments: string[];
  description?: string;
}

interface TypeDef {
  name: string;
  collection?: string;
  description?: string;
  source: string;
  fields: FieldDef[];
}

interface CollectionSource {
  name: string;
  database: string;
  dir: string; // relative to the export
  schema?: JsonObject;
  rules?: JsonObject;
  relationships?: JsonObject;
}

// ---------------------------------------------------------------------------------------------

export function translateRealmApp(exportDir: string, options: { environment?: string } = {}): Translation {
  const root = resolve(exportDir);
  const problems: Finding[] = [];
  const differences: Finding[] = [];
  const notImported: string[] = [];
  const notes: string[] = [];
  const env: Array<[string, string]> = [];
  const problem = (file: string, where: string, reason: string) => problems.push({ file, where, reason });
  const difference = (file: string, where: string, reason: string) => differences.push({ file, where, reason });
  const rel = (path: string) => relative(root, path) || '.';

  const readJson = (path: string): Json | undefined => {
    if (!existsSync(path)) return undefined;
    try {
      return JSON.parse(readFileSync(path, 'utf8'));
    } catch (error) {
      problem(rel(path), '(file)', `not valid JSON: ${(error as Error).message}`);
      return undefined;
    }
  };
  const subdirs = (path: string) =>
    existsSync(path) ? readdirSync(path, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name).sort() : [];

  // --- the app --------------------------------------------------------------------------------
  if (!existsSync(root) || !statSync(root).isDirectory()) {
    problem(exportDir, '(folder)', 'no such folder');
    return emptyTranslation(problems);
  }
  const rootConfigFile = ['root_config.json', 'realm_config.json', 'config.json'].find((f) => existsSync(join(root, f)));
  const rootConfig = rootConfigFile ? readJson(join(root, rootConfigFile)) : undefined;
  if (!existsSync(join(root, 'data_sources'))) {
    if (existsSync(join(root, 'services'))) {
      problem('services/', '(folder)', 'a legacy realm-cli v1 export (services/ instead of data_sources/): export the app again with the App Services CLI (`appservices pull`)');
    } else {
      problem('data_sources/', '(folder)', 'missing: this is not an App Services export (expected root_config.json, data_sources/, sync/)');
    }
    return emptyTranslation(problems);
  }
  const appName = isObject(rootConfig) && typeof rootConfig.name === 'string' ? rootConfig.name : basename(root);
  const environment = options.environment ?? (isObject(rootConfig) && typeof rootConfig.environment === 'string' ? rootConfig.environment : '');

  // --- values and environment values ----------------------------------------------------------
  const values = new Map<string, { value: Json; fromSecret: boolean; file: string }>();
  if (existsSync(join(root, 'values'))) {
    for (const f of readdirSync(join(root, 'values')).filter((f) => f.endsWith('.json')).sort()) {
      const json = readJson(join(root, 'values', f));
      if (!isObject(json)) continue;
      const name = typeof json.name === 'string' ? json.name : basename(f, '.json');
      values.set(name, { value: json.value, fromSecret: json.from_secret === true, file: `values/${f}` });
    }
  }
  const environmentFile = `environments/${environment || 'no-environment'}.json`;
  const environmentJson = readJson(join(root, environmentFile));
  const environmentValues = isObject(environmentJson) && isObject(environmentJson.values) ? environmentJson.values : undefined;

  // --- sync configuration ---------------------------------------------------------------------
  const syncFile = 'sync/config.json';
  const sync = readJson(join(root, syncFile));
  if (sync === undefined) {
    difference(syncFile, '(file)', 'missing: Device Sync is not configured in this export; only `id` is @queryable');
  } else if (isObject(sync)) {
    if (sync.type !== undefined && sync.type !== 'flexible') {
      problem(syncFile, 'type', `"${String(sync.type)}" sync: only Flexible Sync translates (Partition-Based Sync has no equivalent)`);
    }
    const legacy = sync.permissions;
    if (isObject(legacy) && ((isObject(legacy.rules) && Object.keys(legacy.rules).length > 0) || (Array.isArray(legacy.defaultRoles) && legacy.defaultRoles.length > 0))) {
      problem(syncFile, 'permissions', 'sync permissions in the legacy Flexible Sync format: migrate them to collection rules (rules.json) in App Services, then export again');
    }
    if (sync.state === 'disabled') difference(syncFile, 'state', 'sync is disabled in the export; the gateway syncs once started');
  }
  const syncService = isObject(sync) && typeof sync.service_name === 'string' ? sync.service_name : undefined;

  // --- data source ----------------------------------------------------------------------------
  const services = subdirs(join(root, 'data_sources')).filter((s) => {
    const cfg = readJson(join(root, 'data_sources', s, 'config.json'));
    return !isObject(cfg) || cfg.type === undefined || cfg.type === 'mongodb-atlas';
  });
  let service: string | undefined;
  if (syncService && services.includes(syncService)) service = syncService;
  else if (services.length === 1) service = services[0];
  else if (services.length === 0) problem('data_sources/', '(folder)', 'no mongodb-atlas data source');
  else problem('data_sources/', '(folder)', `several MongoDB data sources (${services.join(', ')}) and sync/config.json names none of them`);
  for (const other of subdirs(join(root, 'data_sources')).filter((s) => s !== service)) notImported.push(`data_sources/${other}/: a data source Device Sync does not use`);
  if (!service) return { ...emptyTranslation(problems), appName, differences, notImported };
  const serviceDir = join(root, 'data_sources', service);

  const sources: CollectionSource[] = [];
  for (const database of subdirs(serviceDir)) {
    for (const name of subdirs(join(serviceDir, database))) {
      const dir = join(serviceDir, database, name);
      const schema = readJson(join(dir, 'schema.json'));
      const rules = readJson(join(dir, 'rules.json'));
      const relationships = readJson(join(dir, 'relationships.json'));
      const source: CollectionSource = { name, database, dir: rel(dir) };
      if (isObject(schema) && Object.keys(schema).length > 0) source.schema = schema;
      if (isObject(rules)) source.rules = rules;
      if (isObject(relationships)) source.relationships = relationships;
      if (!source.schema) {
        if (source.rules) notImported.push(`${source.dir}/rules.json: ${database}.${name} has no schema.json, so Device Sync never synced it; its rules are not imported`);
        continue;
      }
      sources.push(source);
    }
  }
  if (sources.length === 0) problem(rel(serviceDir), '(folder)', 'no collection with a schema.json: nothing to sync');
  const databases = [...new Set(sources.map((s) => s.database))];
  if (databases.length > 1) {
    problem(rel(serviceDir), '(folder)', `synced collections are in several databases (${databases.join(', ')}); a gateway serves one database (TRIBUTARY_DATABASE)`);
  }
  const database = databases[0] ?? null;
  if (database) env.push(['TRIBUTARY_DATABASE', database]);

  // --- the model ------------------------------------------------------------------------------
  const types = new Map<string, TypeDef>();
  const embeddedSignatures = new Map<string, { signature: string; file: string }>();
  const titles = new Map<string, string>(); // collection name → type name
  const keyTypes = new Map<string, string>(); // collection name → _id bsonType
  for (const s of sources) {
    const title = typeof s.schema!.title === 'string' && s.schema!.title ? s.schema!.title : s.name[0]!.toUpperCase() + s.name.slice(1);
    titles.set(s.name, title);
    const id = isObject(s.schema!.properties) ? s.schema!.properties._id : undefined;
    if (isObject(id)) keyTypes.set(s.name, bsonTypes(id).types[0] ?? '');
  }
  const collectionOfTitle = new Map([...titles].map(([c, t]) => [t, c]));
  const setProbe = new Map<string, boolean>();

  const translateCollection = (s: CollectionSource): TypeDef | null => {
    const file = `${s.dir}/schema.json`;
    const typeName = titles.get(s.name)!;
    // These leave nothing to write for the collection; a field that does not translate is left out.
    let fatal = false;
    const fail = (where: string, reason: string) => {
      problem(file, where, reason);
      fatal = true;
    };
    if (!GRAPHQL_NAME.test(typeName)) fail('title', `"${typeName}" is not a GraphQL type name (letters, digits, _)`);
    else if (RESERVED_TYPE_NAMES.has(typeName)) fail('title', `"${typeName}" is a name the gateway's GraphQL schema uses itself`);
    if (!GRAPHQL_NAME.test(s.name)) fail('(collection)', `collection name "${s.name}" is not a GraphQL name (letters, digits, _): the gateway names its list query after it`);
    else if (typeName[0]!.toLowerCase() + typeName.slice(1) === s.name) {
      fail('(collection)', `collection "${s.name}" and type "${typeName}": the gateway's get-by-id query is the type name in lower camel case and must differ from the collection's list query`);
    }
    if (s.schema!.bsonType !== undefined && s.schema!.bsonType !== 'object') fail('bsonType', 'a collection schema must be an object schema');
    const properties = isObject(s.schema!.properties) ? s.schema!.properties : {};
    const required = new Set(Array.isArray(s.schema!.required) ? (s.schema!.required as string[]) : []);
    const fields: FieldDef[] = [];
    const id = properties._id;
    if (!isObject(id)) {
      fail(`${typeName}._id`, 'missing: a synced collection needs a primary key `_id`');
    } else {
      const { types: t } = bsonTypes(id);
      const key = t.length === 1 ? KEY_TYPES[t[0]!] : undefined;
      if (!key) fail(`${typeName}._id`, `bsonType ${JSON.stringify(id.bsonType ?? id.type)} cannot be a primary key (objectId, uuid, string, long or int)`);
      else {
        if (t[0] === 'int') difference(file, `${typeName}._id`, 'int primary key becomes Long! (Realm\'s int is 64-bit)');
        fields.push({ name: 'id', type: `${key}!`, directives: [], comments: ['Realm\'s _id (stored as MongoDB\'s _id)'] });
      }
    }
    for (const [name, schema] of Object.entries(properties)) {
      if (name === '_id') continue;
      const where = `${typeName}.${name}`;
      if (name === 'id') {
        problem(file, where, 'a field named "id" collides with the primary key (Realm\'s _id is `id` in schema.graphql)');
        continue;
      }
      const field = translateField(name, schema, required.has(name), { file, where, collection: s, path: name, typeOwner: typeName });
      if (field) fields.push(field);
    }
    if (fatal) return null;
    return { name: typeName, collection: s.name, description: typeof s.schema!.description === 'string' ? s.schema!.description : undefined, source: file, fields };
  };

  interface Where {
    file: string;
    where: string;
    collection: CollectionSource;
    /** Dotted path from the collection's root (relationships.json keys). */
    path: string;
    typeOwner: string;
  }

  const translateField = (name: string, schema: Json, isRequired: boolean, at: Where): FieldDef | null => {
    if (!GRAPHQL_NAME.test(name)) {
      problem(at.file, at.where, 'not a GraphQL field name (letters, digits and _ only)');
      return null;
    }
    if (name.startsWith('_')) {
      problem(at.file, at.where, 'field names starting with "_" are reserved in Tributary\'s model (only Realm\'s _id, which becomes `id`)');
      return null;
    }
    if (name === 'constructor' || name === 'prototype' || name === '__proto__') {
      problem(at.file, at.where, `"${name}" cannot be a field name`);
      return null;
    }
    if (!isObject(schema)) {
      problem(at.file, at.where, 'its schema is not an object');
      return null;
    }
    const mapped = mapType(schema, at);
    if (!mapped) return null;
    const comments: string[] = [];
    const directives: string[] = [];
    const link = at.collection.relationships?.[at.path];
    if (isObject(link)) comments.push(linkComment(link, mapped.keyBson, at));
    if (mapped.isSet) {
      if (mapped.setElement && acceptsAddWinsSet(mapped.setElement)) directives.push('@addWinsSet');
      else difference(at.file, at.where, `Realm set of ${mapped.setElement ?? 'objects'} becomes a list: @addWinsSet does not take ${mapped.setElement ?? 'objects'}, so concurrent changes to it resolve last-writer-wins and duplicates are not refused`);
    }
    return {
      name,
      type: `${mapped.ref}${isRequired && !mapped.nullable ? '!' : ''}`,
      directives,
      comments,
      description: typeof schema.description === 'string' ? schema.description : undefined,
    };
  };

  const acceptsAddWinsSet = (element: string): boolean => {
    if (!setProbe.has(element)) {
      const scalar = BUILT_IN_SCALARS.has(element) ? '' : `scalar ${element}\n`;
      setProbe.set(element, modelAccepts(`${scalar}type P @collection(name: "p") { id: ID! s: [${element}!] @addWinsSet }`));
    }
    return setProbe.get(element)!;
  };

  const linkComment = (link: JsonObject, keyBson: string | undefined, at: Where): string => {
    const ref = typeof link.ref === 'string' ? link.ref : '';
    const m = /^#\/relationship\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(ref);
    const foreignKey = typeof link.foreign_key === 'string' ? link.foreign_key : '_id';
    if (!m) {
      difference(`${at.collection.dir}/relationships.json`, at.path, `ref "${ref}" is not #/relationship/<service>/<database>/<collection>; kept as a plain value`);
      return `link: ${ref}`;
    }
    const [, , db, target] = m;
    const targetType = titles.get(target!);
    if (!targetType || db !== at.collection.database) {
      difference(`${at.collection.dir}/relationships.json`, at.path, `links to ${db}.${target}, which is not a synced collection of this export; kept as a plain value`);
      return `link to ${db}.${target}.${foreignKey} (not synced here)`;
    }
    const targetKey = keyTypes.get(target!);
    if (foreignKey === '_id' && keyBson && targetKey && keyBson !== targetKey) {
      difference(`${at.collection.dir}/relationships.json`, at.path, `holds ${keyBson} values but ${target}'s _id is ${targetKey}`);
    }
    return `link to ${targetType} (collection "${target}") by ${foreignKey === '_id' ? 'its id' : foreignKey}${link.is_list === true ? ', to-many' : ''}`;
  };

  interface Mapped {
    ref: string;
    nullable: boolean;
    isList: boolean;
    isSet: boolean;
    setElement?: string;
    /** The BSON type of a link's value (or of its elements). */
    keyBson?: string;
  }

  const mapType = (schema: JsonObject, at: Where): Mapped | null => {
    const { types: t, nullable, bad } = bsonTypes(schema);
    if (bad) {
      problem(at.file, at.where, bad);
      return null;
    }
    if (t.length !== 1) {
      problem(at.file, at.where, t.length === 0 ? 'no bsonType' : `several BSON types (${t.join(', ')}): use "mixed" in Realm, or one type`);
      return null;
    }
    const bson = t[0]!;
    if (bson === 'array') {
      if (!isObject(schema.items)) {
        problem(at.file, at.where, Array.isArray(schema.items) ? 'tuple arrays (items as a list of schemas) have no equivalent' : 'an array without an `items` schema');
        return null;
      }
      const item = mapType(schema.items, { ...at, where: `${at.where}[]` });
      if (!item) return null;
      if (item.isList) {
        problem(at.file, at.where, 'lists of lists are not supported');
        return null;
      }
      const isSet = schema.uniqueItems === true;
      return {
        ref: `[${item.ref}${item.nullable ? '' : '!'}]`,
        nullable: nullable,
        isList: true,
        isSet,
        setElement: isSet && !types.has(item.ref) ? item.ref : undefined,
        keyBson: item.keyBson,
      };
    }
    if (bson === 'object') {
      const hasProperties = isObject(schema.properties) && Object.keys(schema.properties).length > 0;
      if (!hasProperties) {
        if (schema.additionalProperties === undefined || schema.additionalProperties === true) {
          difference(at.file, at.where, 'an object without properties becomes a Dictionary (string keys, any values)');
        } else if (isObject(schema.additionalProperties)) {
          const valueTypes = bsonTypes(schema.additionalProperties).types;
          if (!(valueTypes.length === 1 && valueTypes[0] === 'mixed')) {
            const what = valueTypes[0] === 'object' ? `embedded ${String(schema.additionalProperties.title ?? 'objects')}` : valueTypes.join('/') || 'typed values';
            difference(at.file, at.where, `a Realm dictionary of ${what} becomes Dictionary (string keys, any values): the gateway does not check the value type`);
          }
        }
        return { ref: 'Dictionary', nullable, isList: false, isSet: false };
      }
      let name = typeof schema.title === 'string' && schema.title ? schema.title : '';
      if (!name) {
        name = at.typeOwner + at.path.split('.').pop()!.replace(/^./, (c) => c.toUpperCase());
        difference(at.file, at.where, `an embedded object without a title: named ${name}`);
      }
      if (!GRAPHQL_NAME.test(name)) {
        problem(at.file, at.where, `embedded object title "${name}" is not a GraphQL type name`);
        return null;
      }
      if (RESERVED_TYPE_NAMES.has(name) || collectionOfTitle.has(name)) {
        problem(at.file, at.where, `embedded object title "${name}" is ${collectionOfTitle.has(name) ? 'also a collection\'s type' : 'a name the gateway uses itself'}`);
        return null;
      }
      const required = new Set(Array.isArray(schema.required) ? (schema.required as string[]) : []);
      const fields: FieldDef[] = [];
      let ok = true;
      for (const [fname, fschema] of Object.entries(schema.properties as JsonObject)) {
        const field = translateField(fname, fschema, required.has(fname), { ...at, where: `${name}.${fname}`, path: `${at.path}.${fname}`, typeOwner: name });
        if (field) fields.push(field);
        else ok = false;
      }
      if (fields.length === 0) {
        if (ok) problem(at.file, at.where, `embedded object ${name} has no fields`);
        return null;
      }
      const signature = JSON.stringify(fields.map((f) => [f.name, f.type]));
      const seen = embeddedSignatures.get(name);
      if (seen && seen.signature !== signature) {
        problem(at.file, at.where, `embedded object ${name} is also defined, with other fields, in ${seen.file}`);
        return null;
      }
      if (!seen) {
        embeddedSignatures.set(name, { signature, file: at.file });
        types.set(name, { name, description: typeof schema.description === 'string' ? schema.description : undefined, source: at.file, fields });
      }
      return { ref: name, nullable, isList: false, isSet: false };
    }
    const scalar = BSON_SCALARS[bson];
    if (!scalar) {
      problem(at.file, at.where, bson === 'number' ? 'bsonType "number" (int, long, double or decimal): choose one in the Realm schema' : `bsonType "${bson}" has no type in Tributary's model`);
      return null;
    }
    if (Array.isArray(schema.enum)) difference(at.file, at.where, `enum constraint ${JSON.stringify(schema.enum)} is not kept (the field is a plain ${scalar})`);
    return { ref: scalar, nullable, isList: false, isSet: false, keyBson: bson };
  };

  const collectionTypes: TypeDef[] = [];
  for (const s of sources) {
    const def = translateCollection(s);
    if (def) collectionTypes.push(def);
  }
  const titleUse = new Map<string, string>();
  for (const def of collectionTypes) {
    const other = titleUse.get(def.name);
    if (other) problem(def.source, 'title', `type name "${def.name}" is also the title of collection "${other}"`);
    titleUse.set(def.name, def.collection!);
  }
  const allNames = new Set([...collectionTypes.map((t) => t.name), ...types.keys()]);
  for (const name of allNames) {
    for (const suffix of GENERATED_SUFFIXES) {
      if (allNames.has(name + suffix)) problem(`${name + suffix}`, '(type)', `the gateway generates ${name + suffix} for ${name}; rename one of them in Realm`);
    }
  }

  // --- queryable fields -----------------------------------------------------------------------
  const queryable = new Map<string, Set<string>>(collectionTypes.map((t) => [t.collection!, new Set<string>()]));
  // Realm's indexed queryable field: every subscription must constrain it (@indexedQueryable).
  const indexed = new Set(isObject(sync) && Array.isArray(sync.indexed_queryable_fields_names) ? sync.indexed_queryable_fields_names.filter((f): f is string => typeof f === 'string') : []);
  if (isObject(sync)) {
    const global = [
      ...(Array.isArray(sync.queryable_fields_names) ? sync.queryable_fields_names : []),
      ...(Array.isArray(sync.indexed_queryable_fields_names) ? sync.indexed_queryable_fields_names : []),
    ].filter((f): f is string => typeof f === 'string');
    for (const field of new Set(global)) {
      if (field === '_id') continue;
      const having = collectionTypes.filter((t) => t.fields.some((f) => f.name === field));
      if (having.length === 0) difference(syncFile, `queryable_fields_names: ${field}`, 'no synced collection has this field');
      for (const t of having) queryable.get(t.collection!)!.add(field);
    }
    const perCollection = isObject(sync.collection_queryable_fields_names) ? sync.collection_queryable_fields_names : {};
    for (const [key, list] of Object.entries(perCollection)) {
      // App Services keys this by collection; exports also key it by the schema's title.
      const collection = titles.has(key) ? key : collectionOfTitle.get(key);
      const def = collectionTypes.find((t) => t.collection === collection);
      if (!collection) {
        problem(syncFile, `collection_queryable_fields_names.${key}`, 'names no synced collection (neither a collection nor a schema title)');
        continue;
      }
      if (!def) continue; // its schema did not translate; already reported
      for (const field of Array.isArray(list) ? list : []) {
        if (typeof field !== 'string' || field === '_id') continue;
        if (!def.fields.some((f) => f.name === field)) {
          problem(syncFile, `collection_queryable_fields_names.${key}: ${field}`, `${def.name} has no such top-level field`);
          continue;
        }
        queryable.get(collection)!.add(field);
      }
    }
  }
  for (const def of collectionTypes) {
    for (const field of def.fields) {
      if (!queryable.get(def.collection!)!.has(field.name)) continue;
      const base = field.type.replace(/[[\]!]/g, '');
      if (types.has(base) || base === 'Dictionary') {
        problem(syncFile, `${def.name}.${field.name}`, `queryable field of type ${field.type}: only scalars and lists of scalars can be queried`);
        continue;
      }
      const isIndexed = indexed.has(field.name) && !field.type.startsWith('[');
      field.directives.unshift(isIndexed ? '@indexedQueryable' : '@queryable');
    }
  }

  // --- rules ----------------------------------------------------------------------------------
  const rules = new Map<string, unknown>();
  let customDataUsed = false;
  const searchDropped = new Set<string>();
  const userIdUsed = { value: false };
  const fieldsOf = (collection: string | null) =>
    collection === null ? null : new Set((collectionTypes.find((t) => t.collection === collection)?.fields ?? []).map((f) => f.name));

  const translateRules = (file: string, json: JsonObject, collection: string | null): unknown => {
    for (const key of Object.keys(json)) {
      if (['collection', 'database', 'roles', 'filters', 'id', '_id'].includes(key)) continue;
      difference(file, key, 'not a rules setting Tributary reads; ignored');
    }
    let closed = false;
    if (Array.isArray(json.filters) && json.filters.length > 0) {
      problem(file, 'filters', 'query filters (filters[]) have no equivalent: express them in the roles\' document_filters');
      closed = true;
    }
    if (!Array.isArray(json.roles)) {
      problem(file, 'roles', 'missing or not a list');
      return { roles: [] };
    }
    const roles = json.roles.map((role, i) => translateRole(file, role, i, collection));
    if (searchDropped.has(file)) difference(file, 'roles[].search', 'Atlas Search permissions: Tributary has no Atlas Search; dropped');
    // With --force, a collection whose filters could not be kept is closed (no role: no access).
    return { roles: closed ? [] : roles };
  };

  const translateRole = (file: string, role: Json, i: number, collection: string | null): JsonObject => {
    const label = isObject(role) && typeof role.name === 'string' ? `roles[${i}] "${role.name}"` : `roles[${i}]`;
    const deny = (name: string, applyWhen: JsonObject): JsonObject => ({
      name,
      apply_when: applyWhen,
      document_filters: { read: false, write: false },
      read: false,
      write: false,
      insert: false,
      delete: false,
    });
    if (!isObject(role)) {
      problem(file, label, 'not an object');
      return deny(`role ${i} (not imported)`, {});
    }
    const name = typeof role.name === 'string' && role.name ? role.name : `role ${i}`;
    let broken = false;
    const fail = (where: string, reason: string) => {
      problem(file, `${label}.${where}`, reason);
      broken = true;
    };
    for (const key of Object.keys(role)) {
      if (key === '_id' || key === 'id') continue;
      if (!ROLE_SETTINGS.has(key)) fail(key, 'not a role setting Tributary knows');
    }
    const out: JsonObject = { name };
    // apply_when: decided once per session; only expansions of the user can be compared.
    let applyWhenOk = true;
    const applyWhen = role.apply_when === undefined ? {} : translateExpression(role.apply_when, (where, reason) => {
      fail(`apply_when${where}`, reason);
      applyWhenOk = false;
    });
    out.apply_when = isObject(applyWhen) ? applyWhen : {};
    if (role.apply_when !== undefined && !isObject(role.apply_when) && applyWhenOk) fail('apply_when', 'must be an object');

    if (role.document_filters !== undefined) {
      if (!isObject(role.document_filters)) fail('document_filters', 'must be an object');
      else {
        const filters: JsonObject = {};
        for (const [kind, filter] of Object.entries(role.document_filters)) {
          if (kind !== 'read' && kind !== 'write') {
            fail(`document_filters.${kind}`, 'only read and write filters exist');
            continue;
          }
          let ok = true;
          const translated = translateFilter(filter, (where, reason) => {
            fail(`document_filters.${kind}${where}`, reason);
            ok = false;
          });
          filters[kind] = ok ? translated : false;
        }
        out.document_filters = filters;
      }
    }
    for (const key of ['read', 'write', 'insert', 'delete'] as const) {
      if (role[key] === undefined) continue;
      let ok = true;
      const value = typeof role[key] === 'boolean' ? role[key] : translateExpression(role[key], (where, reason) => {
        fail(`${key}${where}`, reason);
        ok = false;
      });
      out[key] = ok ? value : false;
    }
    if (role.search !== undefined && role.search !== false) searchDropped.add(file);
    const known = fieldsOf(collection);
    if (role.fields !== undefined) {
      if (!isObject(role.fields)) fail('fields', 'must be an object');
      else {
        const fields: JsonObject = {};
        for (const [field, perms] of Object.entries(role.fields)) {
          const target = field === '_id' ? 'id' : field;
          if (!isObject(perms)) {
            fail(`fields.${field}`, 'must be an object with read and write');
            continue;
          }
          if (known && !known.has(target)) fail(`fields.${field}`, `no such field in ${collection}'s schema`);
          const p: JsonObject = {};
          for (const [k, v] of Object.entries(perms)) {
            if (k === 'fields') {
              fail(`fields.${field}.fields`, 'permissions on fields of embedded objects have no equivalent (field permissions apply to top-level fields)');
              p.read = false;
              p.write = false;
            } else if (k !== 'read' && k !== 'write') {
              fail(`fields.${field}.${k}`, 'only read and write exist');
            } else if (typeof v !== 'boolean') {
              fail(`fields.${field}.${k}`, 'a field-level rule that is an expression, not true or false: Tributary decides field permissions per role only');
              p[k] = false;
            } else if (p[k] === undefined) {
              p[k] = v;
            }
          }
          fields[target] = p;
        }
        out.fields = fields;
      }
    }
    if (role.additional_fields !== undefined) {
      if (!isObject(role.additional_fields)) fail('additional_fields', 'must be an object');
      else {
        const extra: JsonObject = {};
        for (const [k, v] of Object.entries(role.additional_fields)) {
          if (k !== 'read' && k !== 'write') fail(`additional_fields.${k}`, 'only read and write exist');
          else if (typeof v !== 'boolean') {
            fail(`additional_fields.${k}`, 'an expression, not true or false: Tributary decides field permissions per role only');
            extra[k] = false;
          } else extra[k] = v;
        }
        out.additional_fields = extra;
      }
    }
    // With --force: a role whose condition could not be translated denies everything to everyone
    // it might apply to, so that no later (possibly wider) role applies in its place.
    if (broken && !applyWhenOk) return deny(name, {});
    return out;
  };

  /** Expansions in a value position: values inlined; what the gateway expands per session kept. */
  const expandValue = (value: string, report: Report): Json => {
    if (value === '%%true') return true;
    if (value === '%%false') return false;
    if (value === '%%user.id') {
      userIdUsed.value = true;
      return value;
    }
    if (/^%%user\.(data|custom_data)\.[^.]/.test(value)) {
      if (value.startsWith('%%user.custom_data.')) customDataUsed = true;
      return value;
    }
    let m = /^%%values\.([^.]+)((?:\.[^.]+)*)$/.exec(value);
    if (m) {
      const v = values.get(m[1]!);
      if (!v) return report('', `${value}: no value "${m[1]}" in values/`), value;
      if (v.fromSecret) return report('', `${value}: ${v.file} exposes a secret, and secrets are not in an export`), value;
      const found = getPath(v.value, m[2]!);
      if (found === undefined) return report('', `${value}: ${v.file} has nothing at ${m[2]}`), value;
      return found;
    }
    m = /^%%environment\.values\.([^.]+)((?:\.[^.]+)*)$/.exec(value);
    if (m) {
      if (!environmentValues) return report('', `${value}: ${environmentFile} is missing (environment "${environment}")`), value;
      const found = getPath(environmentValues[m[1]!], m[2]!);
      if (found === undefined) return report('', `${value}: ${environmentFile} has no value "${m[1]}${m[2]}"`), value;
      return found;
    }
    if (value === '%%environment.tag') return environment;
    if (/^%%(root|prevRoot|prev)(\.|$)/.test(value)) {
      return report('', `${value}: refers to the document; Tributary decides role conditions per session (compare document fields in document_filters)`), value;
    }
    return report('', `${value}: an expansion Tributary does not have (it has %%user.id, %%user.data.*, %%user.custom_data.*, %%true, %%false; %%values and %%environment are inlined)`), value;
  };

  /** A `%` rule operator: the ones that mean a MongoDB operator become it; the others have no equivalent. */
  const ruleOperator = (key: string, at: string, report: Report): string | null => {
    const same = PERCENT_OPERATORS[key];
    if (same) return same;
    report(at, key === '%function' ? 'calls an Atlas Function, and Tributary has no functions' : 'a rule operator Tributary does not have');
    return null;
  };

  /** A condition's operand: expansions replaced, `%` operators translated, everything else kept. */
  const operand = (value: Json, at: string, report: Report): Json => {
    if (typeof value === 'string') return value.startsWith('%%') ? expandValue(value, (w, r) => report(at + w, r)) : value;
    if (Array.isArray(value)) return value.map((v, i) => operand(v, `${at}[${i}]`, report));
    if (!isObject(value)) return value;
    const out: JsonObject = {};
    for (const [key, v] of Object.entries(value)) {
      const name = key.startsWith('%') && !key.startsWith('%%') ? ruleOperator(key, `${at}.${key}`, report) : key;
      if (name !== null) out[name] = operand(v, `${at}.${key}`, report);
    }
    return out;
  };

  /** apply_when and role-level read/write/insert/delete: expansions of the user compared with values. */
  const translateExpression = (expr: Json, report: Report, at = ''): Json => {
    if (typeof expr === 'boolean') return expr;
    if (expr === '%%true' || expr === '%%false') return expr === '%%true';
    if (!isObject(expr)) {
      report(at, 'must be true, false or an expression object');
      return false;
    }
    const out: JsonObject = {};
    for (const [key, condition] of Object.entries(expr)) {
      const path = `${at}.${key}`;
      if (key === '$and' || key === '$or' || key === '$nor' || key === '%and' || key === '%or') {
        if (!Array.isArray(condition)) report(path, 'needs a list of expressions');
        else out[`$${key.slice(1)}`] = condition.map((c, i) => translateExpression(c, report, `${path}[${i}]`));
      } else if (key === '%%true' || key === '%%false' || /^%%user(\.|$)/.test(key)) {
        expandValue(key, (w, r) => report(path + w, r)); // reports what the gateway cannot expand
        out[key] = operand(condition, path, report);
      } else if (key.startsWith('%%')) {
        const inlined = key.startsWith('%%values.') || key.startsWith('%%environment.');
        report(path, `${key}: ${inlined ? 'a value compared on the left: write the comparison the other way round (%%user... on the left)' : 'decided per document or per request, while Tributary decides roles once per session'}`);
      } else if (key.startsWith('%')) {
        ruleOperator(key, path, report);
      } else if (key.startsWith('$')) {
        report(path, `${key}: not a logical operator ($and, $or, $nor)`);
      } else {
        report(path, `"${key}" is a document field: Tributary decides roles once per session, before any document (compare document fields in document_filters)`);
      }
    }
    return out;
  };

  /** document_filters: a MongoDB query on the document; Realm's `_id` is `id` in Tributary's model. */
  const translateFilter = (filter: Json, report: Report, at = ''): Json => {
    if (typeof filter === 'boolean') return filter;
    if (filter === '%%true' || filter === '%%false') return filter === '%%true';
    if (!isObject(filter)) {
      report(at, 'must be true, false or a query object');
      return false;
    }
    const out: JsonObject = {};
    for (const [key, condition] of Object.entries(filter)) {
      const path = `${at}.${key}`;
      if (key === '$and' || key === '$or' || key === '$nor' || key === '%and' || key === '%or') {
        if (!Array.isArray(condition)) report(path, 'needs a list of filters');
        else out[`$${key.slice(1)}`] = condition.map((c, i) => translateFilter(c, report, `${path}[${i}]`));
      } else if (key.startsWith('%%')) {
        report(path, `${key}: an expansion where a document field belongs (document filters compare document fields with values; conditions on the user belong in apply_when)`);
      } else if (key.startsWith('%')) {
        ruleOperator(key, path, report);
      } else {
        // Other $ operators are left to the gateway's rules loader, which names what it refuses.
        const field = key === '_id' ? 'id' : key.startsWith('_id.') ? `id.${key.slice(4)}` : key;
        out[field] = operand(condition, path, report);
      }
    }
    return out;
  };

  const translatedCollections = new Set(collectionTypes.map((t) => t.collection!));
  for (const s of sources) {
    if (!s.rules || !translatedCollections.has(s.name)) continue;
    rules.set(`${s.name}.json`, translateRules(`${s.dir}/rules.json`, s.rules, s.name));
  }
  const defaultRuleFile = join(serviceDir, 'default_rule.json');
  const defaultRule = readJson(defaultRuleFile);
  if (isObject(defaultRule)) rules.set('default_rule.json', translateRules(rel(defaultRuleFile), defaultRule, null));
  const withoutRules = [...translatedCollections].filter((c) => !rules.has(`${c}.json`));
  if (!isObject(defaultRule) && withoutRules.length > 0) {
    difference(rel(serviceDir), '(rules)', `no rules.json and no default_rule.json for ${withoutRules.join(', ')}: closed (nobody may read or write), as in App Services`);
  }

  // --- custom user data -----------------------------------------------------------------------
  const customDataFile = 'auth/custom_user_data.json';
  const customData = readJson(join(root, customDataFile));
  if (isObject(customData) && customData.enabled === true) {
    const collection = typeof customData.collection_name === 'string' ? customData.collection_name : '';
    const userField = typeof customData.user_id_field === 'string' ? customData.user_id_field : 'userId';
    const db = typeof customData.database_name === 'string' ? customData.database_name : database;
    if (!collection) problem(customDataFile, 'collection_name', 'missing');
    else if (typeof customData.mongo_service_name === 'string' && customData.mongo_service_name !== service) {
      problem(customDataFile, 'mongo_service_name', `"${customData.mongo_service_name}" is not the synced data source "${service}"`);
    } else if (db && database && db !== database) {
      problem(customDataFile, 'database_name', `custom user data is in database "${db}" but the synced collections are in "${database}"; the gateway reads custom data from its own database`);
    } else {
      env.push(['TRIBUTARY_CUSTOM_DATA_COLLECTION', collection]);
      env.push(['TRIBUTARY_CUSTOM_DATA_USER_FIELD', userField]);
      notes.push(
        `Custom user data: the document of collection \`${collection}\` whose \`${userField}\` equals the user's id ` +
          '(TRIBUTARY_CUSTOM_DATA_COLLECTION, TRIBUTARY_CUSTOM_DATA_USER_FIELD). Rules see it as `%%user.custom_data.*`; ' +
          'the gateway re-reads it every TRIBUTARY_CUSTOM_DATA_POLL_MS (2 s) and applies changes to open sessions live.',
      );
      if (typeof customData.on_user_creation_function_name === 'string' && customData.on_user_creation_function_name) {
        difference(customDataFile, 'on_user_creation_function_name', `the function "${customData.on_user_creation_function_name}" that created custom data for new users is not imported: create those documents from your own backend`);
      }
    }
  } else if (customDataUsed) {
    difference(customDataFile, '(file)', 'rules use %%user.custom_data but custom user data is not enabled: those conditions match no user, as in App Services');
  }
  if (userIdUsed.value) {
    notes.push(
      '`%%user.id`: in App Services it was the App Services user id (a generated ObjectId string); in Tributary it is the ' +
        'token\'s `sub` claim (TRIBUTARY_JWT_USER_ID_CLAIM) or the anonymous user\'s id. Fields that hold Realm user ids ' +
        '(owners, members) keep matching only if your tokens carry the same ids: issue them with the Realm user id as the claim, ' +
        'or map the stored ids once.',
    );
  }

  // --- authentication providers ---------------------------------------------------------------
  const providers = readJson(join(root, 'auth/providers.json'));
  let anonymous = false;
  if (isObject(providers)) {
    for (const [key, p] of Object.entries(providers)) {
      if (!isObject(p) || p.disabled === true) continue;
      const type = typeof p.type === 'string' ? p.type : key;
      if (type === 'anon-user') anonymous = true;
      else if (type === 'custom-token') {
        const cfg = isObject(p.config) ? p.config : {};
        const hints: string[] = [];
        if (cfg.useJWKURI === true && typeof cfg.jwkURI === 'string') hints.push(`TRIBUTARY_JWKS_URL=${cfg.jwkURI}`);
        else hints.push('TRIBUTARY_JWT_SECRET or TRIBUTARY_JWT_PUBLIC_KEY(_FILE) (the signing key is a secret, not in the export)');
        const audience = Array.isArray(cfg.audience) ? cfg.audience : typeof cfg.audience === 'string' ? [cfg.audience] : [];
        if (audience.length > 0) hints.push(`TRIBUTARY_JWT_AUDIENCE=${audience[0]}${audience.length > 1 ? ` (App Services accepted ${audience.join(', ')}; Tributary takes one)` : ''}`);
        if (typeof cfg.signingAlgorithm === 'string') hints.push(`TRIBUTARY_JWT_ALGORITHMS=${cfg.signingAlgorithm}`);
        hints.push('TRIBUTARY_JWT_ISSUER=<your issuer>');
        notes.push(`Custom JWT authentication (provider "${key}"): ${hints.join('; ')}.`);
      } else if (type === 'api-key') {
        notes.push(`API keys (provider "${key}"): create new ones with \`npm run api-key -- create --name <name> --user <user id>\`; App Services keys cannot be exported.`);
      } else {
        notes.push(`Authentication provider "${key}" (${type}): not imported; sign users in with your identity provider and let the gateway verify its JWTs (README, Authentication).`);
      }
    }
  }
  if (!anonymous) env.push(['TRIBUTARY_ANONYMOUS', 'false']);
  else notes.push('Anonymous users: enabled in App Services, and in Tributary by default.');

  // --- what is not imported -------------------------------------------------------------------
  for (const [dir, what] of Object.entries(OUT_OF_SCOPE)) {
    if (!existsSync(join(root, dir))) continue;
    const entries = readdirSync(join(root, dir)).filter((e) => !e.startsWith('.'));
    if (entries.length === 0) continue;
    notImported.push(`${dir}/: ${what}`);
  }

  return {
    appName,
    database,
    schema: renderSchema(appName, exportDir, [...collectionTypes].sort((a, b) => a.name.localeCompare(b.name)), [...types.values()]),
    rules,
    problems,
    differences,
    notImported,
    env,
    notes,
    collections: collectionTypes.map((t) => ({ name: t.collection!, typeName: t.name, queryable: [...queryable.get(t.collection!)!] })),
  };
}

function emptyTranslation(problems: Finding[]): Translation {
  return { appName: '', database: null, schema: '', rules: new Map(), problems, differences: [], notImported: [], env: [], notes: [], collections: [] };
}

/** `bsonType` (or JSON Schema's `type`) as a list, with "null" taken out as nullability. */
function bsonTypes(schema: JsonObject): { types: string[]; nullable: boolean; bad?: string } {
  let raw = schema.bsonType;
  if (raw === undefined && schema.type !== undefined) {
    const list = Array.isArray(schema.type) ? schema.type : [schema.type];
    const mapped = list.map((t) => JSON_TYPES[String(t)]);
    if (mapped.some((t) => t === undefined)) return { types: [], nullable: false, bad: `JSON type ${JSON.stringify(schema.type)} has no equivalent (use bsonType)` };
    raw = mapped;
  }
  if (raw === undefined) return { types: [], nullable: false };
  const list = (Array.isArray(raw) ? raw : [raw]).map(String);
  return { types: list.filter((t) => t !== 'null'), nullable: list.includes('null') };
}

function getPath(value: Json, path: string): Json {
  let current = value;
  for (const part of path.split('.').filter(Boolean)) {
    if (!isObject(current) || !Object.hasOwn(current, part)) return undefined;
    current = current[part];
  }
  return current;
}

function modelAccepts(sdl: string): boolean {
  try {
    loadModel(`directive @collection(name: String!) on OBJECT\ndirective @queryable on FIELD_DEFINITION\ndirective @indexedQueryable on FIELD_DEFINITION\ndirective @counter on FIELD_DEFINITION\ndirective @addWinsSet on FIELD_DEFINITION\n${sdl}`);
    return true;
  } catch {
    return false;
  }
}

function renderSchema(appName: string, exportDir: string, collections: TypeDef[], embedded: TypeDef[]): string {
  const lines: string[] = [
    `# Tributary data model of the Realm app "${appName}", imported from its App Services export`,
    `# (${basename(resolve(exportDir))}) by \`npm run import-realm\`. Realm's _id is \`id\` here; each`,
    '# type keeps its MongoDB collection name in @collection. See IMPORT-NOTES.md.',
    '',
    'directive @collection(name: String!) on OBJECT',
    'directive @queryable on FIELD_DEFINITION',
    'directive @indexedQueryable on FIELD_DEFINITION',
    'directive @counter on FIELD_DEFINITION',
    'directive @addWinsSet on FIELD_DEFINITION',
    '',
  ];
  // All of them, used or not: the gateway's GraphQL schema attaches its scalar implementations
  // (DateTime's today) to the model's SDL and refuses to build when one is not declared there.
  for (const name of ['ObjectId', 'UUID', 'Long', 'Decimal', 'Binary', 'DateTime', 'Mixed', 'Dictionary']) lines.push(`scalar ${name}`);
  const renderType = (t: TypeDef) => {
    lines.push('');
    lines.push(`"${t.description ? escape(t.description) : t.collection ? `Realm object type ${t.name}, collection ${t.collection}.` : `Realm embedded object ${t.name}.`}"`);
    lines.push(`type ${t.name}${t.collection ? ` @collection(name: ${JSON.stringify(t.collection)})` : ''} {`);
    for (const f of t.fields) {
      for (const c of f.comments) lines.push(`  # ${c}`);
      if (f.description) lines.push(`  "${escape(f.description)}"`);
      lines.push(`  ${f.name}: ${f.type}${f.directives.map((d) => ` ${d}`).join('')}`);
    }
    lines.push('}');
  };
  collections.forEach(renderType);
  [...embedded].sort((a, b) => a.name.localeCompare(b.name)).forEach(renderType);
  return `${lines.join('\n')}\n`;
}

function escape(text: string): string {
  return JSON.stringify(text).slice(1, -1);
}

// ---------------------------------------------------------------------------------------------
// Writing, checking, reporting

function formatFinding(f: Finding): string {
  return `${f.file}: ${f.where}: ${f.reason}`;
}

function shown(path: string): string {
  const r = relative(process.cwd(), path);
  return r && !r.startsWith('..') ? r : path;
}

/** How the person running the importer runs Tributary: from a checkout, or the installed command. */
export interface Commands {
  /** This command, for its usage line. */
  importRealm: string;
  /** The command that starts the gateway. */
  start: string;
}
const CHECKOUT_COMMANDS: Commands = { importRealm: 'npm run import-realm --', start: 'npm start' };

function startCommands(t: Translation, out: string, commands: Commands): string[] {
  const vars = [['TRIBUTARY_SCHEMA', shown(join(out, 'schema.graphql'))], ['TRIBUTARY_RULES', shown(join(out, 'rules'))], ...t.env];
  const assignments = vars.map(([k, v]) => `${k}=${/^[\w./:-]+$/.test(v!) ? v : `'${v!.replace(/'/g, `'\\''`)}'`}`).join(' ');
  return [`${assignments} ${commands.start}`, `MONGODB_URI='mongodb+srv://<user>:<password>@<your cluster>/' ${assignments} ${commands.start}`];
}

function notesMarkdown(t: Translation, out: string, exportDir: string, forced: boolean, validation: string[], commands: Commands): string {
  const [embedded, own] = startCommands(t, out, commands);
  const list = (items: string[]) => (items.length > 0 ? items.map((i) => `- ${i}`).join('\n') : '- none');
  const sections = [
    `# Import notes: ${t.appName}`,
    '',
    `Imported from \`${exportDir}\` by \`npm run import-realm\`.${forced ? ' **Written with --force: the problems below were not translated.**' : ''}`,
    '',
    '## Start the gateway',
    '',
    'With the embedded FerretDB (a new, empty local store):',
    '',
    '```sh',
    embedded!,
    '```',
    '',
    "On the app's MongoDB cluster:",
    '',
    '```sh',
    own!,
    '```',
    '',
    'This imports configuration, not data: started on the cluster, the gateway takes in the documents already there as writes made outside it (ARCHITECTURE.md, "Outside writers"); documents that do not match schema.graphql are logged and kept out of sync (TRIBUTARY_INVALID_DOCUMENTS).',
    '',
    '## Collections',
    '',
    list(t.collections.map((c) => `\`${c.name}\` (type ${c.typeName}); queryable: ${['id', ...c.queryable].join(', ')}`)),
    '',
    '## Authentication and custom user data',
    '',
    list(t.notes),
  ];
  if (t.problems.length > 0 || validation.length > 0) {
    sections.push('', '## Problems: not translated', '', list([...t.problems.map(formatFinding), ...validation]));
    sections.push(
      '',
      'Fields that did not translate are left out of schema.graphql (the gateway refuses documents that carry them); ' +
        'permissions that did not translate are denials (a role whose condition did not translate denies everything, so ' +
        'that no later role applies in its place).',
    );
  }
  sections.push('', '## Translated with a difference', '', list(t.differences.map(formatFinding)));
  sections.push('', '## Not imported', '', list(t.notImported));
  return `${sections.join('\n')}\n`;
}

/** Loads the written configuration with the gateway's own loaders; returns what they refuse. */
async function validate(dir: string, shownAs: string): Promise<string[]> {
  const messages: string[] = [];
  let model;
  try {
    model = loadModel(readFileSync(join(dir, 'schema.graphql'), 'utf8'));
  } catch (error) {
    messages.push(`${join(shownAs, 'schema.graphql')}: loadModel refuses it: ${(error as Error).message}`);
    return messages;
  }
  try {
    await loadRules(join(dir, 'rules'), model);
  } catch (error) {
    messages.push(`the rules loader refuses them: ${(error as Error).message.split(relative(process.cwd(), dir)).join(shownAs)}`);
  }
  return messages;
}

/** Runs the importer on `argv` (without the program name); resolves to the exit code. */
export async function importRealm(argv: string[], commands: Commands = CHECKOUT_COMMANDS): Promise<number> {
  let args;
  try {
    args = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { out: { type: 'string' }, force: { type: 'boolean', default: false }, environment: { type: 'string' }, help: { type: 'boolean', default: false } },
    });
  } catch (error) {
    console.error((error as Error).message);
    return 2;
  }
  const [exportDir] = args.positionals;
  if (args.values.help || !exportDir || args.positionals.length > 1) {
    console.error(`usage: ${commands.importRealm} <App Services export folder> [--out <dir>] [--environment <name>] [--force]`);
    return 2;
  }
  const out = resolve(args.values.out ?? 'realm-import');
  if (existsSync(out) && (!statSync(out).isDirectory() || readdirSync(out).length > 0)) {
    console.error(`${shown(out)} already exists and is not empty: choose another --out (the importer never mixes a new configuration with an old one)`);
    return 2;
  }

  const t = translateRealmApp(exportDir, { environment: args.values.environment });
  const force = args.values.force === true;
  if (t.problems.length > 0 && (!force || !t.schema)) {
    console.error(`Cannot translate ${t.problems.length} item(s) of ${exportDir}; nothing was written:`);
    for (const p of t.problems) console.error(`  ${formatFinding(p)}`);
    if (t.schema) console.error('Fix them in the Realm app (or its export), or run again with --force to write the rest, with these listed in IMPORT-NOTES.md.');
    return 1;
  }

  // Written next to the output and moved into place once complete and loadable.
  mkdirSync(dirname(out), { recursive: true });
  const staging = mkdtempSync(join(dirname(out), `.${basename(out)}.import-`));
  try {
    writeFileSync(join(staging, 'schema.graphql'), t.schema);
    mkdirSync(join(staging, 'rules'));
    for (const [file, json] of t.rules) writeFileSync(join(staging, 'rules', file), `${JSON.stringify(json, null, 2)}\n`);
    const validation = await validate(staging, shown(out));
    if (validation.length > 0 && !force) {
      console.error(`The translation of ${exportDir} does not load in this version of Tributary; nothing was written:`);
      for (const m of validation) console.error(`  ${m}`);
      return 1;
    }
    writeFileSync(join(staging, 'IMPORT-NOTES.md'), notesMarkdown(t, out, exportDir, force && (t.problems.length > 0 || validation.length > 0), validation, commands));
    if (existsSync(out)) rmSync(out, { recursive: true });
    renameSync(staging, out);

    console.log(`Imported the Realm app "${t.appName}" into ${shown(out)}:`);
    console.log(`  schema.graphql: ${t.collections.map((c) => `${c.typeName} (${c.name})`).join(', ')}`);
    console.log(`  rules/: ${[...t.rules.keys()].join(', ') || 'none (every collection closed)'}`);
    console.log('  IMPORT-NOTES.md: custom user data, authentication, and what was translated with a difference or not imported');
    if (t.problems.length > 0 || validation.length > 0) {
      console.warn(`Written with --force; ${t.problems.length + validation.length} problem(s), listed in IMPORT-NOTES.md:`);
      for (const p of t.problems) console.warn(`  ${formatFinding(p)}`);
      for (const m of validation) console.warn(`  ${m}`);
    }
    for (const d of t.differences) console.log(`  note: ${formatFinding(d)}`);
    for (const n of t.notImported) console.log(`  not imported: ${n}`);
    if (validation.length === 0) console.log('Checked: the schema loads with loadModel, the rules with the gateway\'s rules loader.');
    const [embedded, own] = startCommands(t, out, commands);
    console.log('\nStart the gateway with it, on the embedded FerretDB:');
    console.log(`  ${embedded}`);
    console.log("or on the app's MongoDB cluster:");
    console.log(`  ${own}`);
    return validation.length > 0 ? 1 : 0;
  } finally {
    if (existsSync(staging)) rmSync(staging, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  process.exitCode = await importRealm(process.argv.slice(2));
}
