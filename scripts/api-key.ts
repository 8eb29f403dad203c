// API keys for server-side services.
//   npm run api-key -- create --name reporting [--user service:reporting] [--admin]   (or: tributary api-key ...)
//   npm run api-key -- list
//   npm run api-key -- revoke <id>
// Talks to MONGODB_URI (database TRIBUTARY_DATABASE, default "tributary"): the database of the
// gateway the key is for. The key is printed once; only its hash is stored. --admin: the key may
// use /admin (gateway/ops/).
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { MongoClient } from 'mongodb';
import { ApiKeys } from '../gateway/auth/api-keys.ts';

/** Runs the command on `args` (without the program name); resolves to the exit code. */
export async function apiKey(args: string[], program = 'npm run api-key --'): Promise<number> {
  const usage = `usage: ${program} create --name NAME [--user USER_ID] [--admin] | list | revoke ID`;
  let parsed;
  try {
    parsed = parseArgs({ args, allowPositionals: true, options: { name: { type: 'string' }, user: { type: 'string' }, admin: { type: 'boolean' } } });
  } catch (error) {
    console.error(`${(error as Error).message}\n${usage}`);
    return 2;
  }
  const { positionals, values } = parsed;
  const [command, id, ...extra] = positionals;
  const valid =
    extra.length === 0 &&
    ((command === 'create' && values.name && !id) || (command === 'list' && !id && !values.name && !values.user && !values.admin) || (command === 'revoke' && id && !values.name && !values.user && !values.admin));
  if (!valid) {
    console.error(usage);
    return 2;
  }
  const uri = process.env.MONGODB_URI;
  if (!uri) {
    console.error("set MONGODB_URI to the gateway's MongoDB (the gateway logs the embedded one's at start)");
    return 2;
  }
  const client = await new MongoClient(uri).connect();
  try {
    const keys = new ApiKeys(client.db(process.env.TRIBUTARY_DATABASE || 'tributary'));
    if (command === 'create') {
      const { key, info } = await keys.create(values.name!, values.user, { admin: values.admin === true });
      console.log(`created ${info.admin ? 'admin ' : ''}API key ${info.id} for user ${info.userId}:\n${key}\n(store it now: it is not shown again)`);
    } else if (command === 'list') {
      for (const k of await keys.list()) console.log(`${k.id}  ${k.name}  user=${k.userId}${k.admin ? '  admin' : ''}  created=${k.createdAt.toISOString()}${k.revokedAt ? `  REVOKED ${k.revokedAt.toISOString()}` : ''}`);
    } else {
      console.log((await keys.revoke(id!)) ? `revoked ${id}` : `no active key ${id}`);
    }
    return 0;
  } finally {
    await client.close();
  }
}

if (process.argv[1] && resolve(process.argv[1]) === import.meta.filename) {
  process.exitCode = await apiKey(process.argv.slice(2));
}
