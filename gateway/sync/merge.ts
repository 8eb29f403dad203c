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
// A push that is not concurrent (it was made on top of the stored state) merges per field.
// With every strategy, deletes win: a delete applies, and a deleted document stays deleted (its
// id cannot be created anew: a client's base state is no proof that it saw the delete, since
// RxDB moves its assumed master state to the tombstone while keeping an unpushed local edit).
import { laterStamp, type Stamp } from '../../protocol/hlc.ts';
import { getPath, setPath } from '../../protocol/paths.ts';

export type Stamps = Record<string, Stamp>;
type Doc = Record<string, unknown>;

export interface Version {
  /** Wire form with `_deleted`, without `_stamps`. */
  doc: Doc;
  stamps: Stamps;
}

export type CustomResolver = (states: { base: Doc | null; server: Doc; client: Doc }) => Doc;
export type ConflictStrategy = 'field-lww' | 'document-lww' | 'server-wins' | CustomResolver;

export function merge(server: Version | null, client: Version, strategy: ConflictStrategy, base: Doc | null = null, concurrent = true): Version {
  if (!server) return client;
  if (server.doc._deleted === true) return server; // deletes win
  const stamps = maxStamps(server.stamps, client.stamps);
  if (client.doc._deleted === true) return { doc: { ...server.doc, _deleted: true }, stamps };
  if (concurrent && strategy === 'server-wins') return server;
  if (strategy === 'document-lww') return latest(client.stamps) > latest(server.stamps) ? { doc: client.doc, stamps } : { doc: server.doc, stamps };
  if (concurrent && typeof strategy === 'function') return { doc: { ...strategy({ base, server: server.doc, client: client.doc }), _deleted: false }, stamps };

  const doc = structuredClone(server.doc);
  for (const [path, stamp] of Object.entries(client.stamps)) {
    if (server.stamps[path] === undefined || stamp > server.stamps[path]!) setPath(doc, path, getPath(client.doc, path));
  }
  return { doc, stamps };
}

function maxStamps(a: Stamps, b: Stamps): Stamps {
  const out: Stamps = { ...a };
  for (const [path, stamp] of Object.entries(b)) out[path] = laterStamp(out[path], stamp)!;
  return out;
}

function latest(stamps: Stamps): string {
  return Object.values(stamps).reduce((a, b) => (b > a ? b : a), '');
}
