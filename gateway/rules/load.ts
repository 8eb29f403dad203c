// Reads permission rules from rules/, in Realm App Services' role format, and checks them at
// startup: a malformed file stops the gateway with the file and the path inside it.
//
// Layouts accepted:
//   rules/default_rule.json                 roles for collections without their own file
//   rules/<collection>.json                 roles for one collection
//   rules/**/<collection>/rules.json        as exported from a Realm app (data_sources/...)
import { readdir, readFile } from 'node:fs/promises';
import { basename, dirname, join, relative } from 'node:path';
import { checkFilter, QueryError } from '../../protocol/filter.ts';
import type { CollectionModel, DataModel } from '../../protocol/model.ts';

/** A role as Realm writes it. Boolean-or-expression values are kept as given. */
export interface Role {
  name: string;
  apply_when: Record<string, unknown>;
  document_filters: { read?: Record<string, unknown> | boolean; write?: Record<string, unknown> | boolean };
  read?: boolean | Record<string, unknown>;
  write?: boolean | Record<string, unknown>;
  insert?: boolean | Record<string, unknown>;
  delete?: boolean | Record<string, unknown>;
  fields?: Record<string, { read?: boolean; write?: boolean }>;
  additional_fields?: { read?: boolean; write?: boolean };
}

export interface RuleSet {
  /** Roles per collection name; a collection absent here has no access at all. */
  roles: Map<string, Role[]>;
  files: string[];
}

export class RulesError extends Error {
  override name = 'RulesError';
}

const ROLE_KEYS = new Set(['name', 'apply_when', 'document_filters', 'read', 'write', 'insert', 'delete', 'search', 'fields', 'additional_fields']);

export async function loadRules(folder: string, model: DataModel): Promise<RuleSet> {
  const files = (await listJson(folder)).sort();
  const byCollection = new Map<string, { file: string; roles: Role[] }>();
  let defaults: { file: string; roles: Role[] } | null = null;

  for (const file of files) {
    const name = basename(file, '.json');
    const exported = name === 'rules'; // Realm's export layout: <collection>/rules.json
    const collection = exported ? basename(dirname(file)) : name;
    const where = relative(process.cwd(), file);
    if (name !== 'default_rule' && !model.collections.some((c) => c.name === collection)) {
      // An export holds every collection of the app; a file of ours names one we must know.
      if (exported) continue;
      throw new RulesError(`${where}: schema.graphql has no collection "${collection}"`);
    }
    let json: unknown;
    try {
      json = JSON.parse(await readFile(file, 'utf8'));
    } catch (error) {
      throw new RulesError(`${where}: not valid JSON (${(error as Error).message})`);
    }
    const roles = checkRoles(json, where);
    if (name === 'default_rule') defaults = { file: where, roles };
    else byCollection.set(collection, { file: where, roles });
  }

  const roles = new Map<string, Role[]>();
  for (const collection of model.collections) {
    const entry = byCollection.get(collection.name) ?? defaults;
    if (!entry) continue;
    entry.roles.forEach((role, i) => checkFilters(collection, role, `${entry.file}: roles[${i}]`));
    roles.set(collection.name, entry.roles);
  }
  return { roles, files: files.map((f) => relative(process.cwd(), f)) };
}

async function listJson(folder: string): Promise<string[]> {
  const entries = await readdir(folder, { withFileTypes: true }).catch(() => []);
  const found: string[] = [];
  for (const entry of entries) {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) found.push(...(await listJson(path)));
    else if (entry.name.endsWith('.json')) found.push(path);
  }
  return found;
}

function checkRoles(json: unknown, where: string): Role[] {
  if (typeof json !== 'object' || json === null || !Array.isArray((json as { roles?: unknown }).roles)) {
    throw new RulesError(`${where}: needs a "roles" array`);
  }
  return ((json as { roles: unknown[] }).roles).map((role, i) => {
    const at = `${where}: roles[${i}]`;
    if (typeof role !== 'object' || role === null) throw new RulesError(`${at} must be an object`);
    const r = role as Record<string, unknown>;
    for (const key of Object.keys(r)) if (!ROLE_KEYS.has(key)) throw new RulesError(`${at}.${key} is not a role setting`);
    if (typeof r.name !== 'string' || !r.name) throw new RulesError(`${at}.name must be a non-empty string`);
    if (r.apply_when !== undefined && !isObject(r.apply_when)) throw new RulesError(`${at}.apply_when must be an object`);
    if (r.document_filters !== undefined && !isObject(r.document_filters)) throw new RulesError(`${at}.document_filters must be an object`);
    for (const key of ['read', 'write', 'insert', 'delete'] as const) {
      if (r[key] !== undefined && typeof r[key] !== 'boolean' && !isObject(r[key])) throw new RulesError(`${at}.${key} must be true, false or an expression`);
    }
    for (const [field, perms] of Object.entries((r.fields as Record<string, unknown>) ?? {})) {
      if (!isObject(perms)) throw new RulesError(`${at}.fields.${field} must be an object`);
    }
    return { apply_when: {}, document_filters: {}, ...r } as Role;
  });
}

/** Filters may use only @queryable fields, so they can run in MongoDB and in the live matcher. */
function checkFilters(collection: CollectionModel, role: Role, at: string): void {
  for (const kind of ['read', 'write'] as const) {
    const filter = role.document_filters[kind];
    if (filter === undefined || typeof filter === 'boolean') continue;
    try {
      checkFilter(collection, withPlaceholders(filter), { queryableOnly: true });
    } catch (error) {
      if (error instanceof QueryError) throw new RulesError(`${at}.document_filters.${kind}: ${error.message}`);
      throw error;
    }
  }
  for (const field of Object.keys(role.fields ?? {})) {
    if (!collection.fields.some((f) => f.name === field)) throw new RulesError(`${at}.fields.${field}: ${collection.typeName} has no such field`);
  }
}

/** `%%user.id` and friends stand for values known per session: check with a placeholder. */
function withPlaceholders(value: unknown): Record<string, unknown> {
  return JSON.parse(JSON.stringify(value, (_, v) => (typeof v === 'string' && v.startsWith('%%') ? 'placeholder' : v)));
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
