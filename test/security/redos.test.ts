// Security: a user's `$regex` cannot hold the gateway's event loop. The checker lets through only
// literal text and the wildcards `.` and `.*`, yet a backtracking engine still spends time
// polynomial of high degree on such patterns: `.*.*.*.*.*.*.*.*#` over a few of a user's own short
// titles held every user's requests for 8 s. In memory (pulls, the live stream, watches) patterns
// now run on a linear-time engine; MongoDB runs its own. Against a real gateway, on every path:
// the answer is right, the attack answers within seconds, and another user's cheap requests keep
// answering within a second while it runs. Last, the two engines agree on what a pattern matches.
import { afterEach, describe, expect, it } from 'vitest';
import { compileFilter } from '../../gateway/query/filter.ts';
import type { Gateway } from '../../gateway/server.ts';
import { cleanup, newTask, openDb, rulesFixture, startTestGateway, waitFor } from '../helpers/harness.ts';
import { attacker, tasksOps, type Attacker, type GraphQLAnswer } from './attack.ts';

afterEach(cleanup);

const LONG = 'a'.repeat(5_000);
/** Matches none of the long titles; a backtracking engine tries some n⁸ ways on each. */
const NOTHING = '.*.*.*.*.*.*.*.*#';
/** No repeated `.*`, still some n⁵ ways; matches none of the long titles either. */
const SPREAD = '.*a.*a.*a.*a.*c';
/** The shape of NOTHING, matching (case-insensitively) the one long title with a b. */
const HAS_B = '.*.*.*.*.*.*.*.*B';

/** How long the attack itself may take, and another user's cheap request while it runs. */
const ATTACK_MS = 5_000;
const PROBE_MS = 1_000;

const byTitle = (pattern: string) => ({ title: { $regex: pattern, $options: 'i' } });
const INSERT = 'mutation ($input: TaskInput!) { insertTask(input: $input) { id } }';
const LIST = 'query ($f: JSONObject) { tasks(filter: $f) { id } }';
const WATCH = 'subscription ($f: JSONObject) { watchTasks(filter: $f) { id deleted } }';
const PROBE = '{ tasks(limit: 5) { id } }';

const ids = (docs: Array<{ id: string }>) => docs.map((d) => d.id).sort();

async function insert(user: Attacker, title: string): Promise<string> {
  const task = newTask({ ownerId: user.id, title });
  const answer = await user.http(INSERT, { input: task });
  expect(answer.errors).toBeUndefined();
  return task.id;
}

/** Mallory owns three long titles, one with a b; Ann, who probes, owns one short one. */
async function setup() {
  const gateway = await startTestGateway({ rulesPath: rulesFixture('owner-only') });
  const mallory = await attacker(gateway, 'mallory');
  const ann = await attacker(gateway, 'ann');
  const plain = [await insert(mallory, LONG), await insert(mallory, LONG.slice(1) + '!')];
  const withB = await insert(mallory, LONG.slice(1) + 'b');
  await insert(ann, 'buy milk');
  return { gateway, mallory, ann, plain, withB };
}

/**
 * Runs `attack` while `prober` sends cheap requests one after another; gives the attack's answer,
 * how long it took, and the slowest probe (a held event loop delays every probe sent meanwhile).
 */
async function underAttack<T>(prober: Attacker, attack: () => Promise<T>): Promise<{ result: T; attackMs: number; slowestProbeMs: number }> {
  let done = false;
  const started = performance.now();
  const running = attack().finally(() => (done = true));
  const probes: number[] = [];
  const probing = (async () => {
    do {
      const sent = performance.now();
      const answer = await prober.http(PROBE);
      expect(answer.errors).toBeUndefined();
      probes.push(performance.now() - sent);
    } while (!done);
  })();
  const result = await running;
  const attackMs = performance.now() - started;
  await probing;
  return { result, attackMs, slowestProbeMs: Math.max(...probes) };
}

