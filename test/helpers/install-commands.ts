// The commands of README.md's "Install as a package", as test/package.test.ts runs them (in a
// fresh app holding the packed tarball). Both that test and test/readme.test.ts check that the
// README's block is exactly these lines, so the README cannot show a command no test runs.
export const INSTALL_COMMANDS = {
  install: 'npm install ./tributary-0.1.0.tgz',
  copy: 'cp -r node_modules/tributary/schema.graphql node_modules/tributary/rules .',
  start: 'npx tributary start',
  help: 'npx tributary --help',
} as const;

/** The shell block under the README's "## Install as a package", as commands (comments dropped). */
export function readmeInstallCommands(readme: string): string[] {
  const section = readme.split(/^## /m).find((s) => s.startsWith('Install as a package\n'));
  const block = section && /^```sh\n([\s\S]*?)^```$/m.exec(section)?.[1];
  if (!block) throw new Error('README.md has no "## Install as a package" section with a ```sh block');
  return block
    .split('\n')
    .map((line) => line.replace(/\s+#.*$/, '').trim())
    .filter((line) => line && !line.startsWith('#'));
}
