// Reads permission rules in Realm App Services' role format and checks them at startup (and on
// every reload): a rules file that cannot be placed, or a role Atlas would call not Sync
// compatible, stops the gateway with the file, the namespace, the role's name and the key.
// Nothing is skipped silently and nothing is weakened: a rule Tributary cannot honour is refused.
//
// `TRIBUTARY_RULES` may point at (see rules/README.md):
//   - an App Services export's root: data_sources/<service>/ holds the rules, values/ the
//     `%%values`, environments/<env>.json the `%%environment` of root_config.json's environment;
//   - an export's data_sources/<service>/ folder (values and environments read from the export
//     around it, when it is one):
//       default_rule.json                      roles for collections without their own
//       <database>/<collection>/rules.json     roles for one collection (named in the file)
//       config.json, schema.json, relationships.json: not rules, ignored
//   - a folder of our own:
//       default_rule.json, <collection>.json   as above
//       values.json                            { "<name>": value } for `%%values.<name>`
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { basename, dirname, join, relative } from 'node:path';
import { checkFilter, QueryError } from '../../protocol/filter.ts';
import { PRIMARY_KEY, type CollectionModel, type DataModel } from '../../protocol/model.ts';
import { isExpansion, type Expansions, type Expression } from './expressions.ts';
import { isObject } from '../../protocol/paths.ts';

/** A role, checked and normalized (load.ts's header; expressions.ts for what expressions mean). */
export interface Role {
  name: string;
  apply_when: Expression;
  document_filters: { read: Expression; write: Expression };
  read: boolean;
  write: boolean;
  insert: Expression;
  delete: Expression;
  fields: Record<string, { read?: boolean; write?: boolean }>;
  additional_fields: { read?: boolean; write?: boolean };
}

export interface RuleSet {
  /** Roles per collection name; a collection absent here has no access at all. */
  roles: Map<string, Role[]>;
  files: string[];
  /** What `%%values` and `%%environment` stand for. */
  constants: Pick<Expansions, 'values' | 'environment'>;
}

export class RulesError extends Error {
  override name = 'RulesError';
}

const ROLE_KEYS = new Set(['name', 'apply_when', 'document_filters', 'read', 'write', 'insert', 'delete', 'search', 'fields', 'additional_fields', 'id', '_id']);
const FILE_KEYS = new Set(['collection', 'database', 'roles', 'filters', 'id', '_id']);
/** Files of an export's data source that are not rules. */
const NOT_RULES = new Set(['config.json', 'schema.json', 'relationships.json']);
/** App Services rule operators that are MongoDB's under another name. */
export const PERCENT_OPERATORS: Readonly<Record<string, string>> = { '%and': '$and', '%or': '$or', '%nor': '$nor', '%in': '$in', '%nin': '$nin', '%exists': '$exists' };
const LOGICAL = new Set(['$and', '$or', '$nor']);
/** Expansions Device Sync allows in roles ("Sync compatibility" in App Services' docs). */
const SYNC_EXPANSIONS = '%%user, %%values, %%environment, %%true and %%false';

/** Where a rules file came from, for messages. */
interface Source {
  file: string;
  /** `<database>.<collection>`, `<collection>`, or `default rule`. */
  namespace: string;
}

interface RulesFile extends Source {
  /** The collection the file is for; null for the default rule. */
  collection: string | null;
  json: unknown;
}

export async function loadRules(path: string, model: DataModel): Promise<RuleSet> {
  const { files, constants } = await readLayout(path);
  const byCollection = new Map<string, RulesFile>();
  let defaults: RulesFile | null = null;
  for (const file of files) {
    if (file.collection === null) {
      defaults = file;
      continue;
    }
    if (!model.collections.some((c) => c.name === file.collection)) {
      throw new RulesError(`${file.file}: rules for ${file.namespace}, but schema.graphql has no collection "${file.collection}" (add it to schema.graphql, or remove the file)`);
    }
    const other = byCollection.get(file.collection);
    if (other) throw new RulesError(`${file.file}: rules for collection "${file.collection}" are also in ${other.file}`);
    byCollection.set(file.collection, file);
  }

  const roles = new Map<string, Role[]>();
  for (const collection of model.collections) {
    const file = byCollection.get(collection.name) ?? defaults;
    if (!file) continue;
    const source = file === defaults ? { ...file, namespace: `default rule (for ${collection.name})` } : file;
    roles.set(collection.name, readRoles(file.json, source, collection, constants));
  }
  return { roles, files: files.map((f) => f.file), constants };
}

