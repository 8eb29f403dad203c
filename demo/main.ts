// `npm run demo`: a gateway on the embedded store with the demo's rules and dev tokens (anyone
// logs in by name), and the demo page next to it. Prints the page's URL; Ctrl-C stops it all.
//
// Environment: PORT (gateway, default 4000), DEMO_PORT (page, default 5173),
// TRIBUTARY_DATA_DIR (default .tributary/demo-data), MONGODB_URI (your MongoDB instead of the
// embedded store), TRIBUTARY_DATABASE (default tributary_demo), TRIBUTARY_RULES (default
// demo/rules), and the gateway's other variables.
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { runGateway } from '../gateway/main.ts';
import { startDemoServer } from './server.ts';

if (process.env.NODE_ENV === 'production') throw new Error('the demo accepts unsigned dev tokens: never run it with NODE_ENV=production');
// Its own database (on MONGODB_URI too): dev tokens must never reach an app's real data.
const env = { TRIBUTARY_RULES: resolve(import.meta.dirname, 'rules'), TRIBUTARY_DATABASE: 'tributary_demo', ...process.env, TRIBUTARY_DEV_TOKENS: 'true' };
await runGateway(env, {
  defaultDataDir: '.tributary/demo-data',
  alongside: async (gateway, config) => {
    const page = await startDemoServer({
      gatewayHttpUrl: gateway.httpUrl,
      gatewayWsUrl: gateway.wsUrl,
      schema: await readFile(config.schemaPath, 'utf8'),
      port: Number(process.env.DEMO_PORT ?? 5173),
    });
    console.log(`\nTributary demo: open ${page.url} (two browser windows, or a private one, for two people)\n`);
    return page;
  },
}).catch((error: unknown) => {
  console.error(`demo not started: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
