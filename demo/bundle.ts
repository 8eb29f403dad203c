// Bundles a browser entry (an app on the Tributary SDK) with esbuild: platform browser, one ES
// module, no polyfills. Anything reaching for a Node built-in (`node:fs`, `crypto`, ...) fails
// the build, naming the import chain, instead of shipping a bundle that breaks in the browser.
//
//   import { bundleForBrowser } from './demo/bundle.ts';
//   const { code } = await bundleForBrowser({ entry: 'app.ts' });                 // in memory
//   await bundleForBrowser({ entry: 'app.ts', outfile: 'public/app.js' });        // written
import { builtinModules } from 'node:module';
import { resolve } from 'node:path';
import { build, type Plugin } from 'esbuild';

export interface BrowserBundleOptions {
  /** The app's entry file (.ts or .js); it may import `tributary` or client-sdk/ directly. */
  entry: string;
  /** Where to write the bundle; without it the bundle is only returned. */
  outfile?: string;
  /** Minify (default false: readable stack traces in tests). */
  minify?: boolean;
  /** Resolve packages from here (default: the entry's directory and up, as Node does). */
  nodePaths?: string[];
}

export interface BrowserBundle {
  /** The bundled ES module. */
  code: string;
  /** The files that went in, relative to the working directory (esbuild's metafile inputs). */
  inputs: string[];
}

const NODE_BUILTINS = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

/** Refuses Node built-ins, saying who imported them (esbuild would otherwise just fail to resolve, or polyfill nothing). */
const noNodeBuiltins: Plugin = {
  name: 'no-node-builtins',
  setup(b) {
    b.onResolve({ filter: /.*/ }, (args) => {
      // Also the bare names (`crypto`, `events`): no npm polyfill of a built-in goes in either.
      if (!args.path.startsWith('node:') && !NODE_BUILTINS.has(args.path)) return undefined;
      return { errors: [{ text: `"${args.path}" is a Node built-in, imported by ${args.importer || 'the entry'}: the browser has no such module` }] };
    });
  },
};

export async function bundleForBrowser(options: BrowserBundleOptions): Promise<BrowserBundle> {
  if (!options.entry) throw new Error('bundleForBrowser: `entry` is required');
  const result = await build({
    entryPoints: [resolve(options.entry)],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    // Prefer packages' browser builds (jose, broadcast-channel, ...).
    mainFields: ['browser', 'module', 'main'],
    conditions: ['browser', 'import', 'default'],
    minify: options.minify ?? false,
    sourcemap: 'inline',
    write: false,
    metafile: true,
    logLevel: 'silent',
    nodePaths: options.nodePaths,
    outfile: options.outfile ? resolve(options.outfile) : 'bundle.js',
    plugins: [noNodeBuiltins],
    define: { 'process.env.NODE_ENV': '"production"' },
  }).catch((error: { errors?: Array<{ text: string; location?: { file: string; line: number } | null }> }) => {
    const details = (error.errors ?? []).map((e) => `${e.text}${e.location ? ` (${e.location.file}:${e.location.line})` : ''}`);
    throw new Error(`browser bundle of ${options.entry} failed:\n  ${details.join('\n  ') || String(error)}`);
  });
  const output = result.outputFiles.find((f) => f.path.endsWith('.js'))!;
  if (options.outfile) {
    const { mkdir, writeFile } = await import('node:fs/promises');
    const { dirname } = await import('node:path');
    await mkdir(dirname(resolve(options.outfile)), { recursive: true });
    await writeFile(resolve(options.outfile), output.contents);
  }
  return { code: output.text, inputs: Object.keys(result.metafile.inputs) };
}
