// The one rules engine: what a user may read and write in each collection, decided once per
// session from the rules (load.ts) and the user. Sync (pull, stream, bootstrap, push, conflict
// replies) and the plain GraphQL API all ask it.
//
// Semantics (Realm's): the role is the first whose `apply_when` holds for the user; no role, no
// access. Readable documents = read filter ∪ write filter (write implies read). A write must
// match the write filter before and after, insert/delete need their rights, and every changed
// field must be writable. Fields a role cannot read are removed from everything sent.
import { createHash } from 'node:crypto';
import { BSON } from 'mongodb';
import { PRIMARY_KEY, queryableFields, STAMPS_FIELD, type CollectionModel, type DataModel, type FieldModel } from '../../protocol/model.ts';
import { toStoredFields, toStoredId } from '../../protocol/bson-values.ts';
import type { SyncDocument } from '../../protocol/messages.ts';
import type { User } from '../auth/authenticator.ts';
import { checkFilter, QueryError } from '../../protocol/filter.ts';
import { compileFilter, type CompiledFilter } from '../query/filter.ts';
import { toWireForm, type StoredDocument } from '../store/collection-store.ts';
import { sameState } from '../sync/same-state.ts';
import { resolve, type Expansions, type Expression } from './expressions.ts';
import type { Role, RuleSet } from './load.ts';

/** All documents, none, or those matching a filter. */
export type DocumentSet = 'all' | 'none' | CompiledFilter;

export interface CollectionPermissions {
  /** The role in force; null: no role applies (no access). */
  role: string | null;
  /** True when this user may do anything in the collection (no rules narrow it). */
  unrestricted: boolean;
  read: DocumentSet;
  write: DocumentSet;
  /** The documents the role may insert (its `insert`, an expression over the new document). */
  insert: DocumentSet;
  /** The documents the role may delete (its `delete`, over the document deleted). */
  delete: DocumentSet;
  readableField(field: string): boolean;
  writableField(field: string): boolean;
  /** The document with the fields this user may not read removed. */
  project(doc: SyncDocument): SyncDocument;
  /**
   * Identifies the user and what these permissions let it read: work cached between requests
   * (a bootstrap's or a pull's open cursor) is only ever continued by the same fingerprint.
   */
  readonly fingerprint: string;
  /**
   * Identifies what these permissions let a live stream send, and nothing more (not the user):
   * the read set as resolved, the hidden fields, whether the role is unrestricted. Subscribers
   * whose views and read keys are equal receive the same documents (sync/stream.ts, sharedEvent).
   */
  readonly readKey: string;
}

export const UNRESTRICTED: CollectionPermissions = {
  role: null,
  unrestricted: true,
  read: 'all',
  write: 'all',
  insert: 'all',
  delete: 'all',
  readableField: () => true,
  writableField: () => true,
  project: (doc) => doc,
  fingerprint: 'unrestricted',
  readKey: 'unrestricted',
};

export function inSet(set: DocumentSet, stored: StoredDocument): boolean {
  return set === 'all' || (set !== 'none' && set.matches(stored));
}

export interface WriteDenial {
  /** The field the role may not write, when that is the reason. */
  field: string | null;
  message: string;
}

/**
 * A refusal as a client is told it, in Realm's words (apps match on them):
 * `write to "<id>" in table "<Type>" not allowed; <why>`.
 */
export function denialReason(model: CollectionModel, id: unknown, denial: WriteDenial): string {
  return `write to ${JSON.stringify(String(id))} in table ${JSON.stringify(model.typeName)} not allowed; ${denial.message}`;
}

/**
 * The checks of whether the role may write at all, made before any merge work: `stored` absent
 * or a tombstone means an insert, and so does a document this user may not read, so that a
 * refusal says nothing about whether such a document exists. Insert rights are decided on the
 * document inserted, delete rights on the document deleted (the pushed state, when the user may
 * not know the stored one).
 */
