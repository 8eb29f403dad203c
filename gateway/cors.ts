// Browser apps on another origin (CORS). Credentials are bearer tokens the page holds, never
// cookies, so a page of any origin can do only what a token it holds allows: by default every
// origin may call the gateway (TRIBUTARY_CORS_ORIGINS unset or `*`). A list of origins restricts
// HTTP (no CORS headers and a refused preflight for others) and WebSocket upgrades alike.
import type { IncomingMessage, ServerResponse } from 'node:http';

/** `*`, or the exact origins (`scheme://host[:port]`) allowed. */
export type AllowedOrigins = '*' | readonly string[];

export function originsFromEnv(raw: string | undefined): AllowedOrigins {
  if (raw === undefined || raw.trim() === '' || raw.trim() === '*') return '*';
  const origins = raw.split(',').map((o) => o.trim()).filter(Boolean);
  for (const origin of origins) {
    let parsed: URL;
    try {
      parsed = new URL(origin);
    } catch {
      throw new Error(`TRIBUTARY_CORS_ORIGINS: "${origin}" is not an origin (scheme://host[:port], e.g. https://app.example.com)`);
    }
    if (parsed.origin !== origin) throw new Error(`TRIBUTARY_CORS_ORIGINS: "${origin}" is not an origin; did you mean "${parsed.origin}"?`);
  }
  return origins;
}

/** A request without an Origin header is not a browser's cross-origin request: allowed. */
export function originAllowed(allowed: AllowedOrigins, origin: string | undefined): boolean {
  return origin === undefined || allowed === '*' || allowed.includes(origin);
}

/**
 * Sets the CORS headers an allowed origin gets on every answer (errors included, so the page can
 * read why), and answers preflights: returns true when the request was one.
 */
export function applyCors(allowed: AllowedOrigins, req: IncomingMessage, res: ServerResponse): boolean {
  const origin = req.headers.origin;
  const permitted = origin !== undefined && originAllowed(allowed, origin);
  if (permitted) {
    res.setHeader('access-control-allow-origin', allowed === '*' ? '*' : origin);
    if (allowed !== '*') res.setHeader('vary', 'Origin');
  }
  if (req.method !== 'OPTIONS' || req.headers['access-control-request-method'] === undefined) return false;
  if (!permitted) {
    res.writeHead(403, { 'content-type': 'text/plain' });
    res.end('origin not allowed (TRIBUTARY_CORS_ORIGINS)');
    return true;
  }
  res.writeHead(204, {
    'access-control-allow-methods': 'GET, POST, DELETE, OPTIONS',
    'access-control-allow-headers': 'authorization, content-type',
    'access-control-max-age': '600',
  });
  res.end();
  return true;
}
