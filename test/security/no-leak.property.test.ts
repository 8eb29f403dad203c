// The property behind the whole adversarial suite: for random documents, random field-level
// rules and random filters, views, bootstraps and pushes from one user, nothing that user may
// not read ever appears in any answer, count or error. Each case runs a real gateway with its
// own rules and database; the oracle evaluates the rules on the documents with mingo.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { Query } from 'mingo';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanup, startTestGateway } from '../helpers/harness.ts';
import { idKey } from '../../gateway/store/collection-store.ts';
import { attacker, seed, tasksOps, type GraphQLAnswer } from './attack.ts';

const RUNS = Number(process.env.NO_LEAK_RUNS ?? 60);
const folders: string[] = [];
afterAll(() => folders.forEach((f) => rmSync(f, { recursive: true, force: true })));

const HIDEABLE = ['title', 'description', 'priority', 'status', 'tags', 'dueDate'] as const;
const STATUSES = ['TODO', 'DONE', 'BLOCKED'] as const;
const DOC_FILTERS: Array<Record<string, unknown> | boolean> = [true, false, { ownerId: '%%user.id' }, { status: 'TODO' }, { priority: { $lte: 2 } }, { tags: 'pub' }];
const FILTERS: Array<Record<string, unknown>> = [
  {},
  { status: 'TODO' },
  { status: { $in: ['DONE', 'BLOCKED'] } },
  { priority: { $gte: 3 } },
  { tags: 'pub' },
  { ownerId: 'eve' },
  { ownerId: { $ne: 'eve' } },
  { title: { $regex: '^TITLE-1' } },
  { description: { $regex: 'DESC', $options: 'i' } },
  { $or: [{ status: 'DONE' }, { priority: 1 }] },
  { $and: [{ tags: 'pub' }, { dueDate: { $exists: true } }] },
  { dueDate: { $lt: '2026-06-01T00:00:00Z' } },
];

const docArb = fc.record({
  ownerId: fc.constantFrom('eve', 'other'),
  status: fc.constantFrom(...STATUSES),
  priority: fc.integer({ min: 1, max: 5 }),
  tags: fc.subarray(['pub', 'work', 'home']),
  dueDate: fc.option(fc.constantFrom('2026-01-01T00:00:00.000Z', '2026-12-01T00:00:00.000Z'), { nil: undefined }),
});
const opArb = fc.oneof(
  fc.record({ kind: fc.constant('list' as const), filter: fc.constantFrom(...FILTERS) }),
  fc.record({ kind: fc.constant('get' as const), doc: fc.nat(7) }),
  fc.record({ kind: fc.constant('pull' as const), view: fc.option(fc.subarray(FILTERS, { minLength: 1, maxLength: 3 }), { nil: undefined }), limit: fc.integer({ min: 1, max: 5 }) }),
  fc.record({ kind: fc.constant('bootstrap' as const), query: fc.constantFrom(...FILTERS), exclude: fc.option(fc.subarray(FILTERS, { maxLength: 2 }), { nil: undefined }) }),
  fc.record({ kind: fc.constant('push' as const), doc: fc.nat(7), changes: docArb, deleted: fc.boolean(), assumed: fc.boolean() }),
  fc.record({ kind: fc.constant('guess' as const), doc: fc.nat(7), field: fc.constantFrom(...HIDEABLE) }),
);
const caseArb = fc.record({
  docs: fc.array(docArb, { minLength: 8, maxLength: 8 }),
  read: fc.constantFrom(...DOC_FILTERS),
  write: fc.constantFrom(...DOC_FILTERS),
  hidden: fc.subarray([...HIDEABLE]),
  ops: fc.array(opArb, { minLength: 4, maxLength: 10 }),
});
type Case = typeof caseArb extends fc.Arbitrary<infer C> ? C : never;

/** The rules a case describes, with eve's id expanded, evaluated on a plain document. */
function matches(filter: Record<string, unknown> | boolean, doc: Record<string, unknown>): boolean {
  if (typeof filter === 'boolean') return filter;
  const expanded = JSON.parse(JSON.stringify(filter).replaceAll('%%user.id', 'eve')) as Record<string, unknown>;
  return new Query(expanded).test(doc);
}

