// Child process: one server for the memory benchmark, alone in its process so that its RSS is
// not mixed with the other servers' (freed memory that a process keeps would otherwise be
// reused by the next server and flatter it). Run with --expose-gc (and a fixed young generation,
// see memory.ts).
//
//   node --expose-gc --import tsx bench/memory-server.ts --target gateway|yoga|ws [--mongo URI --database NAME]
import { parseArgs } from 'node:util';
import { writeHeapSnapshot } from 'node:v8';
import { pino } from 'pino';
import { startGateway } from '../gateway/server.ts';
import { anonymousUser, sleep } from './common.ts';
import { startBareYoga, startWsBroadcast } from './servers.ts';

export type MemoryServerIn = { type: 'measure'; heapSnapshot?: string };
export type MemoryServerOut =
  /** authUrl: where each client gets its own anonymous user, when the server has users. */
  | { type: 'listening'; wsUrl: string; authUrl?: string }
  | { type: 'memory'; rss: number; heapUsed: number; external: number };

const { values } = parseArgs({ options: { target: { type: 'string' }, mongo: { type: 'string' }, database: { type: 'string' } } });
const send = (message: MemoryServerOut) => process.send!(message);

async function start(): Promise<{ wsUrl: string; authUrl?: string; stop(): Promise<void> }> {
  switch (values.target) {
    case 'gateway': {
      const gateway = await startGateway({ mongoUri: values.mongo!, database: values.database!, port: 0, logger: pino({ level: 'warn' }, pino.destination(2)) });
      const authUrl = (await anonymousUser(gateway.httpUrl)) ? new URL('/auth/anonymous', gateway.httpUrl).href : undefined;
      return { wsUrl: gateway.wsUrl, authUrl, stop: () => gateway.stop() };
    }
    case 'yoga':
      return startBareYoga();
    case 'ws':
      return startWsBroadcast();
    default:
      throw new Error(`unknown --target ${values.target}`);
  }
}

/** Memory after full collections, settled: what the connections keep alive, not garbage. */
async function measure(): Promise<MemoryServerOut> {
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < 3; i++) {
    gc?.();
    await sleep(100);
  }
  const { rss, heapUsed, external } = process.memoryUsage();
  return { type: 'memory', rss, heapUsed, external };
}

const server = await start();
process.on('message', (message: MemoryServerIn) => {
  if (message.type === 'measure') {
    void measure().then((memory) => {
      // After measuring: a snapshot takes memory of its own.
      if (message.heapSnapshot) writeHeapSnapshot(message.heapSnapshot);
      send(memory);
    });
  }
});
process.on('disconnect', () => {
  const timer = setTimeout(() => process.exit(1), 10_000);
  void server.stop().finally(() => {
    clearTimeout(timer);
    process.exit(0);
  });
});
send({ type: 'listening', wsUrl: server.wsUrl, authUrl: server.authUrl });
