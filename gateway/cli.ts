#!/usr/bin/env node
// The `tributary` command of the installed package (package.json `bin`; dist/gateway/cli.js once
// built). Each command is the same code as its npm script in the checkout: `start` is
// gateway/main.ts (`npm start`), the others scripts/*.ts (`npm run api-key`, ...).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from './package-root.ts';

const HELP = `usage: tributary <command> [arguments]

commands:
  start                     run the gateway, configured by environment variables (README, "Configuration"):
                            on MONGODB_URI, or on an embedded FerretDB in ./.tributary/data when it is unset;
                            the data model and rules from ./schema.graphql and ./rules (TRIBUTARY_SCHEMA, TRIBUTARY_RULES)
  api-key create --name NAME [--user USER_ID] [--admin] | list | revoke ID
                            API keys for server-side services (on MONGODB_URI, database TRIBUTARY_DATABASE)
  import-realm <App Services export folder> [--out DIR] [--environment NAME] [--force]
                            turn an Atlas App Services export into schema.graphql and rules/
  reset-clients --collection NAME [--collection NAME...] [--user USER_ID]
                            force a client reset of the devices syncing a collection (on MONGODB_URI)
  help, --help, -h          this text
  --version                 the version of Tributary
`;

async function run(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  switch (command) {
    case 'start': {
      if (args.length === 1 && ['--help', '-h'].includes(args[0]!)) {
        console.log(HELP);
        return 0;
      }
      if (args.length > 0) {
        console.error(`tributary start takes no arguments (got ${args.join(' ')}): it is configured by environment variables; see tributary --help`);
        return 2;
      }
      const { runGateway } = await import('./main.ts');
      try {
        await runGateway();
      } catch (error) {
        console.error(`tributary start: ${error instanceof Error ? error.message : String(error)}`);
        return 1;
      }
      return -1; // running: the signal handlers end the process
    }
    case 'api-key':
      return (await import('../scripts/api-key.ts')).apiKey(args, 'tributary api-key');
    case 'import-realm':
      return (await import('../scripts/import-realm.ts')).importRealm(args, { importRealm: 'tributary import-realm', start: 'npx tributary start' });
    case 'reset-clients':
      return (await import('../scripts/reset-clients.ts')).resetClients(args, 'tributary reset-clients');
    case 'help':
    case '--help':
    case '-h':
      console.log(HELP);
      return 0;
    case '--version':
      console.log((JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version);
      return 0;
    case undefined:
      console.error(HELP);
      return 2;
    default:
      console.error(`tributary: unknown command ${JSON.stringify(command)}; the commands are start, api-key, import-realm, reset-clients (tributary --help)`);
      return 2;
  }
}

const code = await run(process.argv.slice(2));
if (code >= 0) process.exitCode = code;
