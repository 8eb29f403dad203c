// The comparison ("limit") servers: what the same sockets and payloads cost without Tributary.
//  - bare yoga: graphql-yoga + graphql-ws wired exactly like gateway/server.ts, with the same
//    subscription fields fed by an in-memory pubsub (no MongoDB, no change feed);
//  - plain ws: a WebSocket server that sends one JSON string to every socket.
import { setMaxListeners } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GraphQLScalarType } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { yogaOverWebSocket } from '../gateway/graphql/websocket.ts';
import { createPubSub, createSchema, createYoga } from 'graphql-yoga';
import { WebSocketServer, WebSocket } from 'ws';
import type { StreamEvent } from '../protocol/messages.ts';

export const GRAPHQL_PATH = '/graphql';

export interface BareYogaServer {
  wsUrl: string;
  /** Delivers `event` to every streamTasks subscriber (GraphQL-executed per subscriber). */
  publishTasks(event: StreamEvent): void;
  stop(): Promise<void>;
}

export interface WsBroadcastServer {
  wsUrl: string;
  /** Sends one pre-serialized string to every open socket. */
  broadcast(message: string): void;
  stop(): Promise<void>;
}

const RESYNC: StreamEvent = { documents: [], checkpoint: null, resync: true };

const typeDefs = /* GraphQL */ `
  scalar JSONObject
  type SyncCheckpoint { seq: Float! }
  type SyncStreamEvent { documents: [JSONObject!]!, checkpoint: SyncCheckpoint, resync: Boolean! }
  type TaskChange { id: ID!, deleted: Boolean!, document: JSONObject }
  type Query { _empty: Boolean }
  type Subscription {
    streamTasks: SyncStreamEvent!
    streamProjects: SyncStreamEvent!
    watchTasks(filter: JSONObject): [TaskChange!]!
  }
`;

export async function startBareYoga(): Promise<BareYogaServer> {
  // One EventTarget listener per subscriber: lift Node's leak warning (10 by default).
  const eventTarget = new EventTarget();
  setMaxListeners(0, eventTarget);
  const pubsub = createPubSub<{ tasks: [StreamEvent]; projects: [StreamEvent]; taskChanges: [unknown[]] }>({ eventTarget: eventTarget as never });
  // Like the gateway's sync stream: a resync event first (clients use it as "subscribed").
  async function* stream(topic: 'tasks' | 'projects') {
    yield RESYNC;
    yield* pubsub.subscribe(topic);
  }
  const schema = createSchema({
    typeDefs,
    resolvers: {
      JSONObject: new GraphQLScalarType({ name: 'JSONObject', serialize: (v) => v, parseValue: (v) => v }),
      Subscription: {
        streamTasks: { subscribe: () => stream('tasks'), resolve: (e: StreamEvent) => e },
        streamProjects: { subscribe: () => stream('projects'), resolve: (e: StreamEvent) => e },
        watchTasks: { subscribe: () => pubsub.subscribe('taskChanges'), resolve: (e: unknown[]) => e },
      },
    },
  });
  const yoga = createYoga({ schema, graphqlEndpoint: GRAPHQL_PATH, logging: false });
  const httpServer = createServer((req, res) => void yoga.handle(req, res));
  const wss = new WebSocketServer({ server: httpServer, path: GRAPHQL_PATH });
  // Wired exactly as the gateway does (gateway/graphql/websocket.ts), without authentication.
  const wsServer = useServer<Record<string, unknown> | undefined, Record<PropertyKey, unknown>>(yogaOverWebSocket(yoga), wss);
  const port = await listen(httpServer);
  return {
    wsUrl: `ws://127.0.0.1:${port}${GRAPHQL_PATH}`,
    publishTasks: (event) => pubsub.publish('tasks', event),
    async stop() {
      for (const socket of wss.clients) socket.terminate();
      await wsServer.dispose();
      await closeHttp(httpServer);
    },
  };
}

export async function startWsBroadcast(): Promise<WsBroadcastServer> {
  const httpServer = createServer((_req, res) => res.writeHead(426).end());
  const wss = new WebSocketServer({ server: httpServer });
  const port = await listen(httpServer);
  return {
    wsUrl: `ws://127.0.0.1:${port}/`,
    broadcast(message) {
      for (const socket of wss.clients) if (socket.readyState === WebSocket.OPEN) socket.send(message);
    },
    async stop() {
      for (const socket of wss.clients) socket.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
      await closeHttp(httpServer);
    },
  };
}

function listen(server: Server): Promise<number> {
  return new Promise((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolveListen((server.address() as AddressInfo).port));
  });
}

function closeHttp(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((r) => server.close(() => r()));
}
