// What the admin page shows of a running gateway: its open sessions (a WebSocket and its user)
// with their live streams and Flexible Sync bootstraps, the last refused writes, and the rules
// in force. The gateway keeps no per-client sync state (ARCHITECTURE.md, Flexible Sync); this is
// only what it sees pass, kept in memory, per instance, and bounded.
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { WebSocket } from 'ws';
import type { User } from '../auth/authenticator.ts';
import type { PushRejection } from '../../protocol/messages.ts';
import type { RuleSet } from '../rules/load.ts';
import { compensatingReason } from '../sync/push.ts';

/** Refused writes kept for the admin page. */
export const RECENT_REFUSALS = 200;
/** Bounds on what a client sent that is kept (its queries, ids, user agent). */
const MAX_TEXT = 2_000;

export interface LiveStream {
  collection: string;
  kind: 'sync' | 'watch';
  /** The stream's Flexible Sync queries (view) or watch filter, as JSON; null: everything. */
  queries: string | null;
  since: number;
}

export interface BootstrapState {
  /** bootstrapping: the last page answered had more to come. */
  state: 'bootstrapping' | 'complete';
  documents: number;
  estimatedTotal: number | null;
  at: number;
}

export interface Session {
  id: string;
  user: User;
  connectedAt: number;
  remoteAddress: string | null;
  userAgent: string | null;
  streams: Set<LiveStream>;
  bootstraps: Map<string, BootstrapState>;
  lastPullAt: Map<string, number>;
}

export interface Refusal {
  at: number;
  collection: string;
  documentId: string | null;
  code: string;
  /** For a compensating write: outside-subscriptions, field-permission or role. */
  reason: string | null;
  field: string | null;
  message: string;
  userId: string | null;
  /** Where it came from: a sync push, or a plain mutation. */
  via: 'push' | 'mutation';
}

export interface RulesState {
  path: string;
  rules: RuleSet;
  loadedAt: number;
  lastReload: { at: number; ok: boolean; error: string | null } | null;
}

export class Activity {
  private readonly sessions = new Map<WebSocket, Session>();
  private readonly refusals: Refusal[] = [];
  rules: RulesState;

  constructor(rulesPath: string, rules: RuleSet) {
    this.rules = { path: rulesPath, rules, loadedAt: Date.now(), lastReload: null };
  }

  opened(socket: WebSocket, user: User, request: IncomingMessage): void {
    const agent = request.headers['user-agent'];
    this.sessions.set(socket, {
      id: randomBytes(6).toString('hex'),
      user,
      connectedAt: Date.now(),
      remoteAddress: request.socket.remoteAddress ?? null,
      userAgent: typeof agent === 'string' ? bounded(agent) : null,
      streams: new Set(),
      bootstraps: new Map(),
      lastPullAt: new Map(),
    });
    socket.once('close', () => this.sessions.delete(socket));
  }

  session(socket: unknown): Session | undefined {
    return socket ? this.sessions.get(socket as WebSocket) : undefined;
  }

  allSessions(): Session[] {
    return [...this.sessions.values()];
  }

  refused(collection: string, rejection: Pick<PushRejection, 'id' | 'code' | 'field' | 'message'>, user: User | undefined, via: Refusal['via']): void {
    this.refusals.push({
      at: Date.now(),
      collection,
      documentId: rejection.id === null ? null : bounded(String(rejection.id)),
      code: rejection.code,
      reason: via === 'push' ? compensatingReason(rejection) : null,
      field: rejection.field,
      message: bounded(rejection.message),
      userId: user?.id ?? null,
      via,
    });
    if (this.refusals.length > RECENT_REFUSALS) this.refusals.splice(0, this.refusals.length - RECENT_REFUSALS);
  }

  /** Newest first. */
  recentRefusals(): Refusal[] {
    return [...this.refusals].reverse();
  }

  rulesLoaded(rules: RuleSet): void {
    this.rules = { ...this.rules, rules, loadedAt: Date.now(), lastReload: { at: Date.now(), ok: true, error: null } };
  }

  rulesRefused(error: unknown): void {
    this.rules = { ...this.rules, lastReload: { at: Date.now(), ok: false, error: bounded(error instanceof Error ? error.message : String(error)) } };
  }
}

/** Client-sent text kept within MAX_TEXT characters. */
export function bounded(text: string): string {
  return text.length <= MAX_TEXT ? text : `${text.slice(0, MAX_TEXT)}…`;
}
