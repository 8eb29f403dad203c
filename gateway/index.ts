// Embedding the gateway in your own Node process.
export { startGateway, GRAPHQL_PATH, type Gateway, type GatewayOptions } from './server.ts';
export { configFromEnv, DEFAULTS, type GatewayConfig } from './config.ts';
export { startEmbeddedFerretDB, type EmbeddedFerretDB } from './store/embedded-ferretdb.ts';
