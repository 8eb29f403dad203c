// Errors the sync session reports to the app (client.errors$).
import type { PushRejection } from '../protocol/messages.ts';

export type SyncError =
  /** The gateway refused a pushed document; the local copy was reverted to the server's state. */
  | ({ kind: 'rejected'; collection: string } & PushRejection)
  /** A pull, push or stream failed; replication retries by itself. */
  | { kind: 'replication'; collection: string; message: string };
