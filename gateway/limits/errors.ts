// The errors of the request limits (PROTOCOL.md, section 10): a refused request gets one of these
// codes and a message naming the limit; nothing of it runs.
import { GraphQLError } from 'graphql';

export const LIMIT_CODES = {
  /** Too many tokens, aliases, directives, too deep, or more documents than a request may ask for. */
  TOO_COMPLEX: 'TOO_COMPLEX',
  /** A socket already holds as many subscriptions as it may. */
  TOO_MANY_SUBSCRIPTIONS: 'TOO_MANY_SUBSCRIPTIONS',
  /** A socket already has as many queries and mutations running as it may. */
  TOO_MANY_OPERATIONS: 'TOO_MANY_OPERATIONS',
} as const;

export function limitError(code: keyof typeof LIMIT_CODES, message: string): GraphQLError {
  return new GraphQLError(message, { extensions: { code } });
}
