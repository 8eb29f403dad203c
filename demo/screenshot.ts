// Makes docs/demo.png for the README: the demo with two people side by side, one of them offline
// with a pending write and a refused change. `npx tsx demo/screenshot.ts` (needs the FerretDB
// binary that `npm start` builds, or MONGODB_URI, and Chromium as the browser tests use it).
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Page } from 'playwright-core';
import { pino } from 'pino';
import { startGateway } from '../gateway/server.ts';
import { startEmbeddedFerretDB } from '../gateway/store/embedded-ferretdb.ts';
import { launchBrowser } from '../test/helpers/browser.ts';
import { startDemoServer } from './server.ts';

const ROOT = resolve(import.meta.dirname, '..');
const dataDir = await mkdtemp(join(tmpdir(), 'tributary-demo-shot-'));
const embedded = process.env.MONGODB_URI ? null : await startEmbeddedFerretDB({ dataDir });
const gateway = await startGateway({
  mongoUri: process.env.MONGODB_URI ?? embedded!.uri,
  database: `demo_shot_${Date.now()}`,
  port: 0,
  logger: pino({ level: 'error' }),
  rulesPath: resolve(ROOT, 'demo/rules'),
  auth: { devTokens: true, anonymous: { enabled: false } },
});
const demo = await startDemoServer({ gatewayHttpUrl: gateway.httpUrl, gatewayWsUrl: gateway.wsUrl, schema: await readFile(resolve(ROOT, 'schema.graphql'), 'utf8') });
const browser = await launchBrowser();

try {
  const open = async (name: string) => {
    const page = await (await browser.newContext({ viewport: { width: 760, height: 470 } })).newPage();
    await page.goto(demo.url);
    await page.fill('#name', name);
    await page.click('#login button[type=submit]');
    await page.waitForSelector('body[data-ready="true"]');
    return page;
  };
  const addTask = async (page: Page, title: string) => {
    await page.fill('#new-task-title', title);
    await page.press('#new-task-title', 'Enter');
    await page.locator('.task', { has: page.locator(`input.title`) }).last().waitFor();
    return page.locator('.task').last();
  };
  const alice = await open('alice');
  await alice.fill('#new-list-name', 'Launch week');
  await alice.press('#new-list-name', 'Enter');
  await alice.waitForSelector('#sync-state[data-state="complete"]');
  const announce = await addTask(alice, 'Write the announcement');
  await announce.locator('.plus').click();
  await announce.locator('.plus').click();
  for (const name of ['alice', 'bob']) {
    await announce.locator('.assign').fill(name);
    await announce.locator('.assign').press('Enter');
  }
  await (await addTask(alice, 'Record the demo video')).locator('.priority').selectOption('2');
  await (await addTask(alice, 'Fix the signup bug')).locator('.status').selectOption('BLOCKED');

  const bob = await open('bob');
  const list = bob.locator('.list', { hasText: 'Launch week' });
  await list.click();
  await list.locator('input.sync').check();
  await bob.waitForFunction(() => document.querySelectorAll('.task').length === 3);
  // Renaming Alice's list: the gateway refuses it.
  await bob.fill('#list-title', 'My launch week');
  await bob.press('#list-title', 'Enter');
  await bob.locator('.message').waitFor();
  await bob.waitForFunction(() => (document.querySelector('#list-title') as HTMLInputElement).value === 'Launch week');
  await bob.context().setOffline(true);
  await bob.waitForSelector('#banner.shown');
  await bob.locator('.task').first().locator('.status').selectOption('IN_PROGRESS');
  await bob.locator('.task').first().locator('.plus').click();
  await bob.waitForFunction(() => Number(document.querySelector('#pending')?.getAttribute('data-count')) > 0);
  await alice.waitForFunction(() => document.querySelector('.minutes')?.getAttribute('data-value') === '30');

  // The two windows side by side, on one page.
  const shots = await Promise.all([alice, bob].map(async (p) => (await p.screenshot()).toString('base64')));
  const board = await (await browser.newContext({ viewport: { width: 1560, height: 520 } })).newPage();
  await board.setContent(`<body style="margin:0;padding:12px;background:#c9d1e0;font:600 14px system-ui;display:flex;gap:16px">
    ${['alice (online)', 'bob (offline)'].map((caption, i) => `<figure style="margin:0"><figcaption style="margin-bottom:6px">${caption}</figcaption><img style="border-radius:6px;box-shadow:0 2px 8px #0003" src="data:image/png;base64,${shots[i]}"></figure>`).join('')}</body>`);
  await board.screenshot({ path: resolve(ROOT, 'docs/demo.png'), fullPage: true });
  console.log('wrote docs/demo.png');
} finally {
  await browser.close();
  await demo.close();
  await gateway.stop();
  await embedded?.stop();
  await rm(dataDir, { recursive: true, force: true });
}
