// The local RxDB database: one RxDB collection per @collection type of schema.graphql.
//
// Schema evolution: a database-level local document remembers, per collection, the fingerprint
// of the model it was opened with and its RxDB schema version. When the app's schema.graphql
// changed a collection, it is opened with the next version and RxDB migrates the stored
// documents, and the replication's meta storage (RxDB's "connected storages", keeping `_meta.lwt`,
// so writes not yet pushed stay pending), through migration strategies that project each
// document onto the new model's fields.
import { addRxPlugin, createRxDatabase, type MigrationStrategies, type RxCollection, type RxDatabase, type RxJsonSchema, type RxStorage } from 'rxdb';
import { RxDBLeaderElectionPlugin } from 'rxdb/plugins/leader-election';
import { RxDBLocalDocumentsPlugin } from 'rxdb/plugins/local-documents';
import { RxDBMigrationSchemaPlugin } from 'rxdb/plugins/migration-schema';
import { documentJsonSchema, PRIMARY_KEY, type CollectionModel, type DataModel } from '../protocol/model.ts';
import { canonicalCollection, fingerprint, fnv1a64 } from '../protocol/schema-evolution.ts';
import { LOCAL_STAMPS_FIELD } from './stamps.ts';

// Local documents keep sync state (the subscription set) without using up a collection.
addRxPlugin(RxDBLocalDocumentsPlugin);
addRxPlugin(RxDBMigrationSchemaPlugin);
// Several tabs on one database: one of them (the leader) syncs for all (client-sdk/index.ts).
addRxPlugin(RxDBLeaderElectionPlugin);

/** The database-level local document with each collection's model fingerprint and RxDB version. */
export const SCHEMA_VERSIONS_DOCUMENT = 'tributary-schema-versions';

export interface CollectionSchemaVersion {
  /** protocol/schema-evolution.ts fingerprint of the collection's canonical form. */
  fingerprint: string;
  /** Hash of the RxDB JSON schema (version aside): RxDB refuses a changed schema at the same version. */
  rxSchema: string;
  version: number;
}

export type SchemaVersions = Record<string, CollectionSchemaVersion>;

export type LocalDocument = { id: string } & Record<string, unknown>;

export function rxSchema(collection: CollectionModel, version = 0): RxJsonSchema<LocalDocument> {
  const { properties, required } = documentJsonSchema(collection) as { properties: Record<string, unknown>; required: string[] };
  return {
    title: collection.typeName,
    version,
    primaryKey: PRIMARY_KEY,
    type: 'object',
    // Per-field change stamps for conflict resolution (stamps.ts); not part of the app's model.
    properties: { ...properties, syncStamps: { type: 'object' } },
    required,
  } as RxJsonSchema<LocalDocument>;
}

/** `multiInstance`: other tabs (or workers) open the same database and see its writes at once. */
export async function openDatabase(name: string, storage: RxStorage<unknown, unknown>, model: DataModel, multiInstance = false): Promise<{
  database: RxDatabase;
  collections: Record<string, RxCollection<LocalDocument>>;
}> {
  const database = await createRxDatabase({ name, storage, multiInstance, eventReduce: true, localDocuments: true });
  try {
    const saved = (await database.getLocal<{ collections: SchemaVersions }>(SCHEMA_VERSIONS_DOCUMENT))?.get('collections') as SchemaVersions | undefined;
    const versions: SchemaVersions = { ...saved };
    // Keyed by the collection's name in MongoDB (and schema.graphql), e.g. `Task`.
    const collections: Record<string, RxCollection<LocalDocument>> = {};
    for (const c of model.collections) {
      const local = localCollectionName(c.name);
      const now = { fingerprint: fingerprint(canonicalCollection(c)), rxSchema: fnv1a64(JSON.stringify(rxSchema(c))) };
      const before = versions[local];
      const version = before === undefined ? 0 : before.fingerprint === now.fingerprint && before.rxSchema === now.rxSchema ? before.version : before.version + 1;
      collections[c.name] = await addCollection(database, c, version, before === undefined);
      versions[local] = { ...now, version: collections[c.name]!.schema.version };
    }
    if (JSON.stringify(versions) !== JSON.stringify(saved)) await database.upsertLocal(SCHEMA_VERSIONS_DOCUMENT, { collections: versions });
    return { database, collections };
  } catch (error) {
    await database.close();
    throw error;
  }
}

/**
 * Opens (and, past version 0, migrates) one collection. `unrecorded`: the database keeps no
 * version for it (new, or made before versions were recorded): if RxDB holds it at version 0
 * with another schema, it is migrated to version 1.
 */
async function addCollection(database: RxDatabase, model: CollectionModel, version: number, unrecorded: boolean): Promise<RxCollection<LocalDocument>> {
  const local = localCollectionName(model.name);
  const open = async (v: number) => (await database.addCollections({ [local]: { schema: rxSchema(model, v), migrationStrategies: migrationStrategies(model, v) } }))[local]!;
  try {
    return await open(version);
  } catch (error) {
    // RxDB's DB6: a collection of this name exists with another schema at this version.
    if (!unrecorded || version !== 0 || (error as { code?: string }).code !== 'DB6') throw error;
    return open(1);
  }
}

/** Every version 1..`version` projects a document onto the model's fields (idempotent). */
function migrationStrategies(model: CollectionModel, version: number): MigrationStrategies {
  const fields = new Set([...model.fields.map((f) => f.name), LOCAL_STAMPS_FIELD]);
  const project = (doc: Record<string, unknown>) => {
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(doc)) if (fields.has(key) || key.startsWith('_')) out[key] = value;
    // Stamps of fields the model no longer has go with them.
    const stamps = out[LOCAL_STAMPS_FIELD];
    if (stamps !== null && typeof stamps === 'object') {
      out[LOCAL_STAMPS_FIELD] = Object.fromEntries(Object.entries(stamps).filter(([path]) => fields.has(path.split('.')[0]!)));
    }
    return out;
  };
  return Object.fromEntries(Array.from({ length: version }, (_, i) => [i + 1, project]));
}

/**
 * The RxDB collection of a MongoDB collection: RxDB names start with a lowercase letter, so a
 * capitalised name (Realm's `Task`) starts lowercase locally (`task`); others stay as they are.
 */
export function localCollectionName(name: string): string {
  return name[0]!.toLowerCase() + name.slice(1);
}