// ---------------------------------------------------------------------------------------------
// Layouts

async function readLayout(path: string): Promise<{ files: RulesFile[]; constants: RuleSet['constants'] }> {
  if (existsSync(join(path, 'data_sources'))) return readExport(path, await serviceOf(path));
  if (isServiceFolder(path)) {
    const root = basename(dirname(path)) === 'data_sources' ? dirname(dirname(path)) : null;
    return readExport(root, path);
  }
  return readOwnFolder(path);
}

/** An export's data_sources/<service>/ folder: App Services writes its config.json. */
function isServiceFolder(path: string): boolean {
  return existsSync(join(path, 'config.json'));
}

/** The one data source of an export that holds rules. */
async function serviceOf(root: string): Promise<string> {
  const services: string[] = [];
  for (const entry of await readdir(join(root, 'data_sources'), { withFileTypes: true })) {
    const dir = join(root, 'data_sources', entry.name);
    if (entry.isDirectory() && (await listJson(dir)).some((f) => basename(f) === 'rules.json' || basename(f) === 'default_rule.json')) services.push(dir);
  }
  if (services.length > 1) throw new RulesError(`${where(join(root, 'data_sources'))}: several data sources hold rules (${services.map(where).join(', ')}); point TRIBUTARY_RULES at the synced one`);
  if (services.length === 0) throw new RulesError(`${where(root)}: no data source under data_sources/ holds rules`);
  return services[0]!;
}

async function readExport(root: string | null, service: string): Promise<{ files: RulesFile[]; constants: RuleSet['constants'] }> {
  const files: RulesFile[] = [];
  for (const file of (await listJson(service)).sort()) {
    const inside = relative(service, file).split(/[\\/]/);
    const name = inside.at(-1)!;
    if (inside.length === 1 && name === 'default_rule.json') {
      files.push({ file: where(file), namespace: 'default rule', collection: null, json: await readJson(file) });
    } else if (inside.length === 3 && name === 'rules.json') {
      const json = await readJson(file);
      const named = isObject(json) ? json : {};
      const collection = typeof named.collection === 'string' && named.collection ? named.collection : inside[1]!;
      const database = typeof named.database === 'string' && named.database ? named.database : inside[0]!;
      files.push({ file: where(file), namespace: `${database}.${collection}`, collection, json });
    } else if (!(NOT_RULES.has(name) && inside.length <= 3)) {
      throw new RulesError(`${where(file)}: not a file of an App Services data source (rules are <database>/<collection>/rules.json and default_rule.json)`);
    }
  }
  if (root === null) return { files, constants: { values: {}, environment: { tag: '', values: {} } } };
  return { files, constants: await readExportConstants(root) };
}

/** `values/*.json` and the environment's values of an export. */
async function readExportConstants(root: string): Promise<RuleSet['constants']> {
  const values: Record<string, unknown> = {};
  const valuesDir = join(root, 'values');
  if (existsSync(valuesDir)) {
    for (const file of (await listJson(valuesDir)).sort()) {
      const json = await readJson(file);
      if (!isObject(json) || typeof json.name !== 'string' || !json.name) throw new RulesError(`${where(file)}: a value needs a "name"`);
      // A secret's value is not in an export: using it is refused where it is used.
      values[json.name] = json.from_secret === true ? SECRET : json.value;
    }
  }
  const rootConfig = [join(root, 'root_config.json'), join(root, 'config.json')].find(existsSync);
  const config = rootConfig ? await readJson(rootConfig) : {};
  const tag = isObject(config) && typeof config.environment === 'string' ? config.environment : '';
  const environmentFile = join(root, 'environments', `${tag || 'no-environment'}.json`);
  const environment = existsSync(environmentFile) ? await readJson(environmentFile) : {};
  const environmentValues = isObject(environment) && isObject(environment.values) ? environment.values : {};
  return { values, environment: { tag, values: environmentValues } };
}

