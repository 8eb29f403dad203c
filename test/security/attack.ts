// What the adversarial suite needs beyond the harness: a user's GraphQL over HTTP and over a
// graphql-ws socket, the sync operations' texts, seeding with the driver-free write path, and a
// scan of everything a user received for what it must never see.
import { createClient, type Client } from 'graphql-ws/client';
import { expect } from 'vitest';
import { WebSocket } from 'ws';
import { syncOperations, type SyncOperations } from '../../protocol/operations.ts';
import type { Gateway } from '../../gateway/server.ts';
import { graphqlHttp, testToken } from '../helpers/harness.ts';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type GraphQLAnswer = { data?: Record<string, any>; errors?: Array<{ message: string; extensions?: Record<string, unknown> }> };

/** One signed-in user, as an attacker would drive it. */
export interface Attacker {
  id: string;
  token: string;
  /** Every answer this user received, to scan for leaks. */
  received: unknown[];
  http(query: string, variables?: Record<string, unknown>): Promise<GraphQLAnswer>;
  /** A subscription over a graphql-ws socket of this user; events land in `events`. */
  subscribe(query: string, variables?: Record<string, unknown>): { events: GraphQLAnswer[]; errors: unknown[]; stop(): void };
  close(): Promise<void>;
}

export async function attacker(gateway: Gateway, id: string, claims: Record<string, unknown> = {}): Promise<Attacker> {
  const token = await testToken(id, claims);
  let socket: Client | null = null;
  const received: unknown[] = [];
  return {
    id,
    token,
    received,
    async http(query, variables = {}) {
      const answer = await graphqlHttp(gateway.httpUrl, query, variables, token);
      received.push(answer);
      return answer;
    },
    subscribe(query, variables = {}) {
      socket ??= createClient({ url: gateway.wsUrl, webSocketImpl: WebSocket, lazy: false, retryAttempts: 0, connectionParams: { authToken: token } });
      const events: GraphQLAnswer[] = [];
      const errors: unknown[] = [];
      const stop = socket.subscribe(
        { query, variables },
        {
          next: (event) => {
            events.push(event as GraphQLAnswer);
            received.push(event);
          },
          error: (error) => {
            errors.push(error);
            received.push(error);
          },
          complete: () => {},
        },
      );
      return { events, errors, stop };
    },
    async close() {
      await socket?.dispose();
    },
  };
}

export function tasksOps(gateway: Gateway): SyncOperations {
  return syncOperations(gateway.model.collections.find((c) => c.name === 'tasks')!);
}

/** Writes documents as the gateway itself (no user rules), like an admin import would. */
export async function seed(gateway: Gateway, collection: string, docs: Array<Record<string, unknown>>): Promise<void> {
  const result = await gateway.collections.get(collection)!.writer.push(docs.map((d) => ({ assumedMasterState: null, newDocumentState: { ...d, _deleted: false } })));
  expect(result.rejected).toEqual([]);
}

/** Fails if any of `secrets` (ids, field values) appears anywhere in what `user` received. */
export function expectNothingLeaked(user: Attacker, secrets: string[]): void {
  const seen = JSON.stringify(user.received);
  for (const secret of secrets) expect(seen, `${user.id} received ${secret}`).not.toContain(secret);
}
