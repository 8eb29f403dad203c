// /health is liveness: 200 without any token (a load balancer or orchestrator has none);
// /ready stays the readiness check that pings the store.
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, startTestGateway } from './helpers/harness.ts';

afterEach(cleanup);

describe('/health', () => {
  it('answers 200 {"status":"up"} without a token, and /ready still pings the store', async () => {
    const gateway = await startTestGateway();
    const base = new URL(gateway.httpUrl).origin;

    const health = await fetch(`${base}/health`);
    expect(health.status).toBe(200);
    expect(health.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await health.json()).toEqual({ status: 'up' });

    // A bad token changes nothing: liveness is not about who asks.
    const withJunk = await fetch(`${base}/health?probe=1`, { headers: { authorization: 'Bearer not-a-token' } });
    expect(withJunk.status).toBe(200);

    expect((await fetch(`${base}/health`, { method: 'POST' })).status).toBe(405);

    const ready = await fetch(`${base}/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ ready: true });
  });
});
