// Forces a client reset (PROTOCOL.md, "Client reset"): every device syncing the collection, or
// only the user's devices, resets on its next pull, in the mode its app configured.
//   npm run reset-clients -- --collection tasks [--user USER_ID]   (or: tributary reset-clients ...)
// Talks to MONGODB_URI (database TRIBUTARY_DATABASE, default "tributary"), as `npm run api-key`.
// After restoring the database from a backup, force a reset of every collection: a device whose
// checkpoint is ahead of the restored copy resets by itself, but writes made since the restore
// may have moved the database past it.
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { MongoClient } from 'mongodb';
import { ClientResets } from '../gateway/sync/client-reset.ts';

/** Runs the command on `args` (without the program name); resolves to the exit code. */
export async function resetClients(args: string[], program = 'npm run reset-clients --'): Promise<number> {
  const usage = `usage: MONGODB_URI=... ${program} --collection NAME [--collection NAME…] [--user USER_ID]`;
  let values;
  try {
    ({ values } = parseArgs({ args, options: { collection: { type: 'string', multiple: true }, user: { type: 'string' } } }));
  } catch (error) {
    console.error(`${(error as Error).message}\n${usage}`);
    return 2;
  }
  const uri = process.env.MONGODB_URI;
  if (!uri || !values.collection?.length) {
    console.error(usage);
    return 2;
  }
  const client = await new MongoClient(uri).connect();
  try {
    const resets = new ClientResets(client.db(process.env.TRIBUTARY_DATABASE || 'tributary'));
    for (const collection of values.collection) {
      await resets.force(collection, values.user);
      console.log(`forced a client reset of ${collection}${values.user ? ` for user ${values.user}` : ''}: devices reset on their next pull`);
    }
    return 0;
  } finally {
    await client.close();
  }
}

if (process.argv[1] && resolve(process.argv[1]) === import.meta.filename) {
  process.exitCode = await resetClients(process.argv.slice(2));
}
