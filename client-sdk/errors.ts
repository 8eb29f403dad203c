// Errors the sync session reports to the app (client.errors$).
import type { PushRejection } from '../protocol/messages.ts';

export type SyncError =
  /** The gateway refused a pushed document; the local copy was reverted to the server's state. */
  | ({ kind: 'rejected'; collection: string } & PushRejection)
  /** A pull, push or stream failed; replication retries by itself. */
  | { kind: 'replication'; collection: string; message: string }
  /** The gateway refused the credentials (close code 4401); syncing stops until a new log-in. */
  | { kind: 'auth'; code: number; reason: string };
