// `npm start`: the gateway on MONGODB_URI, or on the embedded FerretDB when it is unset.
import { resolve } from 'node:path';
import { pino } from 'pino';
import { configFromEnv } from './config.ts';
import { startGateway } from './server.ts';
import { startEmbeddedFerretDB, type EmbeddedFerretDB } from './store/embedded-ferretdb.ts';

const config = configFromEnv();
const log = pino({ level: config.logLevel });

let embedded: EmbeddedFerretDB | undefined;
let mongoUri = config.mongoUri;
if (!mongoUri) {
  const dataDir = resolve(process.env.TRIBUTARY_DATA_DIR ?? '.tributary/data');
  embedded = await startEmbeddedFerretDB({ dataDir });
  mongoUri = embedded.uri;
  log.info({ dataDir, uri: mongoUri }, 'embedded FerretDB started (set MONGODB_URI to use your own MongoDB)');
}

const gateway = await startGateway({ ...config, mongoUri, logger: log }).catch(async (error: unknown) => {
  await embedded?.stop();
  throw error;
});
log.info({ http: gateway.httpUrl, ws: gateway.wsUrl }, 'Tributary gateway ready');

// Reload the permission rules without a restart; open sessions get the new permissions live.
process.on('SIGHUP', () => void gateway.reloadRules());

let shuttingDown = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (shuttingDown) return;
    shuttingDown = true;
    log.info({ signal }, 'shutting down');
    void gateway
      .stop()
      .then(() => embedded?.stop())
      .then(() => process.exit(0), (error: unknown) => {
        log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      });
  });
}
