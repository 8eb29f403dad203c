// Logging in: turns credentials into a user with a token the gateway accepts. The gateway is the
// judge: logIn() asks it who the token belongs to (the `viewer` query), so a bad token fails
// here, with the gateway's reason, instead of at the first sync.
import { decodeJwt } from 'jose';

export type Credentials =
  | { provider: 'jwt'; token: string }
  | { provider: 'anonymous' }
  | { provider: 'api-key'; key: string };

export const Credentials = {
  /** A token from your identity provider, verified by the gateway's custom-JWT settings. */
  jwt: (token: string): Credentials => ({ provider: 'jwt', token }),
  /** A new anonymous user (the gateway issues its token). */
  anonymous: (): Credentials => ({ provider: 'anonymous' }),
  /** A server-side API key (`npm run api-key -- create`). */
  apiKey: (key: string): Credentials => ({ provider: 'api-key', key }),
};

export interface AuthenticatedUser {
  id: string;
  provider: string;
  token: string;
  /** When the token expires (ms since epoch); null if it does not. */
  expiresAt: number | null;
}

export class LogInError extends Error {
  override name = 'LogInError';
  constructor(
    message: string,
    /** The gateway's reason (`expired`, `bad-signature`, `wrong-audience`, ...). */
    readonly reason: string | null,
  ) {
    super(message);
  }
}

/** Keeps the current user of an app, like Realm's `App`. */
export class TributaryAuth {
  currentUser: AuthenticatedUser | null = null;

  /** @param httpUrl the gateway's GraphQL endpoint, e.g. http://localhost:4000/graphql */
  constructor(private readonly httpUrl: string) {}

  async logIn(credentials: Credentials): Promise<AuthenticatedUser> {
    const token = credentials.provider === 'anonymous' ? await this.anonymousToken() : credentials.provider === 'jwt' ? credentials.token : credentials.key;
    this.currentUser = await this.identify(token);
    return this.currentUser;
  }

  /** Forgets the current user (close its client first; its local database stays on the device). */
  logOut(): void {
    this.currentUser = null;
  }

  /** Who `token` belongs to, according to the gateway. */
  async identify(token: string): Promise<AuthenticatedUser> {
    const response = await fetch(this.httpUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ query: '{ viewer { id provider } }' }),
    });
    const body = (await response.json()) as { data?: { viewer: { id: string; provider: string } }; errors?: Array<{ message: string; extensions?: { reason?: string } }> };
    if (!body.data) throw new LogInError(body.errors?.[0]?.message ?? `log-in failed (HTTP ${response.status})`, body.errors?.[0]?.extensions?.reason ?? null);
    return { ...body.data.viewer, token, expiresAt: tokenExpiry(token) };
  }

  private async anonymousToken(): Promise<string> {
    const response = await fetch(new URL('/auth/anonymous', this.httpUrl), { method: 'POST' });
    const body = (await response.json()) as { token?: string; errors?: Array<{ message: string }> };
    if (!body.token) throw new LogInError(body.errors?.[0]?.message ?? 'anonymous log-in failed', 'provider-disabled');
    return body.token;
  }
}

/** A JWT's `exp` in ms, or null (API keys, tokens without `exp`). */
export function tokenExpiry(token: string): number | null {
  try {
    const { exp } = decodeJwt(token);
    return typeof exp === 'number' ? exp * 1000 : null;
  } catch {
    return null;
  }
}
