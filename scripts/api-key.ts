// API keys for server-side services.
//   npm run api-key -- create --name reporting [--user service:reporting]
//   npm run api-key -- list
//   npm run api-key -- revoke <id>
// Talks to MONGODB_URI (database TRIBUTARY_DATABASE, default "tributary"): the database of the
// gateway the key is for. The key is printed once; only its hash is stored.
import { parseArgs } from 'node:util';
import { MongoClient } from 'mongodb';
import { ApiKeys } from '../gateway/auth/api-keys.ts';

const { positionals, values } = parseArgs({ allowPositionals: true, options: { name: { type: 'string' }, user: { type: 'string' } } });
const [command, id] = positionals;
const uri = process.env.MONGODB_URI;
if (!uri) {
  console.error('set MONGODB_URI to the gateway\'s MongoDB (npm start prints the embedded one)');
  process.exit(2);
}
const client = await new MongoClient(uri).connect();
try {
  const keys = new ApiKeys(client.db(process.env.TRIBUTARY_DATABASE || 'tributary'));
  if (command === 'create' && values.name) {
    const { key, info } = await keys.create(values.name, values.user);
    console.log(`created API key ${info.id} for user ${info.userId}:\n${key}\n(store it now: it is not shown again)`);
  } else if (command === 'list') {
    for (const k of await keys.list()) console.log(`${k.id}  ${k.name}  user=${k.userId}  created=${k.createdAt.toISOString()}${k.revokedAt ? `  REVOKED ${k.revokedAt.toISOString()}` : ''}`);
  } else if (command === 'revoke' && id) {
    console.log((await keys.revoke(id)) ? `revoked ${id}` : `no active key ${id}`);
  } else {
    console.error('usage: npm run api-key -- create --name NAME [--user USER_ID] | list | revoke ID');
    process.exitCode = 2;
  }
} finally {
  await client.close();
}
