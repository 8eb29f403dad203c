// The demo app (demo/) in real Chromium, against a real gateway with the demo's rules: the SDK in
// the browser (Dexie storage in IndexedDB, several tabs, the socket following the network).
import { resolve } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemoServer, type DemoServer } from '../demo/server.ts';
import { launchBrowser, withScreenshots } from './helpers/browser.ts';
import { cleanup, openDb, SCHEMA, startTestGateway, syncedDocument, waitFor } from './helpers/harness.ts';

let browser: Browser;
let gateway: Awaited<ReturnType<typeof startTestGateway>>;
let demo: DemoServer;
const contexts: BrowserContext[] = [];

beforeAll(async () => {
  gateway = await startTestGateway({ rulesPath: resolve('demo/rules'), auth: { devTokens: true, anonymous: { enabled: false } } });
  demo = await startDemoServer({ gatewayHttpUrl: gateway.httpUrl, gatewayWsUrl: gateway.wsUrl, schema: SCHEMA });
  browser = await launchBrowser();
});

afterAll(async () => {
  await browser?.close();
  await demo?.close();
  await cleanup();
});

async function newContext(): Promise<BrowserContext> {
  const context = await browser.newContext({ viewport: { width: 900, height: 640 } });
  contexts.push(context);
  return context;
}

/** Opens the demo and logs in as `name` (a new context has no user yet). */
async function logIn(page: Page, name: string): Promise<void> {
  page.on('pageerror', (error) => console.error(`[${name}] page error:`, error.message));
  await page.goto(demo.url);
  await page.fill('#name', name);
  await page.click('#login button[type=submit]');
  await page.waitForSelector('body[data-ready="true"]');
}

/** Opens a page where the user is already logged in (the same context). */
async function openLoggedIn(context: BrowserContext): Promise<Page> {
  const page = await context.newPage();
  await page.goto(demo.url);
  await page.waitForSelector('body[data-ready="true"]');
  return page;
}

async function addList(page: Page, name: string): Promise<void> {
  await page.fill('#new-list-name', name);
  await page.press('#new-list-name', 'Enter');
  await page.locator('.list.selected', { hasText: name }).waitFor();
  await page.waitForSelector('#sync-state[data-state="complete"]');
}

/** Adds a task to the selected list; returns its id. */
async function addTask(page: Page, title: string): Promise<string> {
  const before = await page.locator('.task').count();
  await page.fill('#new-task-title', title);
  await page.press('#new-task-title', 'Enter');
  await page.waitForFunction((n) => document.querySelectorAll('.task').length > n, before);
  return (await page.locator('.task').nth(before).getAttribute('data-id'))!;
}

const task = (page: Page, id: string) => page.locator(`.task[data-id="${id}"]`);

/** Waits until the task shows these values (the demo renders every change it gets). */
async function waitForTask(page: Page, id: string, expected: { title?: string; status?: string; minutes?: number; assignees?: string[] }): Promise<void> {
  await page.waitForFunction(
    ({ id, expected }) => {
      const row = document.querySelector(`.task[data-id="${id}"]`);
      if (!row) return false;
      const value = (selector: string) => (row.querySelector(selector) as HTMLInputElement | HTMLSelectElement).value;
      const assignees = [...row.querySelectorAll('.assignee')].map((a) => a.getAttribute('data-user')).sort();
      return (
        (expected.title === undefined || value('.title') === expected.title) &&
        (expected.status === undefined || value('.status') === expected.status) &&
        (expected.minutes === undefined || row.querySelector('.minutes')!.getAttribute('data-value') === String(expected.minutes)) &&
        (expected.assignees === undefined || JSON.stringify(assignees) === JSON.stringify([...expected.assignees].sort()))
      );
    },
    { id, expected },
  );
}

const pendingWrites = (page: Page) => page.locator('#pending').getAttribute('data-count').then(Number);
const waitForPending = (page: Page, check: 'none' | 'some') =>
  page.waitForFunction((check) => {
    const n = Number(document.querySelector('#pending')?.getAttribute('data-count'));
    return check === 'none' ? n === 0 : n > 0;
  }, check);

async function assign(page: Page, id: string, name: string): Promise<void> {
  await task(page, id).locator('.assign').fill(name);
  await task(page, id).locator('.assign').press('Enter');
}

