// Shared pieces of the benchmarks: the ~1 KB task payload, clocks, percentiles and tables.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { MongoClient } from 'mongodb';
import type { SyncDocument } from '../protocol/messages.ts';

export const ROOT = resolve(import.meta.dirname, '..');
export const SCHEMA = readFileSync(resolve(ROOT, 'schema.graphql'), 'utf8');

const WORDS = 'alpha beta gamma delta epsilon zeta eta theta iota kappa lambda sigma tau upsilon omega'.split(' ');

/** ~800 characters of text that differs per document (identical payloads could flatter caches). */
function description(i: number): string {
  const words: string[] = [];
  let length = 0;
  for (let w = 0; length < 800; w++) {
    const word = WORDS[(i * 7 + w * 13) % WORDS.length]!;
    words.push(word);
    length += word.length + 1;
  }
  return words.join(' ').slice(0, 800);
}

/**
 * A task of about 1 KB as JSON, valid against schema.graphql (without `_deleted`). `ownerId`:
 * the benchmark's user, so that owner-based read rules let its clients see the task.
 */
export function makeTask(i: number, runId: string, title = `Task ${i}`, ownerId = `user-${i % 200}`): { id: string } & Record<string, unknown> {
  return {
    id: `bench-${runId}-${String(i).padStart(7, '0')}`,
    projectId: `project-${i % 50}`,
    ownerId,
    title,
    description: description(i),
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