export function accessDenial(permissions: CollectionPermissions, model: CollectionModel, stored: StoredDocument | undefined, doc: SyncDocument): WriteDenial | null {
  if (permissions.unrestricted) return null;
  const known = knownTo(permissions, stored);
  if (doc._deleted) {
    if (!inSet(permissions.delete, known ? stored : asStored(model, doc))) return { field: null, message: 'the role may not delete this document' };
  } else if (!known && !inSet(permissions.insert, asStored(model, doc))) {
    return { field: null, message: 'the role may not insert this document' };
  }
  if (stored !== undefined && !stored._sync.deleted && !inSet(permissions.write, stored)) return { field: null, message: 'the role may not change this document' };
  return null;
}

/**
 * The checks that need no merge: whether the role may change `stored` at all (accessDenial) and,
 * unless the user may read it, whether `doc` itself is outside the write filter, said first: a
 * document the user may read it may know to be closed to it; for any other, the answer must not
 * depend on whether it exists.
 */
export function preMergeDenial(permissions: CollectionPermissions, model: CollectionModel, stored: StoredDocument | undefined, doc: SyncDocument): WriteDenial | null {
  if (permissions.unrestricted) return null;
  const access = accessDenial(permissions, model, stored, doc);
  if (knownTo(permissions, stored) || doc._deleted) return access;
  return outsideWriteFilter(permissions, model, doc) ?? access;
}

/** Whether the user may read the stored document (and so know it exists). */
function knownTo(permissions: CollectionPermissions, stored: StoredDocument | undefined): stored is StoredDocument {
  return stored !== undefined && !stored._sync.deleted && inSet(permissions.read, stored);
}

function outsideWriteFilter(permissions: CollectionPermissions, model: CollectionModel, doc: SyncDocument): WriteDenial | null {
  return inSet(permissions.write, asStored(model, doc)) ? null : { field: null, message: 'the document would leave what the role may write (write filter)' };
}

const storedForms = new WeakMap<SyncDocument, StoredDocument>();
const queryableByModel = new WeakMap<CollectionModel, FieldModel[]>();
/** The metadata of a state that is only matched against filters (none reads it). */
const UNWRITTEN: StoredDocument['_sync'] = Object.freeze({ seq: 0, updatedAt: new Date(0), deleted: false });

/**
 * A pushed state as the stored document it would be, for matching filters against: its queryable
 * fields only, the only ones a filter may name (rules and subscriptions alike). Converted once
 * per state: a push checks one state against several filters (insert, write before and after).
 */
export function asStored(model: CollectionModel, doc: SyncDocument): StoredDocument {
  let stored = storedForms.get(doc);
  if (!stored) {
    let fields = queryableByModel.get(model);
    if (!fields) queryableByModel.set(model, (fields = queryableFields(model).filter((f) => f.name !== PRIMARY_KEY)));
    const values: Record<string, unknown> = {};
    for (const { name } of fields) if (Object.hasOwn(doc, name)) values[name] = doc[name];
    stored = { _id: toStoredId(model, doc[PRIMARY_KEY]) as string, ...toStoredFields(fields, values), _sync: UNWRITTEN } as StoredDocument;
    storedForms.set(doc, stored);
  }
  return stored;
}

/**
 * Why the role may not change `stored` (absent or a tombstone: an insert) into `doc`, or null
 * when it may: the write filter must hold before and after, inserts and deletes need their
 * rights, and every field an update changes must be writable.
 */
