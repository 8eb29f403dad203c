// The folder holding Tributary's package.json: the checkout, or node_modules/tributary in an app.
// Found by walking up from this file, so it is the same whether this runs as TypeScript from the
// checkout (gateway/) or as the built JavaScript (dist/gateway/).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

function findPackageRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json above ${from}`);
  }
}

export const PACKAGE_ROOT = findPackageRoot(import.meta.dirname);

/** Installed as a dependency of an app (not run from a checkout of Tributary). */
export const INSTALLED = PACKAGE_ROOT.split(/[\\/]/).includes('node_modules');
