// Child processes for the benchmarks: `node --import tsx bench/<script>.ts ...` with an IPC
// channel (structured clone, so latency samples travel as typed arrays). Load generators run
// in their own process so their CPU time is not charged to the server being measured.
import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { ROOT } from './common.ts';
import type { ClientsIn, ClientsOut } from './fanout-clients.ts';

export interface Child<In, Out extends { type: string }> {
  pid: number;
  send(message: In): void;
  /** The next message of this type (earlier ones of other types are dropped). */
  next<T extends Out['type']>(type: T, timeoutMs?: number): Promise<Extract<Out, { type: T }>>;
  /** Waits for the process to exit; kills it if it has not after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

const live = new Set<ChildProcess>();
// Last resort against orphans when the benchmark itself crashes or is interrupted (run.ts turns
// SIGINT and SIGTERM into process.exit).
process.once('exit', () => live.forEach((c) => c.kill('SIGKILL')));

export function spawnChild<In, Out extends { type: string }>(script: string, args: string[], nodeArgs: string[] = []): Child<In, Out> {
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', resolve(ROOT, 'bench', script), ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    serialization: 'advanced',
  });
  live.add(child);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  void exited.then(() => live.delete(child));

  const inbox: Out[] = [];
  let waiter: ((m: Out) => void) | null = null;
  child.on('message', (m: Out) => (waiter ? waiter(m) : inbox.push(m)));

  return {
    pid: child.pid!,
    send: (message) => child.send(message as never),
    async next<K extends Out['type']>(type: K, timeoutMs = 120_000): Promise<Extract<Out, { type: K }>> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const queued = inbox.shift();
        const message =
          queued ??
          (await new Promise<Out | null>((r, reject) => {
            const timer = setTimeout(() => {
              waiter = null;
              reject(new Error(`${script}: no "${type}" message within ${timeoutMs} ms`));
            }, Math.max(0, deadline - Date.now()));
            const done = (m: Out | null) => {
              clearTimeout(timer);
              waiter = null;
              r(m);
            };
            waiter = done;
            void exited.then(() => done(null));
          }));
        if (message === null) throw new Error(`${script} exited (code ${child.exitCode}) before sending "${type}"`);
        if (message.type === type) return message as Extract<Out, { type: K }>;
      }
    },
    async stop(graceMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      if (child.connected) child.disconnect(); // children exit when their IPC channel closes
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Waits until a fanout-clients.ts child has every client subscribed; fails on any refusal. */
export async function clientsReady(clients: Child<ClientsIn, ClientsOut>): Promise<void> {
  const ready = await clients.next('ready');
  if (ready.errors > 0) throw new Error(`${ready.errors} of ${ready.clients} clients failed to subscribe: ${ready.firstError}`);
}
