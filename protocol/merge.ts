// The one merge of a pushed change into the stored document, for every write path. Used for
// clients that stamp their changes (the SDK: a hybrid-logical-clock stamp per changed field,
// `_stamps` on the wire); unstamped pushes (RxDB's stock plugin) keep whole-document conflict
// detection in push.ts.
//
// Strategies, per collection:
//  - 'field-lww' (default): per field (dotted paths into embedded objects; lists are whole
//    fields), the later stamp wins; stamps order totally (the device id breaks ties).
//  - 'document-lww': the side whose latest stamp is later wins whole.
//  - 'server-wins': a concurrent push (one whose base is not the stored state) changes nothing.
//  - a function: given base (what the client last saw), server and client states, for
//    concurrent pushes.
// Counters and add-wins sets merge as such under every strategy (protocol/field-state.ts).
// A push that is not concurrent (it was made on top of the stored state) merges per field.
// With every strategy, deletes win: a delete applies, and a deleted document stays deleted (its
// id cannot be created anew: a client's base state is no proof that it saw the delete, since
// RxDB moves its assumed master state to the tombstone while keeping an unpushed local edit).
// Paths come from users: push.ts has checked them against the schema, and getPath/setPath and
// the lookups here (own properties only) never reach a prototype even if one slipped through.
import { joinStamps, kindOf, withDerivedValues, type MergedFields, type Stamps } from './field-state.ts';
import type { Stamp } from './hlc.ts';
import { getPath, setPath } from './paths.ts';

export type { Stamps };
type Doc = Record<string, unknown>;

export interface Version {
  /** Wire form with `_deleted`, without `_stamps`. */
  doc: Doc;
  stamps: Stamps;
}

export type CustomResolver = (states: { base: Doc | null; server: Doc; client: Doc }) => Doc;
export type ConflictStrategy = 'field-lww' | 'document-lww' | 'server-wins' | CustomResolver;

export interface MergeOptions {
  strategy: ConflictStrategy;
  /** What the client last saw of the document (its assumed master state). */
  base?: Doc | null;
  /** Whether the change was made on top of something other than the stored state. */
  concurrent?: boolean;
  /** Counters and add-wins sets (protocol/field-state.ts): merged as such under every strategy. */
  fields?: MergedFields;
}

export function merge(server: Version | null, client: Version, { strategy, base = null, concurrent = true, fields = {} }: MergeOptions): Version {
  if (!server) return { doc: withDerivedValues(fields, client.doc, client.stamps), stamps: client.stamps };
  if (server.doc._deleted === true) return server; // deletes win
  const stamps = joinStamps(fields, server, client);
  if (client.doc._deleted === true) return { doc: { ...server.doc, _deleted: true }, stamps };
  const derived = (doc: Doc, lwwStamps: Stamps = stamps) => ({ doc: withDerivedValues(fields, doc, stamps), stamps: { ...lwwStamps, ...specialStates(fields, stamps) } });
  if (concurrent && strategy === 'server-wins') return derived(server.doc, server.stamps);
  if (strategy === 'document-lww') return derived(latest(fields, client.stamps) > latest(fields, server.stamps) ? client.doc : server.doc);
  if (concurrent && typeof strategy === 'function') return derived({ ...strategy({ base, server: server.doc, client: client.doc }), _deleted: false });

  const doc = structuredClone(server.doc);
  for (const [path, stamp] of Object.entries(client.stamps)) {
    if (kindOf(fields, path) !== undefined) continue;
    const stored = Object.hasOwn(server.stamps, path) ? server.stamps[path] : undefined;
    if (stored === undefined || (stamp as Stamp) > (stored as Stamp)) setPath(doc, path, getPath(client.doc, path));
  }
  return derived(doc);
}

function specialStates(fields: MergedFields, stamps: Stamps): Stamps {
  return Object.fromEntries(Object.keys(fields).flatMap((name) => (Object.hasOwn(stamps, name) && stamps[name] !== undefined ? [[name, stamps[name]!]] : [])));
}

/** The latest last-writer-wins stamp. */
function latest(fields: MergedFields, stamps: Stamps): string {
  return Object.entries(stamps).reduce((a, [path, s]) => (kindOf(fields, path) === undefined && (s as Stamp) > a ? (s as Stamp) : a), '');
}
