// Shared pieces of the benchmarks: the ~1 KB task payload, clocks, percentiles and tables.
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { SignJWT } from 'jose';
import { MongoClient } from 'mongodb';
import type { AuthConfig } from '../gateway/auth/authenticator.ts';
import type { SyncDocument } from '../protocol/messages.ts';

export const ROOT = resolve(import.meta.dirname, '..');
export const SCHEMA = readFileSync(resolve(ROOT, 'schema.graphql'), 'utf8');

const WORDS = 'alpha beta gamma delta epsilon zeta eta theta iota kappa lambda sigma tau upsilon omega'.split(' ');

/** `chars` characters of text that differs per document (identical payloads could flatter caches). */
function description(i: number, chars: number): string {
  const words: string[] = [];
  let length = 0;
  for (let w = 0; length < chars; w++) {
    const word = WORDS[(i * 7 + w * 13) % WORDS.length]!;
    words.push(word);
    length += word.length + 1;
  }
  return words.join(' ').slice(0, chars);
}

/**
 * A task of about 1 KB as JSON, valid against schema.graphql (without `_deleted`). `ownerId`:
 * the benchmark's user, so that owner-based read rules let its clients see the task.
 * `descriptionChars`: 800 gives ~1 KB; 100 gives ~500 bytes of BSON.
 */
export function makeTask(i: number, runId: string, title = `Task ${i}`, ownerId = `user-${i % 200}`, descriptionChars = 800): { id: string } & Record<string, unknown> {
  return {
    id: `bench-${runId}-${String(i).padStart(7, '0')}`,
    projectId: `project-${i % 50}`,
    ownerId,
    title,
    description: description(i, descriptionChars),
    status: (['TODO', 'IN_PROGRESS', 'BLOCKED', 'DONE'] as const)[i % 4],
    priority: (i % 5) + 1,
    tags: ['bench', `tag-${i % 10}`],
    dueDate: new Date(Date.UTC(2026, 11, 1) + (i % 365) * 86_400_000).toISOString(),
    assigneeIds: [`user-${i % 200}`, `user-${(i + 1) % 200}`],
    checklist: [
      { text: 'write it', done: true },
      { text: 'review it', done: false },
    ],
  };
}

/**
 * A task as another service stores it with the driver: `id` as `_id`, the due date a BSON date
 * (schema.graphql's DateTime), no sync metadata.
 */
export function storedTask(task: { id: string } & Record<string, unknown>): Record<string, unknown> {
  const { id, dueDate, ...fields } = task;
  return { _id: id, ...fields, ...(typeof dueDate === 'string' ? { dueDate: new Date(dueDate) } : {}) };
}

/**
 * Users from an identity provider, as a production gateway would have them: benchmarks that
 * write with the driver need to know the clients' user id before the gateway starts.
 */
export const BENCH_JWT = { secret: 'tributary-bench-secret-long-enough-for-hs256', issuer: 'https://bench.tributary.invalid', audience: 'tributary' };
export const BENCH_AUTH: AuthConfig = { jwt: BENCH_JWT, anonymous: { enabled: true } };

/** A token for `userId`, accepted by a gateway started with BENCH_AUTH. */
export function benchToken(userId: string): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(userId)
    .setIssuer(BENCH_JWT.issuer)
    .setAudience(BENCH_JWT.audience)
    .setIssuedAt()
    .setExpirationTime('12h')
    .sign(new TextEncoder().encode(BENCH_JWT.secret));
}

/** A sync push row that inserts `doc`. */
export function insertRow(doc: Record<string, unknown>): { assumedMasterState: null; newDocumentState: SyncDocument } {
  return { assumedMasterState: null, newDocumentState: { ...doc, _deleted: false } as SyncDocument };
}

export function runId(): string {
  return randomBytes(3).toString('hex');
}

/**
 * Epoch milliseconds with sub-millisecond resolution. `performance.timeOrigin` is wall-clock
 * based, so the gateway process and the client process read the same clock.
 */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Nearest-rank percentile of an ascending-sorted array. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

