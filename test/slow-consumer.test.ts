// A client that stops reading cannot grow the gateway's memory without bound: its socket is
// dropped once its unsent bytes pass the limit, while clients that read stay connected.
import { afterEach, describe, expect, it } from 'vitest';
import { createClient } from 'graphql-ws/client';
import { WebSocket } from 'ws';
import { syncOperations } from '../protocol/operations.ts';
import { cleanup, graphqlHttp, newTask, startTestGateway, testToken, waitFor } from './helpers/harness.ts';

afterEach(cleanup);

describe('slow consumers', () => {
  it('drops a socket that stops reading and keeps one that reads', async () => {
    const gateway = await startTestGateway({ maxBufferedBytes: 256 * 1024 });
    const ops = syncOperations(gateway.model.collections.find((c) => c.name === 'tasks')!);

    // A raw graphql-ws conversation whose TCP reading we can stop.
    const stalled = new WebSocket(gateway.wsUrl, 'graphql-transport-ws');
    const closed = new Promise<void>((r) => stalled.once('close', () => r()));
    await new Promise((r) => stalled.once('open', r));
    stalled.send(JSON.stringify({ type: 'connection_init', payload: { authToken: await testToken() } }));
    await new Promise((r) => stalled.once('message', r)); // connection_ack
    stalled.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: ops.stream } }));
    await new Promise((r) => stalled.once('message', r)); // the resync event
    (stalled as unknown as { _socket: { pause(): void } })._socket.pause();

    let received = 0;
    const reader = createClient({ url: gateway.wsUrl, webSocketImpl: WebSocket, lazy: false, connectionParams: { authToken: await testToken() } });
    reader.subscribe({ query: ops.stream }, { next: (e) => (received += (e.data?.streamTasks as { documents: unknown[] }).documents.length), error: () => {}, complete: () => {} });
    await new Promise((r) => setTimeout(r, 200));

    // ~8 MB of changes: more than the kernel's buffers of a stalled loopback socket take (about
    // 4 MB here), so the rest waits in the gateway.
    const bulky = () => ({ ...newTask({ description: 'x'.repeat(4_000) }), _deleted: false });
    for (let i = 0; i < 20; i++) {
      await graphqlHttp(gateway.httpUrl, ops.push, { rows: Array.from({ length: 100 }, () => ({ assumedMasterState: null, newDocumentState: bulky() })) });
    }

    await waitFor('the reading client got every change', () => received === 2_000);
    await new Promise((r) => setTimeout(r, 1_500)); // one sweep of the gateway
    (stalled as unknown as { _socket: { resume(): void } })._socket.resume();
    await closed;
    expect(stalled.readyState).toBe(WebSocket.CLOSED);
    await reader.dispose();
  });
});