const SECRET = Symbol('secret');

async function readOwnFolder(folder: string): Promise<{ files: RulesFile[]; constants: RuleSet['constants'] }> {
  const files: RulesFile[] = [];
  let values: Record<string, unknown> = {};
  for (const file of (await listJson(folder)).sort()) {
    if (dirname(file) !== folder) {
      throw new RulesError(`${where(file)}: rules files in subfolders are not read (for an App Services export, point TRIBUTARY_RULES at its root or at data_sources/<service>/)`);
    }
    const name = basename(file, '.json');
    const json = await readJson(file);
    if (name === 'values') {
      if (!isObject(json)) throw new RulesError(`${where(file)}: values.json must be an object of values by name`);
      values = json;
    } else if (name === 'default_rule') {
      files.push({ file: where(file), namespace: 'default rule', collection: null, json });
    } else {
      files.push({ file: where(file), namespace: name, collection: name, json });
    }
  }
  return { files, constants: { values, environment: { tag: '', values: {} } } };
}

async function listJson(folder: string): Promise<string[]> {
  const entries = await readdir(folder, { withFileTypes: true }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [];
    throw error;
  });
  const found: string[] = [];
  for (const entry of entries) {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) found.push(...(await listJson(path)));
    else if (entry.name.endsWith('.json')) found.push(path);
  }
  return found;
}

async function readJson(file: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    throw new RulesError(`${where(file)}: not valid JSON (${(error as Error).message})`);
  }
}

function where(file: string): string {
  return relative(process.cwd(), file) || '.';
}

// ---------------------------------------------------------------------------------------------
// Roles

function readRoles(json: unknown, source: Source, collection: CollectionModel, constants: RuleSet['constants']): Role[] {
  const fail = (detail: string): never => {
    throw new RulesError(`${source.file}: ${source.namespace}: ${detail}`);
  };
  if (!isObject(json) || !Array.isArray(json.roles)) return fail('needs a "roles" array');
  for (const key of Object.keys(json)) if (!FILE_KEYS.has(key)) fail(`"${key}" is not a rules setting`);
  // Query filters narrow what every role sees; ignoring them would widen it.
  if (Array.isArray(json.filters) && json.filters.length > 0) fail('"filters" (App Services query filters) are not supported: express them in the roles\' document_filters');
  return json.roles.map((role, i) => readRole(role, i, source, collection, constants));
}