describe('the demo in Chromium', { timeout: 180_000 }, () => {
  it('two users share a list; one edits offline, both see the merged task and the counter’s sum; a refused write shows a message', async () => {
    const listName = 'Launch';
    const [alice, bob] = [await (await newContext()).newPage(), await (await newContext()).newPage()];
    await withScreenshots('demo-two-users', [alice, bob], async () => {
      await logIn(alice, 'alice');
      await logIn(bob, 'bob');
      await addList(alice, listName);
      const id = await addTask(alice, 'Write docs');

      // Bob syncs Alice's list (a Flexible Sync subscription he changes) and gets her task.
      const list = bob.locator('.list', { hasText: listName });
      await list.click();
      await list.locator('input.sync').check();
      await task(bob, id).waitFor();

      await bob.context().setOffline(true);
      await bob.waitForSelector('#banner.shown');
      expect(await bob.locator('#connection').textContent()).toBe('disconnected');

      // Both edit the task: different fields, the same counter, the same assignee set.
      await task(alice, id).locator('.title').fill('Write the launch docs');
      await task(alice, id).locator('.title').press('Enter');
      await task(alice, id).locator('.plus').click();
      await waitForTask(alice, id, { minutes: 15 });
      await task(alice, id).locator('.plus').click();
      await assign(alice, id, 'alice');
      await task(bob, id).locator('.status').selectOption('IN_PROGRESS');
      await task(bob, id).locator('.plus').click();
      await assign(bob, id, 'bob');
      await waitForTask(bob, id, { title: 'Write docs', status: 'IN_PROGRESS', minutes: 15, assignees: ['bob'] });
      await waitForPending(bob, 'some');
      await waitForTask(alice, id, { title: 'Write the launch docs', status: 'TODO', minutes: 30, assignees: ['alice'] });
      await waitForPending(alice, 'none');

      await bob.context().setOffline(false);
      const merged = { title: 'Write the launch docs', status: 'IN_PROGRESS', minutes: 45, assignees: ['alice', 'bob'] };
      await waitForTask(bob, id, merged);
      await waitForTask(alice, id, merged);
      await waitForPending(bob, 'none');
      await bob.waitForSelector('#banner:not(.shown)', { state: 'attached' });

      // The demo's rules let only a task's creator delete it: Bob's delete is a compensating write.
      await task(bob, id).locator('.delete').click();
      await bob.locator('.message', { hasText: 'not allowed' }).waitFor();
      await waitForTask(bob, id, merged);
      expect(await task(alice, id).count()).toBe(1);
    });
  });

  it('a reload while offline keeps the local writes (IndexedDB); they sync once online', async () => {
    const context = await newContext();
    const page = await context.newPage();
    await withScreenshots('demo-offline-reload', [page], async () => {
      await logIn(page, 'carol');
      await addList(page, 'Errands');
      // The service worker serves the page offline.
      await page.waitForSelector('html[data-offline-ready="true"]');
      await context.setOffline(true);
      await page.waitForSelector('#banner.shown');
      const id = await addTask(page, 'Buy stamps');
      await task(page, id).locator('.plus').click();
      await waitForTask(page, id, { minutes: 15 });
      await waitForPending(page, 'some');

      await page.reload();
      await page.waitForSelector('body[data-ready="true"]');
      await page.locator('.list.selected', { hasText: 'Errands' }).waitFor();
      await waitForTask(page, id, { title: 'Buy stamps', minutes: 15 });
      await page.waitForSelector('#banner.shown');
      await waitForPending(page, 'some');
      const db = await openDb(gateway.database);
      expect(await db.collection('tasks').findOne({ _id: id as never })).toBeNull();

      await context.setOffline(false);
      await waitForPending(page, 'none');
      expect(await db.collection('tasks').findOne({ _id: id as never })).toMatchObject({ title: 'Buy stamps', minutesLogged: 15, ownerId: 'carol' });
    });
  });

  it('two tabs of one user share the data and one socket; when the syncing tab closes, the other takes over', async () => {
    const context = await newContext();
    const sockets: string[] = [];
    context.on('page', (page) => page.on('websocket', (ws) => sockets.push(ws.url())));
    const first = await context.newPage();
    await withScreenshots('demo-two-tabs', [first], async () => {
      await logIn(first, 'dave');
      await first.waitForSelector('#tab-role:text("this tab syncs")');
      await addList(first, 'Home');
      const second = await openLoggedIn(context);
      await withScreenshots('demo-two-tabs-second', [second], async () => {
        await second.waitForSelector('#tab-role:text("another tab syncs")');
        await second.locator('.list.selected', { hasText: 'Home' }).waitFor();
        // The follower shows the leader's connection.
        await second.waitForSelector('#connection:text("connected")');

        // A write in the follower shows in the leader at once, and the leader syncs it.
        const id = await addTask(second, 'Water plants');
        await waitForTask(first, id, { title: 'Water plants' });
        await task(first, id).locator('.plus').click();
        await waitForTask(second, id, { minutes: 15 });
        const db = await openDb(gateway.database);
        const stored = () => db.collection('tasks').findOne({ _id: id as never });
        await waitFor('the leader to sync the task', async () => (await stored())?.minutesLogged === 15 || null);
        expect(await stored()).toMatchObject({ title: 'Water plants', ownerId: 'dave' });
        expect(sockets.filter((url) => url === gateway.wsUrl)).toHaveLength(1);

        // A subscription change in the follower reaches the leader: unticking the list empties both tabs.
        await second.locator('.list', { hasText: 'Home' }).locator('input.sync').uncheck();
        await first.waitForFunction((id) => !document.querySelector(`.task[data-id="${id}"]`), id);
        await second.waitForFunction((id) => !document.querySelector(`.task[data-id="${id}"]`), id);
        await second.locator('.list', { hasText: 'Home' }).locator('input.sync').check();
        await waitForTask(first, id, { minutes: 15 });

        // The leader tab closes: the other one leads, opens its own socket, and syncs.
        await first.close();
        await second.waitForSelector('#tab-role:text("this tab syncs")');
        await second.waitForSelector('#connection:text("connected")');
        await task(second, id).locator('.plus').click();
        await waitFor('the new leader to sync the change', async () => (await stored())?.minutesLogged === 30 || null);
        // Each tab stamped its 15 minutes as its own node of the device (a Web Lock slot each).
        const counter = (await syncedDocument(db, 'tasks', id))!._sync.stamps.minutesLogged as Record<string, [number, number]>;
        const nodes = Object.keys(counter).sort();
        expect(nodes).toHaveLength(2);
        expect(nodes.map((n) => n.replace(/-t\d+$/, ''))).toEqual([nodes[0]!.replace(/-t\d+$/, ''), nodes[0]!.replace(/-t\d+$/, '')]);
        expect(nodes.map((n) => n.slice(n.lastIndexOf('-')))).toEqual(['-t0', '-t1']);
        expect(Object.values(counter)).toEqual([[15, 0], [15, 0]]);
        expect(sockets.filter((url) => url === gateway.wsUrl)).toHaveLength(2);
      });
    });
  });
});

afterAll(async () => {
  for (const context of contexts) await context.close().catch(() => {});
});