export function writeDenial(permissions: CollectionPermissions, model: CollectionModel, stored: StoredDocument | undefined, doc: SyncDocument): WriteDenial | null {
  if (permissions.unrestricted) return null;
  // (preMergeDenial checked the write filter on `doc` already, unless the user may read `stored`.)
  const denial = preMergeDenial(permissions, model, stored, doc) ?? (!doc._deleted && knownTo(permissions, stored) ? outsideWriteFilter(permissions, model, doc) : null);
  if (denial || doc._deleted || stored === undefined || stored._sync.deleted) return denial;
  const before = toWireForm(model, stored);
  for (const field of model.fields) {
    if (field.name === PRIMARY_KEY) continue;
    const changed = !sameState({ v: before[field.name] }, { v: doc[field.name] });
    if (changed && !permissions.writableField(field.name)) return { field: field.name, message: `the role may not write ${model.typeName}.${field.name}` };
  }
  return null;
}

/**
 * The first field a pushed document (or its stamps) names that this user may not read, or
 * null. Such a row is refused whatever the value: comparing it with the stored one would tell
 * the user whether its guess was right.
 */
export function hiddenFieldNamed(permissions: CollectionPermissions, model: CollectionModel, doc: SyncDocument): string | null {
  if (permissions.unrestricted) return null;
  const stamps = doc[STAMPS_FIELD];
  const stamped = new Set(stamps !== null && typeof stamps === 'object' ? Object.keys(stamps).map((path) => path.split('.')[0]!) : []);
  for (const field of model.fields) {
    if (permissions.readableField(field.name)) continue;
    if ((Object.hasOwn(doc, field.name) && doc[field.name] !== null && doc[field.name] !== undefined) || stamped.has(field.name)) return field.name;
  }
  return null;
}

/**
 * `doc` with the stored values of the fields this user may not read: a client never holds them,
 * so leaving them out of a push means "unchanged", and every comparison with the stored state
 * (already applied, conflict, field rights) is blind to them.
 */
export function withHiddenFieldsOf(permissions: CollectionPermissions, model: CollectionModel, doc: SyncDocument, stored: StoredDocument | undefined): SyncDocument {
  if (permissions.unrestricted) return doc;
  const hidden = model.fields.filter((f) => !permissions.readableField(f.name));
  if (hidden.length === 0) return doc;
  const storedWire = stored ? toWireForm(model, stored) : {};
  const out: SyncDocument = { ...doc };
  for (const { name } of hidden) {
    if (Object.hasOwn(storedWire, name)) out[name] = (storedWire as Record<string, unknown>)[name];
    else delete out[name];
  }
  return out;
}

/**
 * The permissions of a session whose client knows only some of the collection's fields (an app
 * built against an older schema.graphql, protocol/schema-evolution.ts): the other fields are
 * treated as fields it may not read. So they are never sent to it (pulls, streams, bootstraps,
 * push replies all project), and a write from it keeps their stored values (withHiddenFieldsOf).
 * `base` itself when the client knows every field.
 */
export function narrowToKnownFields(base: CollectionPermissions, model: CollectionModel, known: ReadonlySet<string>): CollectionPermissions {
  const unknown = model.fields.map((f) => f.name).filter((f) => f !== PRIMARY_KEY && !known.has(f));
  return unknown.length === 0 ? base : new NarrowedPermissions(base, unknown);
}

/** `base` with more fields it may not read (narrowToKnownFields). */
class NarrowedPermissions implements CollectionPermissions {
  readonly role: string | null;
  // Fast paths that skip field checks must not apply: there are fields to keep out.
  readonly unrestricted = false;
  readonly read: DocumentSet;
  readonly write: DocumentSet;
  readonly insert: DocumentSet;
  readonly delete: DocumentSet;
  private fingerprintCache: string | undefined;
  private readKeyCache: string | undefined;

  constructor(
    private readonly base: CollectionPermissions,
    private readonly unknown: string[],
  ) {
    ({ role: this.role, read: this.read, write: this.write, insert: this.insert, delete: this.delete } = base);
  }

  readableField(field: string): boolean {
    return !this.unknown.includes(field) && this.base.readableField(field);
  }

  writableField(field: string): boolean {
    return !this.unknown.includes(field) && this.base.writableField(field);
  }