/** Write-to-arrival latency and write acknowledgement percentiles, in ms, as the latency tables show them. */
export interface LatencyColumns {
  p50: number;
  p99: number;
  max: number;
  ackP50: number;
  ackP99: number;
}

export function latencyColumns(latencies: ArrayLike<number>, acks: ArrayLike<number>): LatencyColumns {
  const latency = Float64Array.from(latencies).sort();
  const ack = Float64Array.from(acks).sort();
  return { p50: percentile(latency, 50), p99: percentile(latency, 99), max: percentile(latency, 100), ackP50: percentile(ack, 50), ackP99: percentile(ack, 99) };
}

export function fmt(n: number, digits = 0): string {
  if (!Number.isFinite(n)) return 'n/a';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function markdownTable(headers: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  const align = headers.map((_, i) => (i === 0 ? '---' : '---:'));
  return [line(headers), line(align), ...rows.map(line)].join('\n');
}

export function mib(bytes: number): string {
  return `${fmt(bytes / 1_048_576, 1)} MiB`;
}

/** Removes a benchmark's database (they are throwaway; matters when MONGODB_URI is a real server). */
export async function dropDatabase(mongoUri: string, database: string): Promise<void> {
  const mongo = new MongoClient(mongoUri);
  try {
    await mongo.connect();
    await mongo.db(database).dropDatabase();
  } finally {
    await mongo.close();
  }
}

/**
 * A user for the benchmark's clients when the gateway issues anonymous users (it then wants a
 * token in graphql-ws `connection_init`, and its rules may only let a user read what it owns).
 * Undefined when it does not: such a gateway needs neither.
 */
export async function anonymousUser(httpUrl: string): Promise<{ token: string; userId: string } | undefined> {
  const response = await fetch(new URL('/auth/anonymous', httpUrl), { method: 'POST' });
  if (!response.ok) return undefined;
  const { token, userId } = (await response.json()) as { token?: string; userId?: string };
  return token && userId ? { token, userId } : undefined;
}

/**
 * CPU seconds (user + system) a process has used so far, from /proc (Linux); NaN elsewhere or
 * when it is gone.
 */
export function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
  } catch {
    return Number.NaN;
  }
}

/** The pid of the FerretDB serving `mongoUri` (found by its listen address), if it runs here. */
export function ferretdbPid(mongoUri: string): number | undefined {
  const port = /^mongodb:\/\/127\.0\.0\.1:(\d+)\//.exec(mongoUri)?.[1];
  if (!port) return undefined;
  try {
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
        if (cmdline[0]?.endsWith('ferretdb') && cmdline.includes(`--listen-addr=127.0.0.1:${port}`)) return Number(entry);
      } catch {
        // gone meanwhile
      }
    }
  } catch {
    // no /proc
  }
  return undefined;
}

/**
 * Diagnostics for stderr: calls and total time of some async methods of the gateway's objects
 * (store, sequencer) while a benchmark runs (wrapped on the instances, restored by stop()).
 */
export function timeMethods(objects: Record<string, Record<string, unknown>>, names: Record<string, string[]>): { stop(): string } {
  const totals: Array<{ name: string; calls: number; ms: number }> = [];
  const restore: Array<() => void> = [];
  for (const [label, object] of Object.entries(objects)) {
    for (const method of names[label] ?? []) {
      const original = object[method] as (...args: unknown[]) => Promise<unknown>;
      const total = { name: `${label}.${method}`, calls: 0, ms: 0 };
      totals.push(total);
      object[method] = function (this: unknown, ...args: unknown[]) {
        const began = performance.now();
        total.calls++;
        const result = original.apply(this, args);
        void result.then(
          () => void (total.ms += performance.now() - began),
          () => void (total.ms += performance.now() - began),
        );
        return result;
      };
      restore.push(() => void delete object[method]);
    }
  }
  let summary: string | undefined;
  return {
    stop() {
      if (summary === undefined) {
        restore.forEach((r) => r());
        summary = totals.map((t) => `${t.name} ${t.calls}× ${fmt(t.ms / 1_000, 1)} s`).join(', ');
      }
      return summary;
    },
  };
}