describe('a catastrophic-backtracking $regex', () => {
  it('in a plain tasks(filter:) list answers right and quickly, and other users are served meanwhile', async () => {
    const { mallory, ann, withB } = await setup();
    for (const [pattern, expected] of [[NOTHING, []], [SPREAD, []], [HAS_B, [withB]]] as const) {
      const { result, attackMs, slowestProbeMs } = await underAttack(ann, () => mallory.http(LIST, { f: byTitle(pattern) }));
      expect(result.errors, pattern).toBeUndefined();
      expect(ids(result.data!.tasks), pattern).toEqual(expected);
      expect(attackMs, pattern).toBeLessThan(ATTACK_MS);
      expect(slowestProbeMs, pattern).toBeLessThan(PROBE_MS);
    }
  });

  it('in a watchTasks(filter:) reports exactly the matching writes, and other users are served meanwhile', async () => {
    const { mallory, ann } = await setup();
    const watches = { nothing: mallory.subscribe(WATCH, { f: byTitle(NOTHING) }), spread: mallory.subscribe(WATCH, { f: byTitle(SPREAD) }), hasB: mallory.subscribe(WATCH, { f: byTitle(HAS_B) }) };
    const seen = (watch: { events: GraphQLAnswer[] }) => watch.events.flatMap((e) => (e.data?.watchTasks ?? []) as Array<{ id: string }>).map((c) => c.id);
    // A title every pattern matches, written until every watch has started and seen one.
    const marker = 'aaaa c # b';
    const markers: string[] = [];
    await waitFor('the watches to start', async () => {
      markers.push(await insert(mallory, marker));
      return Object.values(watches).every((w) => seen(w).length > 0);
    });

    let withB = '';
    let last = '';
    const { attackMs, slowestProbeMs } = await underAttack(ann, async () => {
      await insert(mallory, LONG);
      await insert(mallory, LONG.slice(1) + '!');
      withB = await insert(mallory, LONG.slice(1) + 'b');
      await insert(mallory, LONG);
      // Changes reach every watch in order: once each has seen this marker, it has judged the rest.
      last = await insert(mallory, marker);
      await waitFor('the last marker', () => Object.values(watches).every((w) => seen(w).includes(last)), ATTACK_MS);
    });
    for (const w of Object.values(watches)) expect(w.errors).toEqual([]);
    const beyondMarkers = (w: { events: GraphQLAnswer[] }) => seen(w).filter((id) => !markers.includes(id) && id !== last);
    expect(beyondMarkers(watches.nothing)).toEqual([]);
    expect(beyondMarkers(watches.spread)).toEqual([]);
    expect(beyondMarkers(watches.hasB)).toEqual([withB]);
    expect(attackMs).toBeLessThan(ATTACK_MS);
    expect(slowestProbeMs).toBeLessThan(PROBE_MS);
    for (const w of Object.values(watches)) w.stop();
    await mallory.close();
  });

  it('in a pullTasks(view:) sends the matching documents and removals for the rest, and other users are served meanwhile', async () => {
    const { gateway, mallory, ann, plain, withB } = await setup();
    const ops = tasksOps(gateway);
    for (const [pattern, expected] of [[NOTHING, []], [SPREAD, []], [HAS_B, [withB]]] as const) {
      const { result, attackMs, slowestProbeMs } = await underAttack(ann, () => mallory.http(ops.pull, { checkpoint: null, limit: 100, view: [byTitle(pattern)] }));
      expect(result.errors, pattern).toBeUndefined();
      const documents = result.data!.pullTasks.documents as Array<{ id: string; _deleted: boolean }>;
      expect(ids(documents.filter((d) => !d._deleted)), pattern).toEqual(expected);
      // Mallory's other documents come as removals (the view may have held them before).
      expect(ids(documents), pattern).toEqual([...plain, withB].sort());
      expect(attackMs, pattern).toBeLessThan(ATTACK_MS);
      expect(slowestProbeMs, pattern).toBeLessThan(PROBE_MS);
    }
  });
});

describe('patterns in memory and in MongoDB', () => {
  // Where JavaScript's RegExp and the database's engine part: line terminators other than \n,
  // characters beyond 16 bits, Unicode case folding. (A `$` before a final newline is left out:
  // MongoDB's PCRE matches there, FerretDB's RE2 and the gateway's do not.)
  const titles = ['one\ntwo', 'one\rtwo', 'one\u2028two', 'ends in a newline\n', '\u{1F600}', 'KELVIN \u212A', 'long \u017F', 'Straße', 'ΣΊΣΥΦΟΣ', '#hash', 'x'];
  const patterns: Array<[string, string]> = [
    ['one.two', ''],
    ['^one.*two$', ''],
    ['^one', ''],
    ['newline.$', ''],
    ['kelvin k', 'i'],
    ['LONG S', 'i'],
    ['strasse', 'i'],
    ['STRASSE', 'i'],
    ['σίσυφος', 'i'],
    ['.*.*.*.*.*.*.*.*#', 'i'],
    ['^.$', ''],
    ['', ''],
  ];

  it('select the same documents', async () => {
    const gateway: Gateway & { database: string } = await startTestGateway();
    const model = gateway.model.collections.find((c) => c.name === 'tasks')!;
    const writer = gateway.collections.get('tasks')!.writer;
    const tasks = titles.map((title, i) => newTask({ id: `t${i}`, title }));
    expect((await writer.push(tasks.map((t) => ({ assumedMasterState: null, newDocumentState: { ...t, _deleted: false } })))).rejected).toEqual([]);
    const collection = (await openDb(gateway.database)).collection('tasks');
    const stored = await collection.find().toArray();
    for (const [pattern, options] of patterns) {
      const filter = compileFilter(model, { title: { $regex: pattern, $options: options } });
      const inMemory = stored.filter((d) => filter.matches(d as never)).map((d) => titles[Number(String(d._id).slice(1))]);
      const inMongo = (await collection.find(filter.stored as never).toArray()).map((d) => titles[Number(String(d._id).slice(1))]);
      expect.soft(inMemory.sort(), `/${pattern}/${options}`).toEqual(inMongo.sort());
    }
  });
});
