// Real Chromium for browser tests: Debian's `chromium` package (installed by .ci/run), driven by
// playwright-core (no browser download). The flags keep it off the network this machine does not
// have: without them it keeps trying to reach Google's hosts.
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Where failing browser tests leave their screenshots (ignored by git). */
export const SCREENSHOT_DIR = resolve('test-results/screenshots');

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** Runs `step`; if it throws, saves a screenshot of each page (named `<name>-<i>.png`) first. */
export async function withScreenshots<T>(name: string, pages: Page[], step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    await mkdir(SCREENSHOT_DIR, { recursive: true });
    const safe = name.replace(/[^a-z0-9-]+/gi, '-');
    await Promise.all(pages.map((page, i) => page.screenshot({ path: resolve(SCREENSHOT_DIR, `${safe}-${i}.png`), fullPage: true }).catch(() => {})));
    throw error;
  }
}
