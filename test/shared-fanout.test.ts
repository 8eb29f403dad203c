// Issue 16, point 2: sync stream subscribers over graphql-ws whose views select the same
// documents share one evaluation and one rendered payload per event. Each still gets its own
// frame with its own operation id, only what its own permissions allow, and the selection set it
// asked for. Raw graphql-ws sockets, so the frames are seen as they are on the wire.
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { syncOperations } from '../protocol/operations.ts';
import { cleanup, newTask, rulesFixture, startTestGateway, testToken, waitFor } from './helpers/harness.ts';

afterEach(cleanup);

type Gateway = Awaited<ReturnType<typeof startTestGateway>>;

interface Frame {
  id?: string;
  type: string;
  payload?: { data?: Record<string, { documents: Array<Record<string, unknown>>; checkpoint?: { seq: number; epoch?: string } | null; resync?: boolean }>; errors?: unknown[] };
}

interface RawSocket {
  frames: Frame[];
  /** The `next` payloads as sent (the text after `"payload":`), for comparing frames byte for byte. */
  payloads: string[];
  send(message: unknown): void;
  close(): void;
}

async function openSocket(gateway: Gateway, user: string, claims: Record<string, unknown> = {}): Promise<RawSocket> {
  const ws = new WebSocket(gateway.wsUrl, 'graphql-transport-ws');
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  const socket: RawSocket = {
    frames: [],
    payloads: [],
    send: (message) => ws.send(JSON.stringify(message)),
    close: () => ws.close(),
  };
  ws.on('message', (data) => {
    const text = String(data);
    const frame = JSON.parse(text) as Frame;
    socket.frames.push(frame);
    if (frame.type === 'next') socket.payloads.push(text.slice(text.indexOf('"payload":') + '"payload":'.length, -1));
  });
  socket.send({ type: 'connection_init', payload: { authToken: await testToken(user, claims) } });
  await waitFor('connection_ack', () => socket.frames.some((f) => f.type === 'connection_ack'));
  return socket;
}

/** Ids of the documents the socket's subscription `id` received, in order (the resync left out). */
function received(socket: RawSocket, id: string, field = 'streamTasks'): string[] {
  return socket.frames.filter((f) => f.id === id && f.type === 'next').flatMap((f) => f.payload!.data![field]!.documents.map((d) => String(d.id)));
}

async function scrape(gateway: Gateway, name: string): Promise<number> {
  const text = await (await fetch(`${new URL(gateway.httpUrl).origin}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{collection="tasks"}`));
  return line ? Number(line.split(' ')[1]) : 0;
}

async function pushAs(gateway: Gateway, tasks: Array<Record<string, unknown>>): Promise<void> {
  const result = await gateway.collections.get('tasks')!.writer.push(tasks.map((t) => ({ assumedMasterState: null, newDocumentState: { ...t, _deleted: false } })));
  expect(result.rejected).toEqual([]);
}

