// The sync protocol's messages, as both ends see them. PROTOCOL.md is the prose version.

/** A document on the wire: the fields of its schema.graphql type, plus `_deleted`. */
export type SyncDocument = { id: string; _deleted: boolean } & Record<string, unknown>;

/**
 * Position in a collection's change feed. `seq` is the gateway-assigned update sequence; every
 * document change with a sequence at or below it has been delivered. Opaque to clients: they
 * store it and send it back.
 */
export interface Checkpoint {
  seq: number;
  /**
   * Which history `seq` counts in: the collection's feed, and the resets forced on it and on the
   * user. A checkpoint of another history (a database made anew, a forced reset) makes the
   * gateway ask for a client reset (PROTOCOL.md, "Client reset"). Absent: not checked.
   */
  epoch?: string;
}

export interface PullBulk {
  documents: SyncDocument[];
  checkpoint: Checkpoint;
  /** The page was full: pull again from `checkpoint`. */
  hasMore: boolean;
}

/** One page of a subscription query's initial documents (see PROTOCOL.md, "Bootstrap"). */
export interface BootstrapPage {
  documents: SyncDocument[];
  /** The sequence the bootstrap reads at; send it back with every later page. */
  snapshot: number;
  /** Cursor for the next page; null on the last page. */
  next: string | null;
  /** On the first page: how many documents the whole bootstrap holds. */
  estimatedTotal: number | null;
}

/**
 * An event on a collection's stream. `resync: true` (always the first event of a stream, and
 * sent again if the client fell too far behind) tells the client to pull from its checkpoint.
 * Otherwise `documents` are the changes up to `checkpoint`, or, with a null checkpoint, current
 * states after a permission change (the client keeps its checkpoint).
 */
export interface StreamEvent {
  documents: SyncDocument[];
  checkpoint: Checkpoint | null;
  resync: boolean;
}

export interface PushRow {
  /** The server state the client last saw, or null for a document new to the client. */
  assumedMasterState: SyncDocument | null;
  newDocumentState: SyncDocument;
}

export const REJECTION_CODES = {
  /** The document does not match its schema.graphql type. */
  SCHEMA_VIOLATION: 'SCHEMA_VIOLATION',
  /** The row itself is malformed (no id, not an object). */
  BAD_ROW: 'BAD_ROW',
  /** The user's role does not allow this write: a compensating write (Realm code 231). */
  PERMISSION_DENIED: 'PERMISSION_DENIED',
} as const;

/** Realm's error code for a write the permissions refused (a compensating write). */
export const COMPENSATING_WRITE_CODE = 231;
export type RejectionCode = (typeof REJECTION_CODES)[keyof typeof REJECTION_CODES];

export interface PushRejection {
  id: string | null;
  code: RejectionCode;
  /** Path of the offending field, e.g. `priority` or `checklist.0.done`; null for the whole row. */
  field: string | null;
  message: string;
  /** Realm's error code where there is one: 231 for a compensating write. */
  realmCode: number | null;
}

export interface PushResult {
  /**
   * Current server state of every document the push did not apply: real conflicts, and the
   * authoritative state of rejected documents (a tombstone carrying the client's own fields
   * when the server has none), so the client reverts them.
   */
  conflicts: SyncDocument[];
  rejected: PushRejection[];
}

/** WebSocket close codes the gateway uses beyond graphql-ws's own (PROTOCOL.md, "Authentication"). */
export const CLOSE_CODES = {
  /** No valid credentials; the reason says why. Retrying with the same token cannot help. */
  UNAUTHORIZED: 4401,
  /** The token expired (at connect or during the session): get a fresh one and reconnect. */
  TOKEN_EXPIRED: 4440,
  /**
   * The client's data model (its `schema` in connection_init) has a breaking difference against
   * the gateway's: the app must be updated. The reason names the differences (as many as fit).
   * Retrying cannot help. (Not 4409: graphql-ws uses it for "Subscriber already exists".)
   */
  SCHEMA_OUTDATED: 4426,
  /**
   * The instance is draining for a restart (SIGTERM): reconnect, through the balancer, to another.
   * Standard WebSocket code (Service Restart); graphql-ws clients retry it.
   */
  SERVICE_RESTART: 1012,
  /**
   * Load shedding: the instance holds TRIBUTARY_MAX_CONNECTIONS sessions, or is starting more than
   * TRIBUTARY_MAX_SESSION_STARTS_PER_SECOND; retry after a backoff. Standard code (Try Again Later).
   */
  TRY_AGAIN_LATER: 1013,
} as const;
