// Syncing an RxDB collection with a Tributary gateway using only RxDB's stock
// `replicateGraphQL` plugin (no Tributary SDK). See PROTOCOL.md, "Using RxDB's replicateGraphQL".
// Pulls and pushes go over HTTP, the stream over graphql-ws, as the plugin does.
import type { RxCollection } from 'rxdb';
import { replicateGraphQL } from 'rxdb/plugins/replication-graphql';

export function replicateTasks(collection: RxCollection, url: { http: string; ws: string }, token: string) {
  return replicateGraphQL<Record<string, unknown>, { seq: number }>({
    collection,
    url,
    // The user's token: HTTP requests carry it as a header, the socket in connection_init.
    headers: { Authorization: `Bearer ${token}` },
    replicationIdentifier: `tributary-tasks-${url.http}`,
    live: true,
    pull: {
      batchSize: 500,
      queryBuilder: (checkpoint, limit) => ({
        query: `query PullTasks($checkpoint: SyncCheckpointInput, $limit: Int!) {
          pullTasks(checkpoint: $checkpoint, limit: $limit) { documents checkpoint { seq } }
        }`,
        operationName: 'PullTasks',
        variables: { checkpoint: checkpoint ?? null, limit },
      }),
      streamQueryBuilder: () => ({
        query: 'subscription StreamTasks { streamTasks { documents checkpoint { seq } resync } }',
        operationName: 'StreamTasks',
        variables: {},
      }),
      wsOptions: { connectionParams: { authToken: token } },
      // The gateway asks for a resync (pull from the checkpoint) at the start of every stream.
      responseModifier: (response: any, origin: string) => (origin === 'stream' && response.resync ? 'RESYNC' : response) as any,
    },
    push: {
      batchSize: 100,
      queryBuilder: (rows) => ({
        query: `mutation PushTasks($rows: [SyncPushRow!]!) {
          pushTasks(rows: $rows) { conflicts rejected { id code field message } }
        }`,
        operationName: 'PushTasks',
        variables: { rows },
      }),
      // Rejected documents are among `conflicts` too (with the server's state), so RxDB reverts them.
      responseModifier: (response: any) => response.conflicts,
    },
  });
}

/** An RxDB schema for the Task type of schema.graphql, written by hand as a stock RxDB app would. */
export const taskSchema = {
  version: 0,
  primaryKey: 'id',
  type: 'object',
  properties: {
    id: { type: 'string', maxLength: 128 },
    projectId: { type: ['string', 'null'] },
    ownerId: { type: 'string' },
    title: { type: 'string' },
    description: { type: ['string', 'null'] },
    status: { type: 'string', enum: ['TODO', 'IN_PROGRESS', 'BLOCKED', 'DONE'] },
    priority: { type: 'integer' },
    tags: { type: 'array', items: { type: 'string' } },
    dueDate: { type: ['string', 'null'], format: 'date-time' },
    assigneeIds: { type: ['array', 'null'], items: { type: 'string' } },
    checklist: { type: ['array', 'null'], items: { type: 'object' } },
    minutesLogged: { type: ['integer', 'null'] },
  },
  required: ['id', 'ownerId', 'title', 'status', 'priority', 'tags'],
} as const;
