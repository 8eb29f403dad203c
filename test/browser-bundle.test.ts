// The SDK builds for browsers as it is: esbuild, platform browser, no polyfills. A Node built-in
// anywhere in its import chains (client-sdk/ and protocol/, and the packages they use) fails the
// bundle, naming who imported it.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bundleForBrowser } from '../demo/bundle.ts';

describe('browser bundle', () => {
  it('bundles the SDK (client-sdk/index.ts) with no Node built-in in any import chain', async () => {
    const { code, inputs } = await bundleForBrowser({ entry: 'client-sdk/index.ts' });
    expect(inputs).toContain('client-sdk/stamps.ts');
    expect(inputs.some((i) => i.startsWith('protocol/'))).toBe(true);
    // jose's browser build (Web Crypto), not its Node one.
    expect(inputs.some((i) => i.includes('node_modules/jose/dist/webapi/'))).toBe(true);
    expect(code).toContain('openTributary');
  });

  it('bundles the demo app with the Dexie storage and leader election', async () => {
    const { inputs } = await bundleForBrowser({ entry: 'demo/app.ts' });
    expect(inputs.some((i) => i.includes('rxdb/dist/esm/plugins/storage-dexie/'))).toBe(true);
    expect(inputs.some((i) => i.includes('rxdb/dist/esm/plugins/leader-election/'))).toBe(true);
  });

  it('fails on a Node built-in, saying which file imported it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tributary-bundle-'));
    await writeFile(join(dir, 'helper.ts'), "import { randomBytes } from 'node:crypto';\nexport const id = () => randomBytes(4);\n");
    await writeFile(join(dir, 'app.ts'), `import { openTributary } from '${resolve('client-sdk/index.ts')}';\nimport { id } from './helper.ts';\nconsole.log(openTributary, id);\n`);
    await expect(bundleForBrowser({ entry: join(dir, 'app.ts') })).rejects.toThrow(/"node:crypto" is a Node built-in, imported by .*helper\.ts/);
    // The bare name too: no npm polyfill stands in for it.
    await writeFile(join(dir, 'helper.ts'), "import { EventEmitter } from 'events';\nexport const id = () => new EventEmitter();\n");
    await expect(bundleForBrowser({ entry: join(dir, 'app.ts') })).rejects.toThrow(/"events" is a Node built-in/);
  });

  it('refuses a call without an entry', async () => {
    await expect(bundleForBrowser({ entry: '' })).rejects.toThrow(/`entry` is required/);
  });
});
