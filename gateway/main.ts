// The gateway as a process (`npm start`, `tributary start`): on MONGODB_URI, or on the embedded
// FerretDB when it is unset, configured by environment variables (config.ts), until SIGINT or
// SIGTERM stops it and the embedded store with it.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pino } from 'pino';
import { configFromEnv } from './config.ts';
import { PACKAGE_ROOT } from './package-root.ts';
import { startGateway, type Gateway } from './server.ts';
import { startEmbeddedFerretDB, type EmbeddedFerretDB } from './store/embedded-ferretdb.ts';

export interface RunOptions {
  /** Where the embedded store keeps its data when TRIBUTARY_DATA_DIR is unset. */
  defaultDataDir?: string;
  /** Started once the gateway is (the demo's page), and closed first when it stops. */
  alongside?: (gateway: Gateway, config: ReturnType<typeof configFromEnv>) => Promise<{ close(): Promise<void> }>;
}

export async function runGateway(env: NodeJS.ProcessEnv = process.env, options: RunOptions = {}): Promise<void> {
  const config = configFromEnv(env);
  // The app's data model and rules, from the folder it is started in (in a checkout: the
  // checkout's own); not the examples inside an installed package.
  if (!env.TRIBUTARY_SCHEMA) config.schemaPath = resolve('schema.graphql');
  if (!env.TRIBUTARY_RULES) config.rulesPath = resolve('rules');
  const example = (name: string) => resolve(PACKAGE_ROOT, name);
  if (!existsSync(config.schemaPath)) {
    throw new Error(`no data model at ${config.schemaPath}: write a schema.graphql there or set TRIBUTARY_SCHEMA (an example: ${example('schema.graphql')})`);
  }
  if (!existsSync(config.rulesPath)) {
    throw new Error(`no permission rules at ${config.rulesPath}: create that folder or set TRIBUTARY_RULES (an example: ${example('rules')})`);
  }
  const log = pino({ level: config.logLevel });

  let embedded: EmbeddedFerretDB | undefined;
  let gateway: Gateway | undefined;
  let companion: { close(): Promise<void> } | undefined;
  let stopping = false;
  const start = async () => {
    let mongoUri = config.mongoUri;
    if (!mongoUri) {
      const dataDir = resolve(env.TRIBUTARY_DATA_DIR ?? options.defaultDataDir ?? '.tributary/data');
      embedded = await startEmbeddedFerretDB({ dataDir });
      mongoUri = embedded.uri;
      log.info({ dataDir, uri: mongoUri }, 'embedded FerretDB started (set MONGODB_URI to use your own MongoDB)');
    }
    if (stopping) return;
    gateway = await startGateway({ ...config, mongoUri, logger: log }).catch(async (error: unknown) => {
      await embedded?.stop();
      throw error;
    });
    log.info({ http: gateway.httpUrl, ws: gateway.wsUrl }, 'Tributary gateway ready');
    if (options.alongside && !stopping) {
      const running = gateway;
      companion = await options.alongside(running, config).catch(async (error: unknown) => {
        await running.stop();
        await embedded?.stop();
        throw error;
      });
    }
  };
  const started = start();

  // Handled from the start: a signal while FerretDB or the gateway is still starting must
  // stop them too, not leave FerretDB running without us. SIGTERM (a rolling restart) drains
  // first: clients are sent elsewhere over TRIBUTARY_DRAIN_MS, then writes under way finish.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'shutting down');
      void started
        .catch(() => {}) // a failed start already stopped what it had started, and is reported below
        .then(() => companion?.close())
        .then(() => (signal === 'SIGTERM' ? gateway?.drain() : undefined))
        .then(() => gateway?.stop())
        .then(() => embedded?.stop())
        .then(() => process.exit(0), (error: unknown) => {
          log.error({ err: error }, 'shutdown failed');
          process.exit(1);
        });
    });
  }
  // Reload the permission rules without a restart; open sessions get the new permissions live.
  process.on('SIGHUP', () => void gateway?.reloadRules());

  await started;
}

if (process.argv[1] && resolve(process.argv[1]) === import.meta.filename) {
  await runGateway().catch((error: unknown) => {
    console.error(`gateway not started: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  });
}
