// Two FerretDBs (SQLite backend, fresh data folders) for the whole test run; tests isolate
// themselves by database name. FerretDB keeps one oplog for all of a server's databases, every
// read of it decodes all of it, and it is trimmed to a bound: a test that writes 100,000
// documents (bootstrap) would push the followers of other files past their place. So the tests
// of outside writes, which follow the oplog, get a store of their own (`useOplogStore()` in
// test/helpers/harness.ts), and every other test one without an oplog.
// Set MONGODB_URI to run the suite against MongoDB instead (both then use it).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { startEmbeddedFerretDB, type EmbeddedFerretDB } from '../../gateway/store/embedded-ferretdb.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    mongoUri: string;
    oplogMongoUri: string;
  }
}

const stores: EmbeddedFerretDB[] = [];
const dataDirs: string[] = [];

export async function setup(project: TestProject): Promise<void> {
  if (process.env.MONGODB_URI) {
    project.provide('mongoUri', process.env.MONGODB_URI);
    project.provide('oplogMongoUri', process.env.MONGODB_URI);
    return;
  }
  const start = async (oplog: Parameters<typeof startEmbeddedFerretDB>[0]['oplog']) => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tributary-test-'));
    dataDirs.push(dataDir);
    const store = await startEmbeddedFerretDB({ dataDir, oplog });
    stores.push(store);
    return store.uri;
  };
  project.provide('mongoUri', await start(false));
  // Longer than the embedded default (250): the outside-writer files run beside each other.
  project.provide('oplogMongoUri', await start({ maxEntries: 2_000 }));
}

export async function teardown(): Promise<void> {
  await Promise.all(stores.map((s) => s.stop()));
  for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
}
