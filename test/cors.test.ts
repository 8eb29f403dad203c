// Browser apps served from another origin than the gateway's (CORS, gateway/cors.ts): by default
// any origin may call it (tokens, not cookies, carry the credentials); TRIBUTARY_CORS_ORIGINS
// restricts HTTP and WebSocket alike. Checked with raw requests, and in Chromium, whose
// preflights and CORS checks are the real thing.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { configFromEnv } from '../gateway/config.ts';
import { launchBrowser, withScreenshots } from './helpers/browser.ts';
import { cleanup, openDb, startTestGateway, testToken } from './helpers/harness.ts';

afterEach(cleanup);

const APP = 'https://app.example.test';

const preflight = (url: string, origin: string) =>
  fetch(url, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' } });

/** Whether a WebSocket from `origin` gets through the upgrade (undefined: no Origin header, as Node clients). */
function socketOpens(wsUrl: string, origin?: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new WebSocket(wsUrl, 'graphql-transport-ws', origin ? { origin } : {});
    socket.on('open', () => {
      socket.close();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

describe('CORS', () => {
  it('by default, any origin: preflights are answered, and every answer (errors too) carries the header', async () => {
    const gateway = await startTestGateway();
    const answer = await preflight(gateway.httpUrl, APP);
    expect(answer.status).toBe(204);
    expect(answer.headers.get('access-control-allow-origin')).toBe('*');
    expect(answer.headers.get('access-control-allow-headers')).toContain('authorization');
    expect(answer.headers.get('access-control-allow-methods')).toContain('POST');

    const anonymous = await fetch(`${gateway.httpUrl.replace(/\/graphql$/, '')}/auth/anonymous`, { method: 'POST', headers: { origin: APP } });
    expect(anonymous.status).toBe(200);
    expect(anonymous.headers.get('access-control-allow-origin')).toBe('*');
    const query = (token: string) => fetch(gateway.httpUrl, { method: 'POST', headers: { origin: APP, 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ query: '{ viewer { id } }' }) });
    const answered = await query(await testToken('ann'));
    expect(await answered.json()).toEqual({ data: { viewer: { id: 'ann' } } });
    expect(answered.headers.get('access-control-allow-origin')).toBe('*');
    const refused = await query('not-a-token');
    expect(refused.status).toBe(401);
    expect(refused.headers.get('access-control-allow-origin'), 'the page can read why it was refused').toBe('*');
    expect(await socketOpens(gateway.wsUrl, APP)).toBe(true);
  });

  it('TRIBUTARY_CORS_ORIGINS: listed origins only, over HTTP and WebSocket; clients without an Origin (servers, Node) as before', async () => {
    const gateway = await startTestGateway({ corsOrigins: [APP] });
    const allowed = await preflight(gateway.httpUrl, APP);
    expect(allowed.status).toBe(204);
    expect(allowed.headers.get('access-control-allow-origin')).toBe(APP);
    expect(allowed.headers.get('vary')).toBe('Origin');

    const other = 'https://evil.example.test';
    expect((await preflight(gateway.httpUrl, other)).status).toBe(403);
    const direct = await fetch(gateway.httpUrl, { method: 'POST', headers: { origin: other, 'content-type': 'application/json', authorization: `Bearer ${await testToken()}` }, body: JSON.stringify({ query: '{ viewer { id } }' }) });
    expect(direct.headers.get('access-control-allow-origin'), 'no CORS header: a browser keeps the answer from the page').toBeNull();

    expect(await socketOpens(gateway.wsUrl, APP)).toBe(true);
    expect(await socketOpens(gateway.wsUrl, other)).toBe(false);
    expect(await socketOpens(gateway.wsUrl)).toBe(true);
  });

  it('a bad TRIBUTARY_CORS_ORIGINS is refused at start, saying what an origin is', () => {
    expect(configFromEnv({ TRIBUTARY_CORS_ORIGINS: '*' }).corsOrigins).toBe('*');
    expect(configFromEnv({ TRIBUTARY_CORS_ORIGINS: 'https://a.example, http://localhost:5173' }).corsOrigins).toEqual(['https://a.example', 'http://localhost:5173']);
    expect(() => configFromEnv({ TRIBUTARY_CORS_ORIGINS: 'app.example.com' })).toThrow(/"app.example.com" is not an origin \(scheme:\/\/host\[:port\]/);
    expect(() => configFromEnv({ TRIBUTARY_CORS_ORIGINS: 'https://app.example.com/' })).toThrow(/did you mean "https:\/\/app.example.com"/);
  });

  it('in Chromium, a page of another origin logs in anonymously, writes over HTTP and opens a socket', async () => {
    const gateway = await startTestGateway({ rulesPath: 'rules' });
    // The page's own origin: another port than the gateway's.
    const page$: Server = createServer((_, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><title>app</title>');
    });
    await new Promise<void>((r) => page$.listen(0, '127.0.0.1', r));
    const pageUrl = `http://127.0.0.1:${(page$.address() as AddressInfo).port}/`;
    const browser = await launchBrowser();
    try {
      const page = await browser.newPage();
      await page.goto(pageUrl);
      const result = await withScreenshots('cors-cross-origin', [page], () =>
        page.evaluate(
          async ({ http, ws }) => {
            const base = http.replace(/\/graphql$/, '');
            const { token, userId } = await (await fetch(`${base}/auth/anonymous`, { method: 'POST' })).json();
            const inserted = await (
              await fetch(http, {
                method: 'POST',
                headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
                body: JSON.stringify({ query: 'mutation ($me: String!) { insertTask(input: {id: "from-page", ownerId: $me, title: "cross-origin", status: TODO, priority: 1, tags: []}) { id } }', variables: { me: userId } }),
              })
            ).json();
            const socket = await new Promise<string>((resolve) => {
              // The page's own WebSocket (not the `ws` this file imports for Node).
              const PageSocket = (globalThis as unknown as { WebSocket: typeof WebSocket }).WebSocket;
              const s = new PageSocket(ws, 'graphql-transport-ws');
              s.onopen = () => s.send(JSON.stringify({ type: 'connection_init', payload: { authToken: token } }));
              s.onmessage = (event: { data: unknown }) => {
                resolve(JSON.parse(String(event.data)).type);
                s.close();
              };
              s.onerror = () => resolve('error');
            });
            return { inserted, socket };
          },
          { http: gateway.httpUrl, ws: gateway.wsUrl },
        ),
      );
      expect(result).toEqual({ inserted: { data: { insertTask: { id: 'from-page' } } }, socket: 'connection_ack' });
      expect(await (await openDb(gateway.database)).collection('tasks').findOne({ _id: 'from-page' as never })).toMatchObject({ title: 'cross-origin' });
    } finally {
      await browser.close();
      await new Promise((r) => page$.close(r));
    }
  });
});
