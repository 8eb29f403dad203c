// The demo's web server: the page, its bundle (demo/app.ts, built with bundleForBrowser when the
// server starts) and its service worker. It proxies nothing: the page talks to the gateway at the
// URL given here, itself.
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { resolve } from 'node:path';
import { bundleForBrowser } from './bundle.ts';

export interface DemoServerOptions {
  /** The gateway's GraphQL endpoint over HTTP, e.g. http://127.0.0.1:4000/graphql (Gateway.httpUrl). */
  gatewayHttpUrl: string;
  /** Its WebSocket endpoint (Gateway.wsUrl). */
  gatewayWsUrl: string;
  /** schema.graphql's text: the collections the page opens. */
  schema: string;
  /** 0 (default) picks a free port. */
  port?: number;
  host?: string;
}

export interface DemoServer {
  /** The page, e.g. http://127.0.0.1:5173/ */
  url: string;
  close(): Promise<void>;
}

const HERE = import.meta.dirname;

export async function startDemoServer(options: DemoServerOptions): Promise<DemoServer> {
  for (const key of ['gatewayHttpUrl', 'gatewayWsUrl'] as const) {
    if (!/^(https?|wss?):\/\//.test(options[key] ?? '')) throw new Error(`startDemoServer: ${key} must be an absolute URL, got ${JSON.stringify(options[key])}`);
  }
  const { code } = await bundleForBrowser({ entry: resolve(HERE, 'app.ts') });
  const config = { gatewayHttpUrl: options.gatewayHttpUrl, gatewayWsUrl: options.gatewayWsUrl, schema: options.schema };
  // `<` escaped: the schema's text cannot end the script element.
  const page = (await readFile(resolve(HERE, 'index.html'), 'utf8')).replace('/*CONFIG*/', `window.TRIBUTARY_DEMO = ${JSON.stringify(config).replace(/</g, '\\u003c')};`);
  const worker = await readFile(resolve(HERE, 'sw.js'), 'utf8');
  const files: Record<string, { type: string; body: string }> = {
    '/': { type: 'text/html; charset=utf-8', body: page },
    '/app.js': { type: 'text/javascript; charset=utf-8', body: code },
    '/sw.js': { type: 'text/javascript; charset=utf-8', body: worker },
  };
  const server: Server = createServer((req, res) => {
    const file = req.method === 'GET' ? files[new URL(req.url ?? '/', 'http://x').pathname] : undefined;
    if (!file) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': file.type, 'cache-control': 'no-cache' });
    res.end(file.body);
  });
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(options.port ?? 0, host, ok);
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  return {
    url: `http://${host}:${port}/`,
    close: () => new Promise<void>((ok) => server.close(() => ok())),
  };
}
