// Yoga (envelop) plugins that bound what one GraphQL operation may cost, over HTTP and over
// graphql-ws alike (websocket.ts runs Yoga's parse and validate): GraphQL Armor's limits on
// tokens, depth, aliases and directives, a guard on bracket nesting (graphql's parser recurses),
// and the document budget (document-budget.ts). Refusals carry `extensions.code: TOO_COMPLEX`.
import { maxAliasesPlugin } from '@escape.tech/graphql-armor-max-aliases';
import { maxDepthPlugin } from '@escape.tech/graphql-armor-max-depth';
import { maxDirectivesPlugin } from '@escape.tech/graphql-armor-max-directives';
import { maxTokensPlugin } from '@escape.tech/graphql-armor-max-tokens';
import { GraphQLError, Lexer, Source, TokenKind } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { documentBudgetPlugin } from './document-budget.ts';
import { LIMIT_CODES, limitError } from './errors.ts';

export interface OperationLimits {
  /** Lexical tokens in the query text. */
  maxTokens: number;
  /** Depth of field selections, fragments flattened; introspection included (the standard query is 15 deep). */
  maxDepth: number;
  /** Aliased fields in an operation. */
  maxAliases: number;
  /** Directives in an operation. */
  maxDirectives: number;
  /** Sum of the `limit` arguments of the list fields an operation selects. */
  maxDocumentsPerRequest: number;
}

/**
 * Brackets (`{ [ (`) nested deeper than this are refused before parsing: graphql's parser
 * recurses and overflows the stack near 2,000 levels. Selections (maxDepth) plus a JSONObject
 * literal (32 levels) stay far below it.
 */
export const MAX_NESTING = 128;

export function operationLimitPlugins(limits: OperationLimits): Plugin[] {
  // GraphQL Armor throws "Syntax Error: ..." without a code; give its refusals ours.
  const onReject = [(_: unknown, error: GraphQLError) => asTooComplex(error)];
  return [
    maxTokensPlugin({ n: limits.maxTokens, onReject }) as Plugin,
    nestingGuardPlugin(limits.maxTokens),
    maxDepthPlugin({ n: limits.maxDepth, flattenFragments: true, ignoreIntrospection: false, onReject }) as Plugin,
    maxAliasesPlugin({ n: limits.maxAliases, onReject }) as Plugin,
    maxDirectivesPlugin({ n: limits.maxDirectives, onReject }) as Plugin,
    documentBudgetPlugin(limits.maxDocumentsPerRequest),
  ];
}

function asTooComplex(error: GraphQLError): void {
  error.message = error.message.replace(/^Syntax Error: /, '');
  (error.extensions as Record<string, unknown>).code = LIMIT_CODES.TOO_COMPLEX;
}

/** Wraps the parser (after the token limit): refuses bracket nesting deeper than MAX_NESTING. */
function nestingGuardPlugin(maxTokens: number): Plugin {
  return {
    onParse: ({ parseFn, setParseFn }) => {
      setParseFn((source, options) => {
        if (nestingOf(typeof source === 'string' ? source : source.body, maxTokens + 1) > MAX_NESTING) {
          throw limitError('TOO_COMPLEX', `the query nests brackets deeper than ${MAX_NESTING} levels`);
        }
        return parseFn(source, options);
      });
    },
  };
}

/** The deepest bracket nesting within the first `maxTokens` tokens (the lexer does not recurse). */
function nestingOf(body: string, maxTokens: number): number {
  const lexer = new Lexer(new Source(body));
  let depth = 0;
  let deepest = 0;
  try {
    for (let tokens = 0; tokens < maxTokens; tokens++) {
      const token = lexer.advance();
      if (token.kind === TokenKind.EOF) break;
      if (token.kind === TokenKind.BRACE_L || token.kind === TokenKind.BRACKET_L || token.kind === TokenKind.PAREN_L) deepest = Math.max(deepest, ++depth);
      else if (token.kind === TokenKind.BRACE_R || token.kind === TokenKind.BRACKET_R || token.kind === TokenKind.PAREN_R) depth--;
    }
  } catch {
    // A lexical error: the parser reports it.
  }
  return deepest;
}