  project(doc: SyncDocument): SyncDocument {
    return withoutFields(this.base.project(doc), this.unknown);
  }

  get fingerprint(): string {
    return (this.fingerprintCache ??= createHash('sha256').update(JSON.stringify([this.base.fingerprint, this.unknown])).digest('base64url'));
  }

  get readKey(): string {
    return (this.readKeyCache ??= digest([this.base.readKey, this.unknown]));
  }
}

export class PermissionEngine {
  private cache = new WeakMap<User, Map<string, CollectionPermissions>>();
  private readonly listeners = new Set<(user: User | null) => void>();
  /** Counts rule reloads: permissions decided under other rules never share a fingerprint. */
  private generation = 0;

  constructor(
    private readonly model: DataModel,
    private rules: RuleSet,
  ) {}

  /** New rules for everyone: sessions re-evaluate their roles (see onChange). */
  reload(rules: RuleSet): void {
    this.rules = rules;
    this.generation++;
    this.cache = new WeakMap();
    this.listeners.forEach((l) => l(null));
  }

  /** This user's custom data (or claims) changed: its sessions re-evaluate their roles. */
  userChanged(user: User): void {
    this.cache.delete(user);
    this.listeners.forEach((l) => l(user));
  }

  /** Called with the user whose permissions may have changed, or null for everyone. */
  onChange(listener: (user: User | null) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The user's permissions on a collection, decided once per user object (= per session). */
  forUser(user: User | undefined, collection: string): CollectionPermissions {
    if (!user) return DENY_ALL;
    let perUser = this.cache.get(user);
    if (!perUser) {
      perUser = new Map();
      this.cache.set(user, perUser);
    }
    let permissions = perUser.get(collection);
    if (!permissions) {
      const model = this.model.collections.find((c) => c.name === collection)!;
      const values = expansionsOf(user, this.rules.constants);
      permissions = decide(model, roleFor(this.rules.roles.get(collection) ?? [], values), values, this.generation);
      perUser.set(collection, permissions);
    }
    return permissions;
  }
}

/** No role: no access (every user without one shares it). */
const DENY_ALL: CollectionPermissions = Object.freeze({
  ...UNRESTRICTED,
  unrestricted: false,
  read: 'none',
  write: 'none',
  insert: 'none',
  delete: 'none',
  readableField: (f: string) => f === PRIMARY_KEY,
  writableField: () => false,
  fingerprint: 'none',
  readKey: 'none',
});

function expansionsOf(user: User, constants: RuleSet['constants']): Expansions {
  return { user: { id: user.id, data: user.data, custom_data: user.customData ?? {} }, ...constants };
}

/** The first role whose apply_when holds for the user (Realm: chosen once per session), or null. */
function roleFor(roles: Role[], values: Expansions): Role | null {
  return roles.find((r) => resolve(r.apply_when, values) === true) ?? null;
}

function decide(collection: CollectionModel, role: Role | null, values: Expansions, generation: number): CollectionPermissions {
  if (!role) return DENY_ALL;
  return new RolePermissions(collection, role, values, generation);
}

/**
 * What a role lets one user do in a collection, its expressions resolved with the user's values.
 * A class (one is held per session and collection): methods, not closures per session.
 */
class RolePermissions implements CollectionPermissions {
  readonly role: string;
  readonly unrestricted: boolean;
  readonly read: DocumentSet;
  readonly write: DocumentSet;
  readonly insert: DocumentSet;
  readonly delete: DocumentSet;
  private readonly hidden: string[];
  private fingerprintCache: string | undefined;
  private readKeyCache: string | undefined;

