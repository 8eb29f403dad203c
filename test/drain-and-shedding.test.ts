// Issue 17: an instance sheds load with a clear close code (1013) rather than falling over, and
// drains before a restart: /ready says 503, new sessions are sent away (1012), open sockets are
// closed with 1012 once their writes are acknowledged.
import { WebSocket } from 'ws';
import type { CollectionStore } from '../gateway/store/collection-store.ts';
import { afterEach, describe, expect, it } from 'vitest';
import { CLOSE_CODES } from '../protocol/messages.ts';
import { loadModel } from '../protocol/model.ts';
import { syncOperations } from '../protocol/operations.ts';
import { cleanup, newTask, openDb, openTestClient, SCHEMA, startTestGateway, testToken, waitFor } from './helpers/harness.ts';

afterEach(cleanup);

type Outcome = { acked: true; socket: WebSocket; messages: Array<Record<string, any>>; closed: Promise<{ code: number; reason: string }> } | { acked: false; code: number; reason: string };

/** A graphql-ws session by hand: connection_init, then acked or closed. */
async function session(wsUrl: string): Promise<Outcome> {
  const token = await testToken();
  const socket = new WebSocket(wsUrl, 'graphql-transport-ws');
  const messages: Array<Record<string, any>> = [];
  const closed = new Promise<{ code: number; reason: string }>((resolve) => socket.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  socket.on('message', (data) => messages.push(JSON.parse(String(data))));
  socket.once('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: { authToken: token } })));
  return Promise.race([
    waitFor('connection_ack', () => messages.some((m) => m.type === 'connection_ack'), 20_000).then(() => ({ acked: true as const, socket, messages, closed })),
    closed.then(({ code, reason }) => ({ acked: false as const, code, reason })),
  ]);
}

describe('load shedding', () => {
  it('refuses sessions past the start rate with 1013, and the SDK clients refused come back by themselves', async () => {
    const gateway = await startTestGateway({ maxSessionStartsPerSecond: 3 });
    const outcomes = await Promise.all(Array.from({ length: 12 }, () => session(gateway.wsUrl)));
    const refused = outcomes.filter((o) => !o.acked);
    // A second's worth (3) at once, then 3 a second: most of 12 at once are refused.
    expect(outcomes.filter((o) => o.acked).length).toBeLessThanOrEqual(4);
    expect(refused.length).toBeGreaterThanOrEqual(8);
    for (const o of refused) expect(o).toMatchObject({ code: CLOSE_CODES.TRY_AGAIN_LATER, reason: expect.stringMatching(/too many sessions starting.*try again later/) });
    for (const o of outcomes) if (o.acked) o.socket.close();

    const clients = await Promise.all(Array.from({ length: 6 }, () => openTestClient(gateway.wsUrl)));
    await waitFor('every SDK client connected in the end', () => clients.every((c) => c.connectionState === 'connected'), 30_000);
    const metrics = await (await fetch(new URL('/metrics', gateway.httpUrl))).text();
    expect(metrics).toMatch(/tributary_sessions_refused_total\{reason="rate"\} ([89]|\d\d)/);
  });

  it('refuses sessions past TRIBUTARY_MAX_CONNECTIONS with 1013, and takes new ones once some have left', async () => {
    const gateway = await startTestGateway({ maxConnections: 2 });
    const first = await session(gateway.wsUrl);
    const second = await session(gateway.wsUrl);
    expect(first.acked && second.acked).toBe(true);
    expect(await session(gateway.wsUrl)).toMatchObject({ acked: false, code: CLOSE_CODES.TRY_AGAIN_LATER, reason: expect.stringContaining('at capacity (2 connections)') });
    if (first.acked) {
      first.socket.close();
      await first.closed;
    }
    await waitFor('a session is taken again', async () => (await session(gateway.wsUrl)).acked);
  });
});

describe('drain', () => {
  it('answers /ready with 503, sends new sessions away with 1012, and closes each socket with 1012 after its write was acknowledged', async () => {
    const gateway = await startTestGateway();
    const readyUrl = new URL('/ready', gateway.httpUrl);
    expect((await fetch(readyUrl)).status).toBe(200);
    // The writer's socket is the first to be closed: without the wait, at once.
    const writer = await session(gateway.wsUrl);
    const idle = await Promise.all(Array.from({ length: 5 }, () => session(gateway.wsUrl)));
    if (!writer.acked || idle.some((o) => !o.acked)) throw new Error('sessions not started');

    // A push big enough to be under way when the drain begins.
    const push = syncOperations(loadModel(SCHEMA).collections.find((c) => c.name === 'tasks')!).push;
    const rows = Array.from({ length: 300 }, () => ({ assumedMasterState: null, newDocumentState: { ...newTask(), _deleted: false } }));
    writer.socket.send(JSON.stringify({ id: 'push', type: 'subscribe', payload: { query: push, variables: { rows } } }));
    await new Promise((r) => setTimeout(r, 20));
    const draining = gateway.drain(2_000);

    const ready = await fetch(readyUrl);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ ready: false, draining: true });
    expect(await session(gateway.wsUrl)).toMatchObject({ acked: false, code: CLOSE_CODES.SERVICE_RESTART });

    await draining;
    expect(await writer.closed).toMatchObject({ code: CLOSE_CODES.SERVICE_RESTART });
    // The push's answer came before the close: its rows were written, and the client knows it.
    const answer = writer.messages.find((m) => m.id === 'push' && m.type === 'next');
    expect(answer?.payload?.errors).toBeUndefined();
    expect(answer?.payload?.data).toBeDefined();
    for (const o of idle) if (o.acked) expect(await o.closed).toMatchObject({ code: CLOSE_CODES.SERVICE_RESTART, reason: expect.stringContaining('reconnect') });
    const db = await openDb(gateway.database);
    expect(await db.collection('tasks').countDocuments()).toBe(300);
  });

  it('stops with a write still stuck once TRIBUTARY_DRAIN_MS has passed, not never', async () => {
    const gateway = await startTestGateway({ drainMs: 500 });
    const { store, writer } = gateway.collections.get('tasks')!;
    // A store that never answers this write (a stopped instance would otherwise renew the
    // write's store locks for as long as it runs, and its peers' writes of them would wait).
    store.writeMany = (() => new Promise(() => {})) as CollectionStore['writeMany'];
    void writer.push([{ assumedMasterState: null, newDocumentState: { ...newTask(), _deleted: false } }]);
    await new Promise((r) => setTimeout(r, 100));
    const began = Date.now();
    await gateway.stop();
    expect(Date.now() - began).toBeGreaterThanOrEqual(450);
    expect(Date.now() - began).toBeLessThan(5_000);
  });
});
