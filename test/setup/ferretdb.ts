// One FerretDB (SQLite backend, fresh data folder) for the whole test run. Tests isolate
// themselves by database name. Set MONGODB_URI to run the suite against MongoDB instead.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { startEmbeddedFerretDB, type EmbeddedFerretDB } from '../../gateway/store/embedded-ferretdb.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    mongoUri: string;
  }
}

let store: EmbeddedFerretDB | undefined;
let dataDir: string | undefined;

export async function setup(project: TestProject): Promise<void> {
  if (process.env.MONGODB_URI) {
    project.provide('mongoUri', process.env.MONGODB_URI);
    return;
  }
  dataDir = mkdtempSync(join(tmpdir(), 'tributary-test-'));
  // A longer oplog than the embedded default (250): the suite's parallel files write a lot, and
  // a follower that falls that far behind loses its place (outside-changes.test.ts).
  store = await startEmbeddedFerretDB({ dataDir, oplog: { maxEntries: 2_000 } });
  project.provide('mongoUri', store.uri);
}

export async function teardown(): Promise<void> {
  await store?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
}
