// Rules unit testing for app developers (`tributary/testing`), in the spirit of Firebase's
// rules-unit-testing: load a rules folder and assert, as a given user, which reads and writes
// succeed, either in memory (the gateway's own rules engine, no server) or against a running
// gateway over GraphQL.
//
//   const env = await loadRulesForTesting({ rules: 'rules', schema: 'schema.graphql' });
//   const ann = env.as({ id: 'ann' });
//   await assertSucceeds(ann.insert('tasks', { id: 't1', ownerId: 'ann', ... }));
//   await assertFails(ann.insert('tasks', { id: 't2', ownerId: 'bob', ... }));
//   expect(ann.roleOf('tasks')).toBe('owner');
import { readFile } from 'node:fs/promises';
import { loadModel, type CollectionModel, type DataModel } from '../../protocol/model.ts';
import type { SyncDocument } from '../../protocol/messages.ts';
import type { User } from '../auth/authenticator.ts';
import { toStoredForm, type StoredDocument } from '../store/collection-store.ts';
import { loadRules } from './load.ts';
import { inSet, PermissionEngine, writeDenial } from './permissions.ts';

export class PermissionDeniedError extends Error {
  override name = 'PermissionDeniedError';
}

/** What a test can try as one user. Each call resolves when allowed and rejects when denied. */
export interface RulesTestContext {
  read(collection: string, doc: Record<string, unknown>): Promise<void>;
  insert(collection: string, doc: Record<string, unknown>): Promise<void>;
  update(collection: string, before: Record<string, unknown>, after: Record<string, unknown>): Promise<void>;
  delete(collection: string, doc: Record<string, unknown>): Promise<void>;
}

export interface TestUser {
  id: string;
  /** Token claims (`%%user.data.*`). */
  data?: Record<string, unknown>;
  /** Custom user data (`%%user.custom_data.*`). */
  customData?: Record<string, unknown> | null;
}

/** In memory, a test can also ask which role the user gets. */
export interface InMemoryRulesTestContext extends RulesTestContext {
  /** The name of the role the user gets for the collection (the first whose apply_when holds), or null: no access. */
  roleOf(collection: string): string | null;
}

export interface RulesTestEnvironment {
  /** The rules evaluated in memory by the gateway's engine, as `user`. */
  as(user: TestUser): InMemoryRulesTestContext;
}

/** `rules`: a rules folder, an App Services export's root, or its data_sources/<service>/ folder. */
export async function loadRulesForTesting(options: { rules: string; schema: string }): Promise<RulesTestEnvironment> {
  const model = loadModel(await readFile(options.schema, 'utf8'));
  const engine = new PermissionEngine(model, await loadRules(options.rules, model));
  return {
    as(testUser) {
      const user: User = { id: testUser.id, provider: 'jwt', data: { sub: testUser.id, ...testUser.data }, customData: testUser.customData ?? null, expiresAt: null };
      const check = (collection: string, stored: StoredDocument | undefined, doc: SyncDocument) => {
        const denial = writeDenial(engine.forUser(user, collection), collectionOf(model, collection), stored, doc);
        return denial ? Promise.reject(new PermissionDeniedError(denial.message)) : Promise.resolve();
      };
      const stored = (collection: string, doc: Record<string, unknown>) =>
        ({ ...toStoredForm(collectionOf(model, collection), wire(doc)), _sync: { seq: 1, updatedAt: new Date(), deleted: false } }) as StoredDocument;
      return {
        roleOf: (collection) => {
          collectionOf(model, collection);
          return engine.forUser(user, collection).role;
        },
        read: (collection, doc) =>
          inSet(engine.forUser(user, collection).read, stored(collection, doc)) ? Promise.resolve() : Promise.reject(new PermissionDeniedError('the role may not read this document')),
        insert: (collection, doc) => check(collection, undefined, wire(doc)),
        update: (collection, before, after) => check(collection, stored(collection, before), wire(after)),
        delete: (collection, doc) => check(collection, stored(collection, doc), { ...wire(doc), _deleted: true }),
      };
    },
  };
}

/**
 * The same checks against a running gateway, through its plain GraphQL API, as the user whose
 * token is given. `update` and `delete` need the document to exist there.
 */
export function gatewayTestContext(httpUrl: string, token: string, model: DataModel): RulesTestContext {
  const call = async (query: string, variables: Record<string, unknown>) => {
    const response = await fetch(httpUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query, variables }),
    });
    const body = (await response.json()) as { data?: Record<string, unknown>; errors?: Array<{ message: string }> };
    if (body.errors?.length) throw new PermissionDeniedError(body.errors[0]!.message);
    return body.data!;
  };
  const names = (collection: string) => {
    const type = collectionOf(model, collection).typeName;
    return { type, get: type[0]!.toLowerCase() + type.slice(1) };
  };
  return {
    async read(collection, doc) {
      const { get } = names(collection);
      const data = await call(`query ($id: ID!) { ${get}(id: $id) { id } }`, { id: doc.id });
      if (data[get] === null) throw new PermissionDeniedError('the role may not read this document');
    },
    async insert(collection, doc) {
      const { type } = names(collection);
      await call(`mutation ($input: ${type}Input!) { insert${type}(input: $input) { id } }`, { input: doc });
    },
    async update(collection, before, after) {
      const { type } = names(collection);
      const { id, ...set } = after;
      const changed = Object.fromEntries(Object.entries(set).filter(([k, v]) => JSON.stringify(before[k]) !== JSON.stringify(v)));
      await call(`mutation ($id: ID!, $set: ${type}Patch!) { update${type}(id: $id, set: $set) { id } }`, { id, set: changed });
    },
    async delete(collection, doc) {
      const { type } = names(collection);
      const data = await call(`mutation ($id: ID!) { delete${type}(id: $id) }`, { id: doc.id });
      if (data[`delete${type}`] !== true) throw new PermissionDeniedError('nothing was deleted');
    },
  };
}

export async function assertSucceeds(attempt: Promise<unknown>): Promise<void> {
  await attempt;
}

export async function assertFails(attempt: Promise<unknown>): Promise<PermissionDeniedError> {
  try {
    await attempt;
  } catch (error) {
    if (error instanceof PermissionDeniedError) return error;
    throw error;
  }
  throw new Error('expected the operation to be denied, but it was allowed');
}

function collectionOf(model: DataModel, name: string): CollectionModel {
  const collection = model.collections.find((c) => c.name === name);
  if (!collection) throw new Error(`no collection "${name}" in the schema`);
  return collection;
}

function wire(doc: Record<string, unknown>): SyncDocument {
  return { _deleted: false, ...doc } as SyncDocument;
}
