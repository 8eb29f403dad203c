// Load shedding: how many sessions one instance holds, and how fast it starts new ones. A new
// session costs a token check and its subscriptions' first reads; after an instance dies its
// clients all come back within seconds (to the survivors, through the balancer), and one taking
// them all at once would fall over. A session over either bound is closed at once with 1013 (Try
// Again Later), before its credentials are checked; clients retry after a backoff with jitter
// (client-sdk/transport.ts), so the sessions refused come back spread out.

export type Refusal = 'capacity' | 'rate';

export class SessionAdmission {
  private tokens: number;
  private refilledAt = Date.now();

  /** 0 means no bound. */
  constructor(
    private readonly maxConnections: number,
    private readonly startsPerSecond: number,
  ) {
    this.tokens = startsPerSecond;
  }

  /** Why a new session must be refused now (`open` sockets, its own included), or null: it is counted as started. */
  refuse(open: number): Refusal | null {
    if (this.maxConnections > 0 && open > this.maxConnections) return 'capacity';
    if (this.startsPerSecond === 0) return null;
    // A token bucket: up to a second's worth of starts at once, then `startsPerSecond`.
    const now = Date.now();
    this.tokens = Math.min(this.startsPerSecond, this.tokens + ((now - this.refilledAt) / 1_000) * this.startsPerSecond);
    this.refilledAt = now;
    if (this.tokens < 1) return 'rate';
    this.tokens--;
    return null;
  }

  reason(refusal: Refusal): string {
    return refusal === 'capacity'
      ? `gateway at capacity (${this.maxConnections} connections): try again later`
      : `too many sessions starting (over ${this.startsPerSecond} a second): try again later`;
  }
}