  constructor(
    collection: CollectionModel,
    private readonly rules: Role,
    private readonly values: Expansions,
    private readonly generation: number,
  ) {
    const { fields, additional_fields: extra } = rules;
    const mayWriteSomething = rules.write || Object.values(fields).some((p) => p.write) || Boolean(extra.write);
    const mayReadSomething = mayWriteSomething || rules.read || Object.values(fields).some((p) => p.read) || Boolean(extra.read);
    this.role = rules.name;
    this.write = mayWriteSomething ? documentSet(collection, rules.document_filters.write, values) : 'none';
    const readOnly = mayReadSomething ? documentSet(collection, rules.document_filters.read, values) : 'none';
    this.hidden = collection.fields.map((f) => f.name).filter((f) => !this.readableField(f));
    this.read = union(readOnly, this.write);
    this.insert = documentSet(collection, rules.insert, values);
    this.delete = documentSet(collection, rules.delete, values);
    this.unrestricted = this.read === 'all' && this.write === 'all' && rules.write && this.insert === 'all' && this.delete === 'all';
  }

  readableField(f: string): boolean {
    const { read, write, fields, additional_fields: extra } = this.rules;
    return f === PRIMARY_KEY || read || write || Boolean(fields[f]?.read || fields[f]?.write) || (!(f in fields) && Boolean(extra.read || extra.write));
  }

  writableField(f: string): boolean {
    const { write, fields, additional_fields: extra } = this.rules;
    return write || Boolean(fields[f]?.write) || (!(f in fields) && Boolean(extra.write));
  }

  project(doc: SyncDocument): SyncDocument {
    return this.hidden.length === 0 ? doc : withoutFields(doc, this.hidden);
  }

  // Computed on first use: most sessions never continue a cursor.
  get fingerprint(): string {
    const { read, hidden } = this;
    return (this.fingerprintCache ??= createHash('sha256')
      .update(JSON.stringify([this.generation, this.values.user, this.role, read === 'all' || read === 'none' ? read : read.stored, hidden]))
      .digest('base64url'));
  }

  get readKey(): string {
    const { read, hidden } = this;
    return (this.readKeyCache ??= digest([this.unrestricted, read === 'all' || read === 'none' ? read : read.stored, hidden]));
  }
}

/** A key for values that may hold BSON types: canonical Extended JSON, so types stay apart. */
function digest(value: unknown): string {
  return createHash('sha256').update(BSON.EJSON.stringify(value, { relaxed: false })).digest('base64url');
}

/** The document without the hidden fields, and without their stamps (a counter's state is its value). */
function withoutFields(doc: SyncDocument, hidden: string[]): SyncDocument {
  const out = Object.fromEntries(Object.entries(doc).filter(([k]) => !hidden.includes(k))) as SyncDocument;
  const stamps = doc[STAMPS_FIELD] as Record<string, unknown> | undefined;
  if (stamps) out[STAMPS_FIELD] = Object.fromEntries(Object.entries(stamps).filter(([path]) => !hidden.includes(path.split('.')[0]!)));
  return out;
}

/** The documents an expression (a document filter, insert or delete) selects for this session. */
function documentSet(collection: CollectionModel, expression: Expression, values: Expansions): DocumentSet {
  const comparable = (condition: Record<string, unknown>) => {
    try {
      checkFilter(collection, condition, { queryableOnly: true });
      return true;
    } catch (error) {
      if (error instanceof QueryError) return false;
      throw error;
    }
  };
  const filter = resolve(expression, values, comparable);
  if (filter === true) return 'all';
  if (filter === false) return 'none';
  try {
    return compileFilter(collection, filter, { queryableOnly: true });
  } catch (error) {
    // The rule was checked at load time; what this user's values made of it is not a filter
    // (say a list where a value belongs): it selects nothing, rather than failing or widening.
    if (error instanceof QueryError) return 'none';
    throw error;
  }
}

function union(a: DocumentSet, b: DocumentSet): DocumentSet {
  if (a === 'all' || b === 'all') return 'all';
  if (a === 'none') return b;
  if (b === 'none') return a;
  return {
    stored: { $or: [a.stored, b.stored] },
    matches: (doc) => a.matches(doc) || b.matches(doc),
  } as CompiledFilter;
}
