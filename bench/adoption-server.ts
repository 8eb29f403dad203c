// Child process: the gateway of the adoption benchmark, alone in its process so that its peak
// RSS and CPU time are its own (not the seeding's or the raw read's).
//
//   node --import tsx bench/adoption-server.ts --mongo URI --database NAME
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { startGateway } from '../gateway/server.ts';
import { BENCH_AUTH, epochMs, timeMethods } from './common.ts';

export type AdoptionServerIn = { type: 'memory' } | { type: 'feed' } | { type: 'diagnostics' };
export type AdoptionServerOut =
  /** startCalledAt: epoch ms just before startGateway(); listeningAt: when it resolved. */
  | { type: 'started'; httpUrl: string; startCalledAt: number; listeningAt: number; rssAtStart: number }
  /** peakRss: the process's maximum resident set size so far (getrusage), bytes. */
  | { type: 'memory'; rss: number; peakRss: number; heapUsed: number }
  /** The tasks change feed's position and the sequence horizon: how far behind the adoption it reads. */
  | { type: 'feed'; position: number; horizon: number }
  /** Calls and time of the store's writes and reads by id, and of sequence leases, since start (overlapping). */
  | { type: 'diagnostics'; summary: string };

const { values } = parseArgs({ options: { mongo: { type: 'string' }, database: { type: 'string' } } });
const send = (message: AdoptionServerOut) => process.send!(message);

const startCalledAt = epochMs();
const gateway = await startGateway({ mongoUri: values.mongo!, database: values.database!, port: 0, logger: pino({ level: 'warn' }, pino.destination(2)), auth: BENCH_AUTH });
const listeningAt = epochMs();
const tasksStore = gateway.collections.get('tasks')!.store;
// From here on (the pass began inside startGateway a moment ago).
const storeTime = timeMethods({ store: tasksStore as never, sequencer: tasksStore.sequencer as never }, { store: ['writeMany', 'readRaw'], sequencer: ['allocate'] });

process.on('message', (message: AdoptionServerIn) => {
  if (message.type === 'memory') {
    const { rss, heapUsed } = process.memoryUsage();
    send({ type: 'memory', rss, peakRss: process.resourceUsage().maxRSS * 1024, heapUsed });
  }
  if (message.type === 'diagnostics') send({ type: 'diagnostics', summary: storeTime.stop() });
  if (message.type === 'feed') {
    const { feed, store } = gateway.collections.get('tasks')!;
    void store.sequencer.horizon().then((horizon) => send({ type: 'feed', position: feed.checkpoint.seq, horizon }));
  }
});
process.on('disconnect', () => {
  const timer = setTimeout(() => process.exit(1), 30_000);
  void gateway.stop().finally(() => {
    clearTimeout(timer);
    process.exit(0);
  });
});
send({ type: 'started', httpUrl: gateway.httpUrl, startCalledAt, listeningAt, rssAtStart: process.memoryUsage().rss });
