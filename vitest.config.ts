import { createRequire } from 'node:module';
import { defineConfig } from 'vitest/config';

const require = createRequire(import.meta.url);

export default defineConfig({
  resolve: {
    // graphql 16 ships CommonJS (main) and ESM (module) builds. Node, and so graphql-yoga and
    // graphql-ws, load the CommonJS one; make the test transform pick the same copy, or
    // `instanceof GraphQLError` fails across the two and Yoga masks our errors.
    alias: [{ find: /^graphql$/, replacement: require.resolve('graphql') }],
  },
  test: {
    include: ['test/**/*.test.ts', 'rules/**/*.test.ts'],
    exclude: ['**/node_modules/**'],
    globalSetup: ['test/setup/ferretdb.ts'],
    pool: 'forks',
    // Each file runs real gateways, sockets and RxDB clients against one FerretDB.
    maxWorkers: 2,
    // Memory tests collect garbage before they measure (global.gc).
    execArgv: ['--expose-gc'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
