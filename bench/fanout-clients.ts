// Child process: K subscribed clients, the load side of the fan-out and memory benchmarks.
//
//   node --import tsx bench/fanout-clients.ts --kind graphql-ws|ws --url ws://... --clients K
//        [--subscriptions streamTasks,streamProjects,watchTasks] [--token T | --auth-url URL]
//
// `graphql-ws` clients speak the gateway's protocol with plain graphql-ws (no RxDB, no urql):
// one socket each, one subscription per listed field. `ws` clients just open a socket and read
// JSON. Each delivered task whose title is `m:<epoch ms>` (see fanout.ts) counts as one delivery;
// its send and receive times go to the parent over IPC (see ClientsOut).
import { parseArgs } from 'node:util';
import { createClient, type Client } from 'graphql-ws/client';
import { WebSocket } from 'ws';
import type { StreamEvent } from '../protocol/messages.ts';
import { epochMs } from './common.ts';

export type ClientsIn = { type: 'progress' } | { type: 'report' };
export type ClientsOut =
  | { type: 'ready'; clients: number; connectMs: number; errors: number; firstError: string | null }
  | { type: 'progress'; delivered: number; errors: number }
  | {
      type: 'report';
      delivered: number;
      messages: number;
      /** Per delivery: the send time stamped in the title, and when the client got it (epoch ms). */
      sentAt: Float64Array;
      receivedAt: Float64Array;
      lastDeliveryAt: number;
      errors: number;
      firstError: string | null;
    };

const { values } = parseArgs({
  options: {
    kind: { type: 'string' },
    url: { type: 'string' },
    clients: { type: 'string' },
    subscriptions: { type: 'string', default: 'streamTasks' },
    token: { type: 'string' },
    'auth-url': { type: 'string' },
  },
});
const kind = values.kind as 'graphql-ws' | 'ws';
const url = values.url!;
const clientCount = Number(values.clients);
const fields = values.subscriptions!.split(',');
// connection_init credentials: --token shares one user among all clients (fan-out: every client
// may read what that user owns); --auth-url gives each client its own anonymous user (memory).
const authUrl = values['auth-url'];
async function connectionParams(): Promise<Record<string, unknown> | undefined> {
  if (authUrl) {
    const response = await fetch(authUrl, { method: 'POST' });
    if (!response.ok) throw new Error(`${authUrl}: HTTP ${response.status}`);
    return { authToken: ((await response.json()) as { token: string }).token };
  }
  return values.token ? { authToken: values.token } : undefined;
}

// Written out rather than taken from protocol/operations.ts: these are the unfiltered forms that
// the bare-yoga comparison server also serves (the gateway's optional arguments are left out).
const QUERIES: Record<string, string> = {
  streamTasks: 'subscription StreamTasks { streamTasks { documents checkpoint { seq } resync } }',
  streamProjects: 'subscription StreamProjects { streamProjects { documents checkpoint { seq } resync } }',
  watchTasks: 'subscription WatchTasks { watchTasks { id deleted } }',
};

const send = (message: ClientsOut) => process.send!(message);

let delivered = 0;
/** Stream events that carried measured documents (the gateway may batch several per event). */
let messages = 0;
let lastDeliveryAt = 0;
let errors = 0;
let firstError: string | null = null;
const sentAt: number[] = [];
const receivedAtList: number[] = [];
const closers: Array<() => void> = [];

function onError(error: unknown): void {
  errors++;
  firstError ??= error instanceof Error ? error.message : JSON.stringify(error);
}

function onEvent(event: StreamEvent, receivedAt: number): void {
  let measured = 0;
  for (const doc of event.documents) {
    const title = doc.title as string;
    if (!title.startsWith('m:')) continue; // warm-up writes
    measured++;
    sentAt.push(Number(title.slice(2)));
    receivedAtList.push(receivedAt);
  }
  if (measured === 0) return;
  delivered += measured;
  messages++;
  lastDeliveryAt = receivedAt;
}

/** One graphql-ws client; resolves once every stream subscription sent its first (resync) event. */
async function openGraphQLWs(): Promise<void> {
  const params = await connectionParams();
  const client: Client = createClient({ url, webSocketImpl: WebSocket, connectionParams: params, lazy: true, retryAttempts: 0, keepAlive: 0 });
  closers.push(() => void client.dispose());
  const subscribed = fields.map(
    (field) =>
      new Promise<void>((resolveSubscribed) => {
        // watch subscriptions have no initial event: count them as subscribed once sent.
        if (!field.startsWith('stream')) resolveSubscribed();
        client.subscribe<Record<string, StreamEvent>>(
          { query: QUERIES[field]! },
          {
            next: (result) => {
              const receivedAt = epochMs();
              if (result.errors) {
                onError(result.errors[0]);
                resolveSubscribed(); // refused: report it rather than wait forever
              }
              const event = result.data?.[field];
              if (!event) return;
              if (event.resync) resolveSubscribed();
              else if (field === 'streamTasks') onEvent(event, receivedAt);
            },
            error: (error) => {
              onError(error);
              resolveSubscribed();
            },
            // A live subscription never completes by itself: count that as a failure too.
            complete: () => {
              onError(new Error(`${field} completed`));
              resolveSubscribed();
            },
          },
        );
      }),
  );
  await Promise.all(subscribed);
}

function openPlainWs(): Promise<void> {
  return new Promise((resolveOpen) => {
    const socket = new WebSocket(url);
    closers.push(() => socket.terminate());
    socket.on('message', (data) => onEvent(JSON.parse(String(data)) as StreamEvent, epochMs()));
    socket.once('open', () => resolveOpen());
    socket.once('error', (error) => {
      onError(error);
      resolveOpen();
    });
  });
}

async function main(): Promise<void> {
  process.on('disconnect', () => {
    // The parent closed the channel: close every socket and leave.
    closers.forEach((close) => close());
    setTimeout(() => process.exit(0), 200).unref();
  });
  process.on('message', (message: ClientsIn) => {
    if (message.type === 'progress') send({ type: 'progress', delivered, errors });
    if (message.type === 'report') {
      send({
        type: 'report',
        delivered,
        messages,
        sentAt: Float64Array.from(sentAt),
        receivedAt: Float64Array.from(receivedAtList),
        lastDeliveryAt,
        errors,
        firstError,
      });
    }
  });

  const started = Date.now();
  const open = kind === 'ws' ? openPlainWs : openGraphQLWs;
  // Connect in waves: a thousand simultaneous handshakes would overflow the listen backlog.
  for (let opened = 0; opened < clientCount; ) {
    const wave = Math.min(100, clientCount - opened);
    await Promise.all(Array.from({ length: wave }, open));
    opened += wave;
  }
  send({ type: 'ready', clients: clientCount, connectMs: Date.now() - started, errors, firstError });
}

void main();
