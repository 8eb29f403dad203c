// Forces a client reset (PROTOCOL.md, "Client reset"): every device syncing the collection, or
// only the user's devices, resets on its next pull, in the mode its app configured.
//   npm run reset-clients -- --collection tasks [--user USER_ID]
// Talks to MONGODB_URI (database TRIBUTARY_DATABASE, default "tributary"), as `npm run api-key`.
// After restoring the database from a backup, force a reset of every collection: a device whose
// checkpoint is ahead of the restored copy resets by itself, but writes made since the restore
// may have moved the database past it.
import { parseArgs } from 'node:util';
import { MongoClient } from 'mongodb';
import { ClientResets } from '../gateway/sync/client-reset.ts';

const { values } = parseArgs({ options: { collection: { type: 'string', multiple: true }, user: { type: 'string' } } });
const uri = process.env.MONGODB_URI;
if (!uri || !values.collection?.length) {
  console.error('usage: MONGODB_URI=... npm run reset-clients -- --collection NAME [--collection NAME…] [--user USER_ID]');
  process.exit(2);
}
const client = await new MongoClient(uri).connect();
try {
  const resets = new ClientResets(client.db(process.env.TRIBUTARY_DATABASE || 'tributary'));
  for (const collection of values.collection) {
    await resets.force(collection, values.user);
    console.log(`forced a client reset of ${collection}${values.user ? ` for user ${values.user}` : ''}: devices reset on their next pull`);
  }
} finally {
  await client.close();
}