async function runCase(c: Case): Promise<void> {
  const folder = mkdtempSync(join(tmpdir(), 'tributary-no-leak-'));
  folders.push(folder);
  const rules = {
    roles: [
      {
        name: 'eve',
        apply_when: {},
        document_filters: { read: c.read, write: c.write },
        insert: true,
        delete: true,
        fields: Object.fromEntries(c.hidden.map((f) => [f, { read: false, write: false }])),
        additional_fields: { read: true, write: true },
      },
    ],
  };
  writeFileSync(join(folder, 'tasks.json'), JSON.stringify(rules));
  const gateway = await startTestGateway({ rulesPath: folder });
  const docs = c.docs.map((d, i) => ({
    id: `doc-${i}-${Math.random().toString(36).slice(2, 8)}`,
    title: `TITLE-${i}-${Math.random().toString(36).slice(2, 8)}`,
    description: `DESC-${i}-${Math.random().toString(36).slice(2, 8)}`,
    ...d,
  }));
  await seed(gateway, 'tasks', docs);
  // The oracle follows the stored documents (eve's pushes may change them).
  const store = gateway.collections.get('tasks')!.store;
  let live: Array<Record<string, unknown> & { id: string }> = [];
  let readable: boolean[] = [];
  const everReadable = docs.map(() => false);
  const refresh = async () => {
    const stored = await store.findByIds(docs.map((d) => store.storedId(d.id)));
    live = docs.map((d) => {
      const s = stored.get(idKey(store.storedId(d.id)));
      return s && !s._sync.deleted ? (store.toWire(s) as Record<string, unknown> & { id: string }) : { id: d.id, _deleted: true };
    });
    readable = live.map((d) => !d._deleted && (matches(c.read, d) || matches(c.write, d)));
    readable.forEach((r, i) => (everReadable[i] ||= r));
  };
  await refresh();
  const visibleField = (f: string) => !c.hidden.includes(f as never);
  const eve = await attacker(gateway, 'eve');
  const ops = tasksOps(gateway);
  /** Ids eve named itself may come back to it; nothing else of unreadable documents may. */
  const named = new Set<string>();
  const usesHidden = (filter: Record<string, unknown>) => c.hidden.some((f) => JSON.stringify(filter).includes(`"${f}"`));
  /** Views and bootstrap queries take @queryable fields only (description is not). */
  const badView = (filter: Record<string, unknown>) => usesHidden(filter) || JSON.stringify(filter).includes('"description"');

  for (const op of c.ops) {
    switch (op.kind) {
      case 'list': {
        const answer = await eve.http('query ($f: JSONObject) { tasks(filter: $f, limit: 100) { id ownerId } }', { f: op.filter });
        if (usesHidden(op.filter)) expect(answer.errors?.[0]?.extensions?.code).toBe('BAD_QUERY');
        else expect(answer.data!.tasks.map((t: { id: string }) => t.id).sort()).toEqual(live.filter((d, i) => readable[i] && matches(op.filter, d)).map((d) => d.id).sort());
        break;
      }
      case 'get': {
        const doc = docs[op.doc]!;
        named.add(doc.id);
        const answer = await eve.http('query ($id: ID!) { task(id: $id) { id } }', { id: doc.id });
        expect(answer.data?.task ?? null).toEqual(readable[op.doc] ? { id: doc.id } : null);
        break;
      }
      case 'pull': {
        let checkpoint = null;
        for (let page = 0; page < 20; page++) {
          const answer: GraphQLAnswer = await eve.http(ops.pull, { checkpoint, limit: op.limit, view: op.view });
          if (op.view?.some(badView)) {
            expect(answer.errors?.[0]?.extensions?.code).toBe('BAD_QUERY');
            break;
          }
          const bulk = answer.data!.pullTasks;
          for (const d of bulk.documents as Array<{ id: string }>) expect(readable[docs.findIndex((x) => x.id === d.id)], `pulled ${d.id}`).toBe(true);
          checkpoint = bulk.checkpoint;
          if (!bulk.hasMore) break;
        }
        break;
      }
      case 'bootstrap': {
        const answer = await eve.http(ops.bootstrap, { query: op.query, exclude: op.exclude, limit: 3 });
        if (badView(op.query) || op.exclude?.some(badView)) {
          expect(answer.errors?.[0]?.extensions?.code).toBe('BAD_QUERY');
          break;
        }
        const excluded = (d: Record<string, unknown>) => (op.exclude ?? []).some((f) => matches(f, d));
        const expected = live.filter((d, i) => readable[i] && matches(op.query, d) && !excluded(d));
        expect(answer.data!.bootstrapTasks.estimatedTotal).toBe(expected.length);
        break;
      }
      case 'push': {
        const doc = docs[op.doc]!;
        named.add(doc.id);
        const next = { id: doc.id, title: 'pushed', ...op.changes, _deleted: op.deleted };
        for (const f of c.hidden) delete (next as Record<string, unknown>)[f];
        await eve.http(ops.push, { rows: [{ assumedMasterState: op.assumed ? { id: doc.id, _deleted: false } : null, newDocumentState: next }] });
        await refresh();
        break;
      }
      case 'guess': {
        // The right value of a field and a wrong one get the same answer.
        const doc = live[op.doc]!;
        named.add(doc.id);
        if (!readable[op.doc] || visibleField(op.field)) break;
        const row = (value: unknown) => ({ assumedMasterState: null, newDocumentState: { id: doc.id, ownerId: doc.ownerId, [op.field]: value, _deleted: false } });
        const right = await eve.http(ops.push, { rows: [row(doc[op.field] ?? 'x')] });
        const wrong = await eve.http(ops.push, { rows: [row(op.field === 'priority' ? 9 : op.field === 'tags' ? ['zz'] : 'not it')] });
        expect(right).toEqual(wrong);
        await refresh();
        break;
      }
    }
  }
  // What eve must never see: everything of documents it never could read, hidden fields of all.
  const secrets = docs.flatMap((d, i) => [...(everReadable[i] ? [] : [d.id]), ...(everReadable[i] && visibleField('title') ? [] : [d.title]), ...(everReadable[i] && visibleField('description') ? [] : [d.description])]);
  const seen = JSON.stringify(eve.received);
  for (const secret of secrets) {
    if (named.has(secret)) continue;
    expect(seen, `eve received ${secret} (rules ${JSON.stringify(rules)})`).not.toContain(secret);
  }
  await eve.close();
  await cleanup();
}

describe('nothing a user may not read leaves the gateway', () => {
  it(`holds for ${RUNS} random cases of documents, field rules, filters, views, bootstraps and pushes`, { timeout: 600_000 }, async () => {
    await fc.assert(fc.asyncProperty(caseArb, runCase), { numRuns: RUNS });
  });
});