function readRole(raw: unknown, index: number, source: Source, collection: CollectionModel, constants: RuleSet['constants']): Role {
  if (!isObject(raw)) throw new RulesError(`${source.file}: ${source.namespace}: roles[${index}] must be an object`);
  const label = typeof raw.name === 'string' && raw.name ? `role "${raw.name}"` : `roles[${index}]`;
  const fail = (key: string, detail: string): never => {
    throw new RulesError(`${source.file}: ${source.namespace} ${label}: ${key}: ${detail}`);
  };
  if (typeof raw.name !== 'string' || !raw.name) fail('name', 'must be a non-empty string');
  for (const key of Object.keys(raw)) if (!ROLE_KEYS.has(key)) fail(key, 'not a role setting');
  const expressions = new ExpressionReader(collection, constants, fail);

  const applyWhen = raw.apply_when === undefined ? {} : expressions.read(raw.apply_when, 'apply_when', 'user');
  if (raw.document_filters === undefined) fail('document_filters', 'missing: Device Sync needs document_filters.read and document_filters.write');
  if (!isObject(raw.document_filters)) fail('document_filters', 'must be an object with read and write filters');
  const filters = raw.document_filters as Record<string, unknown>;
  for (const key of Object.keys(filters)) if (key !== 'read' && key !== 'write') fail(`document_filters.${key}`, 'only read and write filters exist');
  for (const key of ['read', 'write'] as const) {
    if (filters[key] === undefined) fail(`document_filters.${key}`, 'missing: Device Sync needs both document_filters.read and document_filters.write');
  }
  const read = expressions.read(filters.read, 'document_filters.read', 'document');
  const write = expressions.read(filters.write, 'document_filters.write', 'document');
  for (const key of ['read', 'write'] as const) {
    if (raw[key] !== undefined && typeof raw[key] !== 'boolean') fail(key, 'must be true or false: Device Sync takes only boolean literals for a role\'s top-level read and write');
  }
  const insert = raw.insert === undefined ? raw.write === true : expressions.read(raw.insert, 'insert', 'document');
  const del = raw.delete === undefined ? raw.write === true : expressions.read(raw.delete, 'delete', 'document');
  // `search` is Atlas Search's permission: Tributary has no Atlas Search, so it grants nothing.

  const fields: Role['fields'] = {};
  if (raw.fields !== undefined) {
    if (!isObject(raw.fields)) fail('fields', 'must be an object of field permissions');
    for (const [name, permissions] of Object.entries(raw.fields as Record<string, unknown>)) {
      if (name === '_id' || name === PRIMARY_KEY) fail(`fields.${name}`, 'field-level permissions on the primary key are not Sync compatible');
      if (!collection.fields.some((f) => f.name === name)) fail(`fields.${name}`, `${collection.typeName} has no such field`);
      fields[name] = fieldPermissions(permissions, `fields.${name}`, fail);
    }
  }
  const additional = raw.additional_fields === undefined ? {} : fieldPermissions(raw.additional_fields, 'additional_fields', fail);
  return {
    name: raw.name as string,
    apply_when: applyWhen,
    document_filters: { read, write },
    read: raw.read === true,
    write: raw.write === true,
    insert,
    delete: del,
    fields,
    additional_fields: additional,
  };
}

function fieldPermissions(value: unknown, at: string, fail: (key: string, detail: string) => never): { read?: boolean; write?: boolean } {
  if (!isObject(value)) return fail(at, 'must be an object with read and write');
  const out: { read?: boolean; write?: boolean } = {};
  for (const [key, permission] of Object.entries(value)) {
    if (key === 'fields') fail(`${at}.fields`, 'permissions on the fields of embedded objects are not supported (field permissions apply to top-level fields)');
    if (key !== 'read' && key !== 'write') fail(`${at}.${key}`, 'only read and write exist');
    if (typeof permission !== 'boolean') fail(`${at}.${key}`, 'must be true or false: Device Sync takes only boolean literals for field-level permissions');
    out[key as 'read' | 'write'] = permission as boolean;
  }
  return out;
}

/**
 * Checks and normalizes one expression. `user`: apply_when, decided at session start, before
 * any document, so only expansions may be compared. `document`: a filter on the document's
 * queryable fields, which may also compare expansions.
 */
class ExpressionReader {
  constructor(
    private readonly collection: CollectionModel,
    private readonly constants: RuleSet['constants'],
    private readonly fail: (key: string, detail: string) => never,
  ) {}

  read(value: unknown, at: string, kind: 'user' | 'document'): Expression {
    if (typeof value === 'boolean') return value;
    if (value === '%%true' || value === '%%false') return value === '%%true';
    if (!isObject(value)) return this.fail(at, kind === 'user' ? 'must be an expression object' : 'must be true, false or an expression object');
    const expression = this.expression(value, at, kind);
    if (kind === 'document') this.checkFilter(expression, at);
    return expression;
  }

