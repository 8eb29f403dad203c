// `npm run demo`: a gateway on the embedded store with the demo's rules and dev tokens (anyone
// logs in by name), and the demo page next to it. Prints the page's URL; Ctrl-C stops it all.
//
// Environment: PORT (gateway, default 4000), DEMO_PORT (page, default 5173),
// TRIBUTARY_DATA_DIR (default .tributary/demo-data), MONGODB_URI (your MongoDB instead of the
// embedded store), TRIBUTARY_DATABASE (default tributary_demo), TRIBUTARY_RULES (default
// demo/rules), and the gateway's other variables.
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { pino } from 'pino';
import { configFromEnv } from '../gateway/config.ts';
import { startGateway } from '../gateway/server.ts';
import { startEmbeddedFerretDB, type EmbeddedFerretDB } from '../gateway/store/embedded-ferretdb.ts';
import { startDemoServer } from './server.ts';

if (process.env.NODE_ENV === 'production') throw new Error('the demo accepts unsigned dev tokens: never run it with NODE_ENV=production');
// Its own database (on MONGODB_URI too): dev tokens must never reach an app's real data.
const config = configFromEnv({ TRIBUTARY_RULES: resolve(import.meta.dirname, 'rules'), TRIBUTARY_DATABASE: 'tributary_demo', ...process.env, TRIBUTARY_DEV_TOKENS: 'true' });
const log = pino({ level: config.logLevel });

let embedded: EmbeddedFerretDB | undefined;
let mongoUri = config.mongoUri;
if (!mongoUri) {
  embedded = await startEmbeddedFerretDB({ dataDir: resolve(process.env.TRIBUTARY_DATA_DIR ?? '.tributary/demo-data') });
  mongoUri = embedded.uri;
}
const gateway = await startGateway({ ...config, mongoUri, logger: log }).catch(async (error: unknown) => {
  await embedded?.stop();
  throw error;
});
const page = await startDemoServer({
  gatewayHttpUrl: gateway.httpUrl,
  gatewayWsUrl: gateway.wsUrl,
  schema: await readFile(config.schemaPath, 'utf8'),
  port: Number(process.env.DEMO_PORT ?? 5173),
}).catch(async (error: unknown) => {
  await gateway.stop();
  await embedded?.stop();
  throw error;
});
console.log(`\nTributary demo: open ${page.url} (two browser windows, or a private one, for two people)\n`);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void page
      .close()
      .then(() => gateway.stop())
      .then(() => embedded?.stop())
      .then(() => process.exit(0), () => process.exit(1));
  });
}
