// The local RxDB database: one RxDB collection per @collection type of schema.graphql.
import { addRxPlugin, createRxDatabase, type RxCollection, type RxDatabase, type RxJsonSchema, type RxStorage } from 'rxdb';
import { RxDBLocalDocumentsPlugin } from 'rxdb/plugins/local-documents';
import { documentJsonSchema, PRIMARY_KEY, type CollectionModel, type DataModel } from '../protocol/model.ts';

// Local documents keep sync state (the subscription set) without using up a collection.
addRxPlugin(RxDBLocalDocumentsPlugin);

export type LocalDocument = { id: string } & Record<string, unknown>;

export function rxSchema(collection: CollectionModel): RxJsonSchema<LocalDocument> {
  const { properties, required } = documentJsonSchema(collection) as { properties: Record<string, unknown>; required: string[] };
  return {
    title: collection.typeName,
    version: 0,
    primaryKey: PRIMARY_KEY,
    type: 'object',
    // Per-field change stamps for conflict resolution (stamps.ts); not part of the app's model.
    properties: { ...properties, syncStamps: { type: 'object' } },
    required,
  } as RxJsonSchema<LocalDocument>;
}

export async function openDatabase(name: string, storage: RxStorage<unknown, unknown>, model: DataModel): Promise<{
  database: RxDatabase;
  collections: Record<string, RxCollection<LocalDocument>>;
}> {
  const database = await createRxDatabase({ name, storage, multiInstance: false, eventReduce: true, localDocuments: true });
  try {
    const created = await database.addCollections(Object.fromEntries(model.collections.map((c) => [localCollectionName(c.name), { schema: rxSchema(c) }])));
    // Keyed by the collection's name in MongoDB (and schema.graphql), e.g. `Task`.
    const collections = Object.fromEntries(model.collections.map((c) => [c.name, created[localCollectionName(c.name)]!]));
    return { database, collections: collections as Record<string, RxCollection<LocalDocument>> };
  } catch (error) {
    await database.close();
    throw error;
  }
}

/**
 * The RxDB collection of a MongoDB collection: RxDB names start with a lowercase letter, so a
 * capitalised name (Realm's `Task`) starts lowercase locally (`task`); others stay as they are.
 */
export function localCollectionName(name: string): string {
  return name[0]!.toLowerCase() + name.slice(1);
}
