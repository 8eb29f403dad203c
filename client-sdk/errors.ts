// Errors the sync session reports to the app (client.errors$).
import type { PushRejection } from '../protocol/messages.ts';
import type { ClientResetRequired } from './reset.ts';

export type SyncError =
  /** The gateway refused a pushed document; the local copy was reverted to the server's state. */
  | ({ kind: 'rejected'; collection: string } & PushRejection)
  /** A pull, push or stream failed; replication retries by itself. */
  | { kind: 'replication'; collection: string; message: string }
  /** The gateway refused the credentials (close code 4401); syncing stops until a new log-in. */
  | { kind: 'auth'; code: number; reason: string }
  /** The gateway refused the app's data model (close code 4426); syncing stops until the app is updated. */
  | SchemaOutdatedError
  /** The gateway asked for a client reset; it is carried out in the configured mode (reset.ts). */
  | ClientResetRequired;

/**
 * The app was built against a schema.graphql the gateway no longer accepts (a breaking
 * difference: a field removed or retyped, ...). `reason` names the differences, as many as fit
 * in a WebSocket close reason.
 */
export interface SchemaOutdatedError {
  kind: 'schema';
  code: number;
  reason: string;
}
