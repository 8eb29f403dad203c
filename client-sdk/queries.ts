// Subscription queries as apps write them (an RxDB Mango selector or a Realm Query Language
// string) turned into the one filter form the gateway matches with. Checked here so a bad query
// fails at once, and again by the gateway, which trusts no client.
import { checkFilter, normalizeOperand, rewriteFilter, BAD_QUERY_CODE, QueryError, type Filter } from '../protocol/filter.ts';
import type { CollectionModel } from '../protocol/model.ts';
import { parseRql, rqlFieldsOf, RqlSyntaxError } from '../protocol/rql.ts';

/** An RxDB Mango selector, or an RQL string such as `status == 'TODO' AND priority <= $0`. */
export type SubscriptionQuery = string | Record<string, unknown>;

export class BadQueryError extends Error {
  override name = 'BadQueryError';
  readonly code = 'BAD_QUERY';
  /** Realm's error code for a query the server cannot serve. */
  readonly realmCode = BAD_QUERY_CODE;
}

export function toFilter(collection: CollectionModel, query: SubscriptionQuery, args: readonly unknown[] = []): Filter {
  try {
    // With the collection's fields, RQL reads as realm-core reads it against the schema (a
    // comparison on a list compares its elements).
    const filter = typeof query === 'string' ? parseRql(query, args, rqlFieldsOf(collection)) : query;
    // Checked as the gateway checks subscriptions (gateway/sync/view.ts).
    const checked = checkFilter(collection, normalize(filter), { queryableOnly: true, subscription: true });
    // Dates as the gateway sends them (`...00.000Z`), and other typed values in their canonical
    // wire form (lowercase hex, Long as a decimal string), so local matching compares like with like.
    return rewriteFilter(collection, checked, { operand: (type, v) => (type === 'DateTime' ? new Date(v as string).toISOString() : normalizeOperand(type, v)) });
  } catch (error) {
    if (error instanceof RqlSyntaxError || error instanceof QueryError) throw new BadQueryError(error.message);
    throw error;
  }
}

/** Plain JSON (dates as ISO strings), so equal queries compare equal and persist as-is. */
function normalize(filter: unknown): Filter {
  return JSON.parse(JSON.stringify(filter)) as Filter;
}

export function sameFilter(a: Filter, b: Filter): boolean {
  return canonicalJson(a) === canonicalJson(b);
}

export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}