describe('shared fan-out over graphql-ws', () => {
  it('renders each event once per view and operation, and sends it to every subscriber under its own id', async () => {
    // Everyone reads everything (public-read): users with the same view share, whoever they are.
    const gateway = await startTestGateway({ rulesPath: rulesFixture('public-read') });
    const query = syncOperations(gateway.model.collections.find((c) => c.name === 'tasks')!).stream;
    // Another selection set over the same view: an alias, no epoch, a typename.
    const aliased = 'subscription { s: streamTasks { __typename documents checkpoint { seq } } }';

    const sockets: RawSocket[] = [];
    for (const user of ['ann', 'bob', 'cat']) for (let i = 0; i < 4; i++) sockets.push(await openSocket(gateway, user));
    sockets.forEach((socket, i) => {
      socket.send({ id: `sdk-${i}`, type: 'subscribe', payload: { query } });
      if (i % 2 === 0) socket.send({ id: `alias-${i}`, type: 'subscribe', payload: { query: aliased } });
    });
    const aliasCount = sockets.filter((_, i) => i % 2 === 0).length;
    // Every subscription starts with its resync event.
    await waitFor('every subscription got its resync', () => sockets.every((s, i) => s.frames.filter((f) => f.type === 'next').length === (i % 2 === 0 ? 2 : 1)));

    const renderedBefore = await scrape(gateway, 'tributary_stream_payloads_rendered_total');
    const tasks = Array.from({ length: 5 }, (_, i) => newTask({ id: `shared-${i}`, ownerId: i % 2 ? 'ann' : 'bob' }));
    for (const task of tasks) await pushAs(gateway, [task]);
    const ids = tasks.map((t) => t.id);
    await waitFor('every subscriber got every task', () =>
      sockets.every((s, i) => received(s, `sdk-${i}`).length === ids.length && (i % 2 !== 0 || received(s, `alias-${i}`, 's').length === ids.length)),
    );
    await new Promise((r) => setTimeout(r, 200)); // nothing more arrives
    const renderedAfter = await scrape(gateway, 'tributary_stream_payloads_rendered_total');

    sockets.forEach((socket, i) => {
      expect(received(socket, `sdk-${i}`)).toEqual(ids); // each once, in order
      if (i % 2 === 0) expect(received(socket, `alias-${i}`, 's')).toEqual(ids);
      // Frames are graphql-ws `next` messages under the subscription's own id, with its selection.
      for (const frame of socket.frames.filter((f) => f.type === 'next' && f.id === `sdk-${i}` && !f.payload!.data!.streamTasks!.resync)) {
        expect(Object.keys(frame)).toEqual(['id', 'type', 'payload']);
        expect(frame.payload!.data!.streamTasks!.checkpoint).toEqual({ seq: expect.any(Number), epoch: expect.stringMatching(/^.+\.0\.0$/) });
      }
      for (const frame of socket.frames.filter((f) => f.type === 'next' && f.id === `alias-${i}`)) {
        expect(Object.keys(frame.payload!.data!)).toEqual(['s']);
        expect(frame.payload!.data!.s).toEqual({ __typename: 'SyncStreamEvent', documents: expect.any(Array), checkpoint: frame.payload!.data!.s!.checkpoint });
        expect(Object.keys(frame.payload!.data!.s!.checkpoint ?? {})).not.toContain('epoch');
      }
    });

    // One payload per event and operation, shared: the same text reached every subscriber of it.
    const distinct = new Set(sockets.flatMap((s) => s.payloads).filter((p) => !p.includes('"resync":true') && p !== '{"data":{"s":{"__typename":"SyncStreamEvent","documents":[],"checkpoint":null}}}'));
    const events = new Set(sockets[0]!.frames.filter((f) => f.id === 'sdk-0' && f.type === 'next' && !f.payload!.data!.streamTasks!.resync).map((f) => f.payload!.data!.streamTasks!.checkpoint!.seq)).size;
    expect(distinct.size).toBe(events * 2);
    expect(renderedAfter - renderedBefore).toBe(distinct.size);
    const deliveries = sockets.length * events + aliasCount * events;
    expect(renderedAfter - renderedBefore).toBeLessThan(deliveries / 5);
  });

  it('keeps apart subscribers whose permissions differ, in the same batch', async () => {
    // A lead reads every task whole; an assignee only its own tasks, without description or priority.
    const gateway = await startTestGateway({ rulesPath: rulesFixture('hidden-fields') });
    const query = syncOperations(gateway.model.collections.find((c) => c.name === 'tasks')!).stream;
    const lead = await openSocket(gateway, 'lead-1', { role: 'lead' });
    const dora = await openSocket(gateway, 'dora');
    const eve = await openSocket(gateway, 'eve');
    for (const socket of [lead, dora, eve]) socket.send({ id: '1', type: 'subscribe', payload: { query } });
    await waitFor('resyncs', () => [lead, dora, eve].every((s) => s.frames.some((f) => f.type === 'next')));

    const forDora = newTask({ id: 'for-dora', assigneeIds: ['dora'], description: 'dora’s secret', priority: 5 });
    const forEve = newTask({ id: 'for-eve', assigneeIds: ['eve'], description: 'eve’s secret', priority: 4 });
    await pushAs(gateway, [forDora, forEve]); // one write, one batch
    await waitFor('the lead got both', () => received(lead, '1').length === 2);
    await waitFor('dora got hers', () => received(dora, '1').length === 1);
    await waitFor('eve got hers', () => received(eve, '1').length === 1);
    await new Promise((r) => setTimeout(r, 300));

    const documents = (socket: RawSocket) => socket.frames.filter((f) => f.type === 'next').flatMap((f) => f.payload!.data!.streamTasks!.documents);
    expect(documents(lead).map((d) => [d.id, d.description])).toEqual([
      ['for-dora', 'dora’s secret'],
      ['for-eve', 'eve’s secret'],
    ]);
    expect(documents(dora).map((d) => d.id)).toEqual(['for-dora']);
    expect(documents(eve).map((d) => d.id)).toEqual(['for-eve']);
    for (const d of [...documents(dora), ...documents(eve)]) {
      expect(d).not.toHaveProperty('description');
      expect(d).not.toHaveProperty('priority');
    }
    expect(JSON.stringify(eve.frames)).not.toContain('dora');
    expect(JSON.stringify(dora.frames)).not.toContain('eve');
  });

  it('stops a subscription’s frames at its complete, and the socket’s other subscriptions go on', async () => {
    const gateway = await startTestGateway({ rulesPath: rulesFixture('public-read') });
    const query = syncOperations(gateway.model.collections.find((c) => c.name === 'tasks')!).stream;
    const socket = await openSocket(gateway, 'ann');
    socket.send({ id: 'a', type: 'subscribe', payload: { query } });
    socket.send({ id: 'b', type: 'subscribe', payload: { query } });
    await waitFor('resyncs', () => socket.frames.filter((f) => f.type === 'next').length === 2);
    await pushAs(gateway, [newTask({ id: 'first' })]);
    await waitFor('both got the first', () => received(socket, 'a').length === 1 && received(socket, 'b').length === 1);

    socket.send({ id: 'a', type: 'complete' });
    await new Promise((r) => setTimeout(r, 100));
    await pushAs(gateway, [newTask({ id: 'second' })]);
    await waitFor('b got the second', () => received(socket, 'b').length === 2);
    await new Promise((r) => setTimeout(r, 300));
    expect(received(socket, 'a')).toEqual(['first']);
    expect(received(socket, 'b')).toEqual(['first', 'second']);
    // The id is free again: a new subscription under it starts afresh with its resync.
    socket.send({ id: 'a', type: 'subscribe', payload: { query } });
    await pushAs(gateway, [newTask({ id: 'third' })]);
    await waitFor('the new a got the third', () => received(socket, 'a').includes('third'));
    expect(received(socket, 'a')).toEqual(['first', 'third']);
  });
});
