// GET /metrics: Prometheus text from the gateway's own registry. Each counter is read before and
// after real work (pushes, pulls, live deliveries to an SDK client, compensating writes, slow
// consumers) and must move by what that work was.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startEmbeddedFerretDB } from '../gateway/store/embedded-ferretdb.ts';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { syncOperations } from '../protocol/operations.ts';
import { cleanup, graphqlHttp, newTask, openTestClient, rulesFixture, startTestGateway, testToken, waitFor } from './helpers/harness.ts';

afterEach(cleanup);

type Gateway = Awaited<ReturnType<typeof startTestGateway>>;

/** The samples of a scrape, by `name{labels}` with labels sorted. */
async function scrape(gateway: Gateway, token?: string): Promise<Map<string, number>> {
  const response = await fetch(`${new URL(gateway.httpUrl).origin}/metrics`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  const samples = new Map<string, number>();
  for (const line of (await response.text()).split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) continue;
    const labels = [...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map(([, k, v]) => `${k}=${v}`).sort();
    samples.set(`${match[1]}{${labels.join(',')}}`, Number(match[3]));
  }
  return samples;
}

function sample(samples: Map<string, number>, name: string, labels: Record<string, string> = {}): number {
  const key = `${name}{${Object.entries(labels).map(([k, v]) => `${k}=${v}`).sort().join(',')}}`;
  return samples.get(key) ?? 0;
}

/** How much each named sample moved between two scrapes. */
function delta(before: Map<string, number>, after: Map<string, number>, name: string, labels: Record<string, string> = {}): number {
  return sample(after, name, labels) - sample(before, name, labels);
}

const tasks = { collection: 'tasks' };

describe('/metrics', () => {
  it('counts pushes, rows, pulls, live deliveries and refused writes by reason, from real clients', async () => {
    const gateway = await startTestGateway({ rulesPath: rulesFixture('owner-only') });
    const ops = syncOperations(gateway.model.collections.find((c) => c.name === 'tasks')!);
    const start = await scrape(gateway);
    // prom-client's default process metrics are there too, and nothing has happened yet.
    expect(start.has('process_cpu_user_seconds_total{}')).toBe(true);
    expect(sample(start, 'tributary_pushes_total', tasks)).toBe(0);

    // An SDK client (user-1) listening live on every collection.
    const client = await openTestClient(gateway.wsUrl);
    await client.waitForSync();
    const connected = await scrape(gateway);
    expect(sample(connected, 'tributary_connections')).toBe(1);
    expect(sample(connected, 'tributary_active_subscriptions', tasks)).toBe(1);

    // One push of two rows over HTTP: one push, two rows, one latency sample; the SDK client
    // receives them live: one event written to its socket.
    const before = await scrape(gateway);
    const rows = [newTask(), newTask()].map((task) => ({ assumedMasterState: null, newDocumentState: { ...task, _deleted: false } }));
    const pushed = await graphqlHttp(gateway.httpUrl, ops.push, { rows });
    expect(pushed.data?.pushTasks.rejected).toEqual([]);
    await waitFor('the SDK client got both tasks', async () => (await client.collections.tasks!.find().exec()).length === 2);
    await waitFor('the live delivery was counted', async () => delta(before, await scrape(gateway), 'tributary_live_delivery_seconds_count', tasks) >= 1);
    const afterPush = await scrape(gateway);
    expect(delta(before, afterPush, 'tributary_pushes_total', tasks)).toBe(1);
    expect(delta(before, afterPush, 'tributary_pushed_rows_total', tasks)).toBe(2);
    expect(delta(before, afterPush, 'tributary_push_duration_seconds_count', tasks)).toBe(1);
    expect(delta(before, afterPush, 'tributary_live_delivery_seconds_count', tasks)).toBe(1);

    // A pull from the start: every document it sends is counted, and its latency.
    const pulled = await graphqlHttp(gateway.httpUrl, ops.pull, { checkpoint: null, limit: 100 });
    expect(pulled.data?.pullTasks.documents).toHaveLength(2);
    const afterPull = await scrape(gateway);
    expect(delta(afterPush, afterPull, 'tributary_pulled_documents_total', { ...tasks, kind: 'pull' })).toBe(2);
    expect(delta(afterPush, afterPull, 'tributary_pull_duration_seconds_count', tasks)).toBe(1);

    // Refused writes: a row outside the pusher's subscriptions and a task for someone else are
    // compensating writes (with their reasons); a row that breaks the schema is refused, not compensating.
    const row = (task: Record<string, unknown>) => ({ assumedMasterState: null, newDocumentState: { ...task, _deleted: false } });
    await graphqlHttp(gateway.httpUrl, ops.push, { rows: [row(newTask({ status: 'TODO' }))], view: [{ status: 'DONE' }] });
    await graphqlHttp(gateway.httpUrl, ops.push, { rows: [row(newTask({ ownerId: 'someone-else' })), row(newTask({ priority: 'high' }))] });
    // And through the SDK: the client writes a task for someone else; the gateway refuses it.
    await client.collections.tasks!.insert(newTask({ ownerId: 'another-user' }));
    await waitFor('the SDK client was told', async () => (await client.collections.tasks!.find({ selector: { ownerId: 'another-user' } }).exec()).length === 0);
    const afterRefusals = await scrape(gateway);
    expect(delta(afterPull, afterRefusals, 'tributary_compensating_writes_total', { ...tasks, reason: 'outside-subscriptions' })).toBe(1);
    expect(delta(afterPull, afterRefusals, 'tributary_compensating_writes_total', { ...tasks, reason: 'role' })).toBe(2);
    expect(delta(afterPull, afterRefusals, 'tributary_refused_writes_total', { ...tasks, code: 'PERMISSION_DENIED' })).toBe(3);
    expect(delta(afterPull, afterRefusals, 'tributary_refused_writes_total', { ...tasks, code: 'SCHEMA_VIOLATION' })).toBe(1);
    expect(delta(afterPull, afterRefusals, 'tributary_pushes_total', tasks)).toBeGreaterThanOrEqual(3);

    // A plain mutation refused by the rules is a refused write, not a compensating one.
    const plain = await graphqlHttp(gateway.httpUrl, `mutation { insertTask(input: {id: "t-plain", ownerId: "nobody", title: "x", status: TODO, priority: 1, tags: []}) { id } }`);
    expect(plain.errors?.[0]?.extensions?.code).toBe('PERMISSION_DENIED');
    const afterPlain = await scrape(gateway);
    expect(delta(afterRefusals, afterPlain, 'tributary_refused_writes_total', { ...tasks, code: 'PERMISSION_DENIED' })).toBe(1);
    expect(delta(afterRefusals, afterPlain, 'tributary_compensating_writes_total', { ...tasks, reason: 'role' })).toBe(0);

    // Counted from what the gateway did, not from what the client chose to read of the answer.
    const blind = await graphqlHttp(gateway.httpUrl, 'mutation ($rows: [SyncPushRow!]!) { pushTasks(rows: $rows) { conflicts } }', { rows: [row(newTask({ ownerId: 'someone-else' }))] });
    expect(blind.data?.pushTasks.conflicts).toHaveLength(1);
    const afterBlind = await scrape(gateway);
    expect(delta(afterPlain, afterBlind, 'tributary_compensating_writes_total', { ...tasks, reason: 'role' })).toBe(1);
    expect(delta(afterPlain, afterBlind, 'tributary_pushed_rows_total', tasks)).toBe(1);

    await client.close();
    await waitFor('the connection gauge fell', async () => sample(await scrape(gateway), 'tributary_connections') === 0);
  });

  it('shows change-feed lag: another instance’s writes this feed has not handed out yet', async () => {
    const a = await startTestGateway();
    // A second instance on the same database; `a` has no listener, so nothing wakes its feed.
    const b = await startTestGateway({ database: a.database });
    const ops = syncOperations(a.model.collections.find((c) => c.name === 'tasks')!);
    const rows = [newTask(), newTask(), newTask()].map((task) => ({ assumedMasterState: null, newDocumentState: { ...task, _deleted: false } }));
    expect((await graphqlHttp(b.httpUrl, ops.push, { rows })).data?.pushTasks.rejected).toEqual([]);

    const behind = await scrape(a);
    expect(sample(behind, 'tributary_change_feed_lag_sequences', tasks)).toBe(3);
    expect(sample(behind, 'tributary_change_feed_lag_seconds', tasks)).toBeGreaterThanOrEqual(0);
    expect(sample(await scrape(b), 'tributary_change_feed_lag_sequences', tasks)).toBe(0);

    // A live client on `a` makes its feed poll: it catches up.
    const client = await openTestClient(a.wsUrl);
    await waitFor('the client got the other instance’s writes', async () => (await client.collections.tasks!.find().exec()).length === 3);
    await waitFor('the lag is gone', async () => sample(await scrape(a), 'tributary_change_feed_lag_sequences', tasks) === 0);
    expect(sample(await scrape(a), 'tributary_change_feed_lag_seconds', tasks)).toBe(0);
  });

  it('counts sockets dropped as slow consumers', async () => {
    const gateway = await startTestGateway({ maxBufferedBytes: 256 * 1024 });
    const ops = syncOperations(gateway.model.collections.find((c) => c.name === 'tasks')!);
    const before = await scrape(gateway);
    const stalled = await stalledStream(gateway, [ops.stream]);
    // ~8 MB: more than the kernel's buffers of a stalled loopback socket take (about 4 MB here).
    for (let i = 0; i < 20; i++) await graphqlHttp(gateway.httpUrl, ops.push, { rows: bulkyRows(100) });
    await waitFor('the stalled socket was dropped', async () => delta(before, await scrape(gateway), 'tributary_slow_consumer_sockets_dropped_total') === 1);
    stalled.resume();
    await stalled.closed;
    expect(delta(before, await scrape(gateway), 'tributary_slow_consumer_sockets_dropped_total')).toBe(1);
  });

  it('counts live streams that fell behind: a sync stream resyncs, a plain watch ends', async () => {
    const gateway = await startTestGateway({ maxQueuedDocuments: 10 });
    const ops = syncOperations(gateway.model.collections.find((c) => c.name === 'tasks')!);
    const before = await scrape(gateway);
    const stalled = await stalledStream(gateway, [ops.stream, 'subscription { watchTasks { id } }']);
    expect(sample(await scrape(gateway), 'tributary_active_subscriptions', tasks)).toBe(2);
    // Pushed until the socket's kernel buffers are full and events wait in the streams' queues.
    const overflowed = async () => {
      const now = await scrape(gateway);
      return delta(before, now, 'tributary_stream_overflows_total', { ...tasks, outcome: 'resync' }) >= 1 && delta(before, now, 'tributary_stream_overflows_total', { ...tasks, outcome: 'ended' }) === 1;
    };
    for (let i = 0; i < 100 && !(await overflowed()); i++) await graphqlHttp(gateway.httpUrl, ops.push, { rows: bulkyRows(100) });
    await waitFor('both streams overflowed', overflowed);
    // The watch has ended; the sync stream is still open (one resync waits in its queue).
    expect(sample(await scrape(gateway), 'tributary_active_subscriptions', tasks)).toBe(1);
    expect(delta(before, await scrape(gateway), 'tributary_slow_consumer_sockets_dropped_total')).toBe(0);
    stalled.resume();
  });

  it('counts store errors: its MongoDB goes away under a running gateway', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tributary-metrics-store-'));
    const store = await startEmbeddedFerretDB({ dataDir, oplog: false });
    try {
      // A short follower lease: its renewals are the background work that meets the store.
      const gateway = await startTestGateway({ mongoUri: store.uri, followerLeaseMs: 1_000 });
      const ops = syncOperations(gateway.model.collections.find((c) => c.name === 'tasks')!);
      const before = await scrape(gateway);
      await store.stop();
      // Both fail on the driver's errors (connection refused), and each is counted where it was met.
      const pulled = await graphqlHttp(gateway.httpUrl, ops.pull, { checkpoint: null, limit: 10 });
      expect(pulled.errors?.[0]?.extensions?.code).toBe('INTERNAL_SERVER_ERROR');
      expect((await fetch(`${new URL(gateway.httpUrl).origin}/ready`)).status).toBe(503);
      const after = await scrape(gateway);
      expect(delta(before, after, 'tributary_store_errors_total', { source: 'graphql' })).toBe(1);
      expect(delta(before, after, 'tributary_store_errors_total', { source: 'ready' })).toBe(1);
      await waitFor('a failed lease renewal was counted', async () => delta(before, await scrape(gateway), 'tributary_store_errors_total', { source: 'background' }) >= 1);
    } finally {
      await store.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('is what README.md says: its scrape config works, and its table lists every tributary_ metric', async () => {
    const readme = readFileSync(resolve(import.meta.dirname, '../README.md'), 'utf8');
    const config = /```yaml\n(scrape_configs:[\s\S]*?)```/.exec(readme)![1]!;
    const setting = (name: string) => new RegExp(`${name}: (\\S+)`).exec(config)![1]!;
    const gateway = await startTestGateway({ metricsToken: setting('credentials') });
    // As Prometheus reads it: the target's host (the test's port), the path, the bearer credentials.
    const target = /targets: \['([^']+)'\]/.exec(config)![1]!;
    const url = `http://${target.split(':')[0]}:${gateway.port}${setting('metrics_path')}`;
    const response = await fetch(url, { headers: { authorization: `${setting('type')} ${setting('credentials')}` } });
    expect(response.status).toBe(200);
    const exposed = new Set([...(await response.text()).matchAll(/^# TYPE (tributary_\w+) /gm)].map((m) => m[1]));
    const documented = new Set([...readme.matchAll(/^\| `(tributary_\w+)` \|/gm)].map((m) => m[1]));
    expect([...documented].sort()).toEqual([...exposed].sort());
  });

  it('asks for TRIBUTARY_METRICS_TOKEN when one is set', async () => {
    const gateway = await startTestGateway({ metricsToken: 'scrape-secret-123' });
    const url = `${new URL(gateway.httpUrl).origin}/metrics`;
    expect((await fetch(url)).status).toBe(401);
    expect((await fetch(url, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
    // A user's token is no metrics token.
    expect((await fetch(url, { headers: { authorization: `Bearer ${await testToken()}` } })).status).toBe(401);
    const samples = await scrape(gateway, 'scrape-secret-123');
    expect(samples.has('tributary_connections{}')).toBe(true);
  });
});

/** ~4 KB documents. */
function bulkyRows(count: number) {
  return Array.from({ length: count }, () => ({ assumedMasterState: null, newDocumentState: { ...newTask({ description: 'x'.repeat(4_000) }), _deleted: false } }));
}

/** A raw graphql-ws socket that subscribes to `queries`, then stops reading (TCP). */
async function stalledStream(gateway: Gateway, queries: string[]) {
  const socket = new WebSocket(gateway.wsUrl, 'graphql-transport-ws');
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  await new Promise((r) => socket.once('open', r));
  socket.send(JSON.stringify({ type: 'connection_init', payload: { authToken: await testToken() } }));
  await new Promise((r) => socket.once('message', r)); // connection_ack
  for (const [i, query] of queries.entries()) socket.send(JSON.stringify({ id: String(i), type: 'subscribe', payload: { query } }));
  await waitFor('the streams are open', async () => {
    const samples = await scrape(gateway);
    return sample(samples, 'tributary_active_subscriptions', tasks) === queries.length;
  });
  const raw = (socket as unknown as { _socket: { pause(): void; resume(): void } })._socket;
  raw.pause();
  return { closed, resume: () => raw.resume() };
}