  private expression(value: Record<string, unknown>, at: string, kind: 'user' | 'document'): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [rawKey, condition] of Object.entries(value)) {
      const path = `${at}.${rawKey}`;
      const key = this.operator(rawKey, path);
      if (LOGICAL.has(key)) {
        if (!Array.isArray(condition) || condition.length === 0) this.fail(path, 'needs a non-empty list of expressions');
        out[key] = (condition as unknown[]).map((c, i) => (isObject(c) ? this.expression(c, `${path}[${i}]`, kind) : this.fail(`${path}[${i}]`, 'must be an expression object')));
      } else if (key.startsWith('$')) {
        this.fail(path, `${key} is not a logical operator ($and, $or, $nor)`);
      } else if (isExpansion(key)) {
        this.expansion(key, path);
        out[key] = this.operand(condition, path);
      } else if (kind === 'user') {
        this.fail(path, `"${key}" is a document field: roles are chosen at session start, before any document (compare document fields in document_filters)`);
      } else {
        // Realm models name their primary key `_id`; Tributary's model calls it `id`.
        const field = key === '_id' ? PRIMARY_KEY : key.startsWith('_id.') ? PRIMARY_KEY + key.slice(3) : key;
        out[field] = this.operand(condition, path);
      }
    }
    return out;
  }

  /** An operand: expansions checked, `%` operators written as MongoDB's. */
  private operand(value: unknown, at: string): unknown {
    if (isExpansion(value)) return this.expansion(value, at);
    if (Array.isArray(value)) return value.map((v, i) => this.operand(v, `${at}[${i}]`));
    if (!isObject(value)) return value;
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(value)) {
      if (isExpansion(key)) this.fail(`${at}.${key}`, 'an expansion cannot be an operator');
      out[this.operator(key, `${at}.${key}`)] = this.operand(v, `${at}.${key}`);
    }
    return out;
  }

  private operator(key: string, at: string): string {
    if (!key.startsWith('%') || key.startsWith('%%')) return key;
    if (key === '%function') this.fail(at, '%function calls an Atlas Function: not Sync compatible (and Tributary has no functions)');
    return PERCENT_OPERATORS[key] ?? this.fail(at, `${key} is not a rule operator Tributary has`);
  }

  /** Refuses what Device Sync refuses; `%%true`/`%%false` become booleans. */
  private expansion(expansion: string, at: string): unknown {
    if (expansion === '%%true' || expansion === '%%false') return expansion === '%%true';
    const [head, second, third, ...rest] = expansion.slice(2).split('.');
    if (head === 'user') {
      if (second === 'id' && third === undefined) return expansion;
      if ((second === 'data' || second === 'custom_data') && third) return expansion;
      return this.fail(at, `${expansion}: Tributary's users have %%user.id, %%user.data.<claim> and %%user.custom_data.<field>`);
    }
    if (head === 'values') {
      if (!second) return this.fail(at, `${expansion}: name a value (%%values.<name>)`);
      if (!Object.hasOwn(this.constants.values, second)) return this.fail(at, `${expansion}: there is no value "${second}" (values/ of the export, or values.json)`);
      if (this.constants.values[second] === SECRET) return this.fail(at, `${expansion}: the value exposes a secret, and secrets are not in an export`);
      return expansion;
    }
    if (head === 'environment') {
      if ((second === 'tag' && third === undefined) || (second === 'values' && third)) return expansion;
      return this.fail(at, `${expansion}: the environment has %%environment.tag and %%environment.values.<name>`);
    }
    return this.fail(at, `${expansion} is not Sync compatible: Device Sync roles may use only ${SYNC_EXPANSIONS}`);
  }

  /** Filters may use only @queryable fields, so they run in MongoDB and in the live matcher. */
  private checkFilter(expression: Record<string, unknown>, at: string): void {
    try {
      checkFilter(this.collection, placeholders(expression), { queryableOnly: true });
    } catch (error) {
      if (error instanceof QueryError) this.fail(at, error.message);
      throw error;
    }
  }
}

/**
 * The expression as checkFilter can read it before any session: conditions on expansions are
 * decided per session (dropped here), and an expansion in an operand stands for a value of any
 * type (null, which every field accepts) or, after `$in`/`$nin`, a list of them.
 */
function placeholders(expression: Record<string, unknown>): Record<string, unknown> {
  const operand = (value: unknown, key?: string): unknown => {
    if (isExpansion(value)) return key === '$in' || key === '$nin' ? [null] : key === '$regex' ? '' : null;
    if (Array.isArray(value)) return value.map((v) => operand(v));
    if (!isObject(value)) return value;
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, operand(v, k)]));
  };
  const walk = (expr: Record<string, unknown>): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(expr)) {
      if (LOGICAL.has(key)) out[key] = (value as Record<string, unknown>[]).map(walk);
      else if (!isExpansion(key)) out[key] = operand(value);
    }
    return out;
  };
  return walk(expression);
}
