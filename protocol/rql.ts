// Realm Query Language (RQL), the Flexible Sync subset, read into a MongoDB-style filter.
// Realm clients describe subscriptions as RQL strings with positional arguments; the gateway
// evaluates them as MongoDB filters (in MongoDB and, through mingo, in memory), so this file is
// the one place that decides what an RQL query means.
//
// Shape: a tokenizer, then a recursive-descent parser (OR < AND < NOT < comparison) that builds
// the filter directly; there is no separate syntax tree because nothing else consumes one.

export type Filter = Record<string, unknown>;

export class RqlSyntaxError extends Error {
  override name = 'RqlSyntaxError';
  /** 0-based character offset into the query where the problem starts. */
  readonly position: number;

  constructor(message: string, position: number) {
    super(message);
    this.position = position;
  }
}

/** Parses `query`, substituting `$0`, `$1`, … from `args` (passed through unchanged). */
export function parseRql(query: string, args: readonly unknown[] = []): Filter {
  if (query.trim() === '') throw syntaxError(query, 'expected a predicate, got an empty query', 0);
  return new Parser(query, tokenize(query), args).parseQuery();
}

/** Escapes every regex metacharacter, so the result matches `s` literally (JS and PCRE alike). */
export function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * LIKE: `*` is any run of characters, `?` exactly one, everything else literal. Without the `s`
 * option `.` stops at line breaks, the same in MongoDB and in mingo, so both stay in agreement.
 */
function likeToRegex(pattern: string): string {
  let body = '';
  for (const ch of pattern) body += ch === '*' ? '.*' : ch === '?' ? '.' : escapeRegex(ch);
  return `^${body}$`;
}

function syntaxError(query: string, detail: string, position: number): RqlSyntaxError {
  const rest = query.slice(position);
  const excerpt = rest === '' ? 'at end of query' : `near ${JSON.stringify(rest.length > 20 ? `${rest.slice(0, 20)}…` : rest)}`;
  return new RqlSyntaxError(`${detail} at position ${position}, ${excerpt}`, position);
}

// ---------------------------------------------------------------------------------------------
// Tokenizer

type TokenKind = 'word' | 'string' | 'number' | 'literal' | 'arg' | 'symbol' | 'modifier' | 'end';

interface Token {
  kind: TokenKind;
  /** The source text, so that errors can quote it and the next token's offset follows. */
  text: string;
  pos: number;
  /** Decoded string, number, argument index, or lower-cased modifier letters. */
  value?: string | number;
}

// A key path is one token: dots inside it are not operators, and keeping it whole lets
// `a.and` be a field while a bare `and` is the keyword.
const WORD = /[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*/y;
const NUMBER = /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const ARG = /\$(\d+)/y;
// Typed literals as realm-core writes them: `oid(507f1f77bcf86cd799439011)`,
// `uuid(3b241101-e2bb-4255-8caf-4136c566a962)`. They become the wire form of the value (lowercase),
// which the filter converts by the field's type (protocol/filter.ts).
const OID_LITERAL = /oid\(\s*([0-9a-fA-F]{24})\s*\)/y;
const UUID_LITERAL = /uuid\(\s*([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\s*\)/y;
const MODIFIER = /\[([A-Za-z]*)\]/y;
const OPERATOR_TAIL = /[=<>!]+/y;
// Longest first, so that `<=` is not read as `<` then `=`.
const SYMBOLS = ['==', '!=', '<>', '<=', '>=', '&&', '||', '=', '<', '>', '!', '(', ')', '{', '}', ','];
const ESCAPES = new Map([["'", "'"], ['"', '"'], ['\\', '\\'], ['n', '\n'], ['t', '\t']]);

function matchAt(pattern: RegExp, text: string, pos: number): RegExpExecArray | null {
  pattern.lastIndex = pos;
  return pattern.exec(text);
}

function tokenize(query: string): Token[] {
  const tokens: Token[] = [];
  let pos = 0;
  for (;;) {
    while (pos < query.length && /\s/.test(query[pos]!)) pos++;
    if (pos >= query.length) break;
    const token = readToken(query, pos);
    tokens.push(token);
    pos += token.text.length;
  }
  tokens.push({ kind: 'end', text: '', pos: query.length });
  return tokens;
}

function readToken(query: string, pos: number): Token {
  const ch = query[pos]!;
  if (ch === "'" || ch === '"') return readString(query, pos);

  let m: RegExpExecArray | null;
  if ((m = matchAt(NUMBER, query, pos))) return { kind: 'number', text: m[0], pos, value: Number(m[0]) };
  if (query.startsWith('oid(', pos)) {
    if ((m = matchAt(OID_LITERAL, query, pos))) return { kind: 'literal', text: m[0], pos, value: m[1]!.toLowerCase() };
    throw syntaxError(query, 'expected oid(<24 hex digits>)', pos);
  }
  if (query.startsWith('uuid(', pos)) {
    if ((m = matchAt(UUID_LITERAL, query, pos))) return { kind: 'literal', text: m[0], pos, value: m[1]!.toLowerCase() };
    throw syntaxError(query, 'expected uuid(<8-4-4-4-12 hex digits>)', pos);
  }
  if ((m = matchAt(WORD, query, pos))) {
    const end = pos + m[0].length;
    if (query[end] === '.') throw syntaxError(query, 'expected an identifier after "."', end + 1);
    return { kind: 'word', text: m[0], pos };
  }
  if (ch === '$') {
    if ((m = matchAt(ARG, query, pos))) return { kind: 'arg', text: m[0], pos, value: Number(m[1]) };
    const startsPath = /[A-Za-z_]/.test(query[pos + 1] ?? '');
    throw syntaxError(query, startsPath ? 'a key path cannot start with "$"' : 'expected an argument number after "$"', pos);
  }
  if (ch === '[') {
    if ((m = matchAt(MODIFIER, query, pos))) return { kind: 'modifier', text: m[0], pos, value: m[1]!.toLowerCase() };
    throw syntaxError(query, 'expected a modifier such as "[c]"', pos);
  }

  const symbol = SYMBOLS.find((s) => query.startsWith(s, pos));
  if (symbol) {
    // `===`, `=<`, `!==`: reject the whole run rather than misreading it as two operators.
    if (SYMBOL_OPERATORS.has(symbol) && (m = matchAt(OPERATOR_TAIL, query, pos + symbol.length))) {
      throw syntaxError(query, `unknown operator "${symbol}${m[0]}"`, pos);
    }
    return { kind: 'symbol', text: symbol, pos };
  }
  if (ch === '&' || ch === '|') throw syntaxError(query, `unknown operator "${ch}"`, pos);
  throw syntaxError(query, `unexpected character ${JSON.stringify(ch)}`, pos);
}

function readString(query: string, start: number): Token {
  const quote = query[start];
  let value = '';
  for (let pos = start + 1; pos < query.length; pos++) {
    const ch = query[pos]!;
    if (ch === quote) return { kind: 'string', text: query.slice(start, pos + 1), pos: start, value };
    if (ch !== '\\') {
      value += ch;
      continue;
    }
    if (pos + 1 >= query.length) break;
    const escaped = ESCAPES.get(query[pos + 1]!);
    if (escaped === undefined) throw syntaxError(query, `unknown escape sequence "\\${query[pos + 1]}"`, pos);
    value += escaped;
    pos++;
  }
  throw syntaxError(query, 'unterminated string', start);
}

// ---------------------------------------------------------------------------------------------
// Parser

type OperatorName = '==' | '!=' | '<' | '<=' | '>' | '>=' | 'IN' | 'BEGINSWITH' | 'CONTAINS' | 'ENDSWITH' | 'LIKE';

interface Operator {
  name: OperatorName;
  /** As written, modifier included, for error messages. */
  text: string;
  caseInsensitive: boolean;
}

type Operand =
  | { kind: 'path'; path: string; text: string; pos: number }
  | { kind: 'value'; value: unknown; text: string; pos: number }
  | { kind: 'set'; values: unknown[]; text: string; pos: number };

const SYMBOL_OPERATORS = new Map<string, OperatorName>([
  ['==', '=='], ['=', '=='], ['!=', '!='], ['<>', '!='], ['<', '<'], ['<=', '<='], ['>', '>'], ['>=', '>='],
]);
const WORD_OPERATORS = new Set<OperatorName>(['IN', 'BEGINSWITH', 'CONTAINS', 'ENDSWITH', 'LIKE']);
const MONGO_COMPARISONS = new Map<OperatorName, string>([
  ['==', '$eq'], ['!=', '$ne'], ['<', '$lt'], ['<=', '$lte'], ['>', '$gt'], ['>=', '$gte'],
]);
// `5 < priority` means `priority > 5`.
const FLIPPED = new Map<OperatorName, OperatorName>([
  ['==', '=='], ['!=', '!='], ['<', '>'], ['<=', '>='], ['>', '<'], ['>=', '<='],
]);
// Operators that take a string and become a regex; `==`/`!=` only do so with `[c]`.
const STRING_PATTERNS = new Map<OperatorName, (literal: string) => string>([
  ['BEGINSWITH', (s) => `^${escapeRegex(s)}`],
  ['ENDSWITH', (s) => `${escapeRegex(s)}$`],
  ['CONTAINS', escapeRegex],
  ['LIKE', likeToRegex],
  ['==', (s) => `^${escapeRegex(s)}$`],
  ['!=', (s) => `^${escapeRegex(s)}$`],
]);
const LITERALS = new Map<string, unknown>([['TRUE', true], ['FALSE', false], ['NULL', null]]);

class Parser {
  private index = 0;

  constructor(
    private readonly query: string,
    private readonly tokens: readonly Token[],
    private readonly args: readonly unknown[],
  ) {}

  parseQuery(): Filter {
    const filter = this.parseOr();
    const token = this.peek();
    if (token.kind !== 'end') throw this.error('expected AND, OR or the end of the query', token.pos);
    return filter;
  }

  // Chains become one flat $or / $and array; AND binds tighter because it is parsed below OR.
  private parseOr(): Filter {
    return this.parseChain('$or', 'OR', '||', () => this.parseAnd());
  }

  private parseAnd(): Filter {
    return this.parseChain('$and', 'AND', '&&', () => this.parseNot());
  }

  private parseChain(mongoOp: string, keyword: string, symbol: string, parsePart: () => Filter): Filter {
    const parts = [parsePart()];
    while (this.acceptKeyword(keyword) || this.acceptSymbol(symbol)) parts.push(parsePart());
    return parts.length === 1 ? parts[0]! : { [mongoOp]: parts };
  }

  private parseNot(): Filter {
    if (this.acceptKeyword('NOT') || this.acceptSymbol('!')) return { $nor: [this.parseNot()] };
    return this.parsePrimary();
  }

  private parsePrimary(): Filter {
    const open = this.peek();
    if (this.acceptSymbol('(')) {
      const inner = this.parseOr();
      if (this.acceptSymbol(')')) return inner;
      throw this.error(`expected ")" to close the parenthesis opened at offset ${open.pos}`, this.peek().pos);
    }
    if (this.acceptKeyword('TRUEPREDICATE')) return {};
    // Matches nothing: the negation of the match-everything filter.
    if (this.acceptKeyword('FALSEPREDICATE')) return { $nor: [{}] };
    return this.parseComparison();
  }

  private parseComparison(): Filter {
    const previous = this.tokens[this.index - 1];
    const left = this.parseOperand(previous ? `expected a predicate after "${previous.text}"` : 'expected a predicate');
    const op = this.parseOperator(left);
    const right = this.parseOperand(`expected a value after "${op.text}"`);
    if (op.name === 'IN') return this.buildIn(left, op, right);
    for (const side of [left, right]) {
      if (side.kind === 'set') throw this.error(`a set literal is only allowed after IN, not after "${op.text}"`, side.pos);
    }
    if (left.kind === 'path' && right.kind === 'value') return this.buildFieldPredicate(left.path, op, right);
    if (left.kind === 'value' && right.kind === 'path') {
      const flipped = FLIPPED.get(op.name);
      if (!flipped) throw this.error(`expected a key path before "${op.text}"`, left.pos);
      return this.buildFieldPredicate(right.path, { ...op, name: flipped }, left);
    }
    if (left.kind === 'path') {
      throw this.error(`expected a value after "${op.text}" (comparing two key paths is not supported)`, right.pos);
    }
    throw this.error(`expected a key path on one side of "${op.text}"`, left.pos);
  }

  private parseOperand(expected: string): Operand {
    const token = this.peek();
    const { text, pos } = token;
    switch (token.kind) {
      case 'string':
      case 'number':
      case 'literal':
        this.index++;
        return { kind: 'value', value: token.value, text, pos };
      case 'arg':
        this.index++;
        return { kind: 'value', value: this.argument(token), text, pos };
      case 'word': {
        const upper = text.toUpperCase();
        if (this.isReserved(upper)) break;
        this.index++;
        if (LITERALS.has(upper)) return { kind: 'value', value: LITERALS.get(upper), text, pos };
        return { kind: 'path', path: text, text, pos };
      }
      case 'symbol':
        if (text === '{') return this.parseSet();
        break;
    }
    throw this.error(expected, pos);
  }

  private parseSet(): Operand {
    const open = this.tokens[this.index++]!;
    const values: unknown[] = [];
    if (!this.acceptSymbol('}')) {
      do {
        const item = this.parseOperand(`expected a value after "${this.tokens[this.index - 1]!.text}"`);
        if (item.kind !== 'value') throw this.error('expected a value in the set, not a key path or set', item.pos);
        values.push(item.value);
      } while (this.acceptSymbol(','));
      if (!this.acceptSymbol('}')) throw this.error('expected "," or "}" in the set', this.peek().pos);
    }
    const text = this.query.slice(open.pos, this.tokens[this.index - 1]!.pos + 1);
    return { kind: 'set', values, text, pos: open.pos };
  }

  private parseOperator(left: Operand): Operator {
    const token = this.peek();
    const upper = token.text.toUpperCase();
    const name = token.kind === 'symbol' ? SYMBOL_OPERATORS.get(token.text)
      : token.kind === 'word' && WORD_OPERATORS.has(upper as OperatorName) ? (upper as OperatorName) : undefined;
    if (!name) {
      if (token.kind === 'word') throw this.error(`unknown operator "${token.text}"`, token.pos);
      throw this.error(`expected an operator after "${left.text}"`, token.pos);
    }
    this.index++;
    const modifier = this.peek();
    if (modifier.kind !== 'modifier') return { name, text: token.text, caseInsensitive: false };

    if (modifier.value !== 'c') {
      const detail = String(modifier.value).includes('d') ? 'diacritic-insensitive matching ("[d]") is not supported' : `unknown modifier "${modifier.text}"`;
      throw this.error(detail, modifier.pos);
    }
    if (!STRING_PATTERNS.has(name)) throw this.error(`"[c]" is not allowed after "${token.text}"`, modifier.pos);
    this.index++;
    return { name, text: token.text + modifier.text, caseInsensitive: true };
  }

  private buildIn(left: Operand, op: Operator, right: Operand): Filter {
    if (left.kind === 'path') {
      if (right.kind === 'set') return { [left.path]: { $in: right.values } };
      if (right.kind === 'value' && Array.isArray(right.value)) return { [left.path]: { $in: right.value } };
      throw this.error(`expected a set {…} or an array argument after "${op.text}"`, right.pos);
    }
    // `'x' IN tags`: MongoDB's $eq on an array field matches any element.
    if (left.kind === 'value' && right.kind === 'path') return { [right.path]: { $eq: left.value } };
    if (left.kind === 'value') throw this.error(`expected a key path after "${op.text}"`, right.pos);
    throw this.error(`expected a key path or value before "${op.text}"`, left.pos);
  }

  private buildFieldPredicate(path: string, op: Operator, operand: Extract<Operand, { kind: 'value' }>): Filter {
    const pattern = STRING_PATTERNS.get(op.name);
    const comparison = MONGO_COMPARISONS.get(op.name);
    if (comparison && !op.caseInsensitive) return { [path]: { [comparison]: operand.value } };
    if (typeof operand.value !== 'string' || !pattern) {
      throw this.error(`expected a string for "${op.text}"`, operand.pos);
    }
    const regex: Filter = { $regex: pattern(operand.value) };
    if (op.caseInsensitive) regex.$options = 'i';
    return { [path]: op.name === '!=' ? { $not: regex } : regex };
  }

  private argument(token: Token): unknown {
    const index = token.value as number;
    if (index >= this.args.length) {
      const given = this.args.length === 1 ? '1 argument was' : `${this.args.length} arguments were`;
      throw this.error(`argument ${token.text} is out of range: ${given} given`, token.pos);
    }
    return this.args[index];
  }

  private isReserved(upperWord: string): boolean {
    return WORD_OPERATORS.has(upperWord as OperatorName) || ['AND', 'OR', 'NOT', 'TRUEPREDICATE', 'FALSEPREDICATE'].includes(upperWord);
  }

  /** Consumes the next token if it is `keyword`, in any case. */
  private acceptKeyword(keyword: string): boolean {
    return this.acceptIf((token) => token.kind === 'word' && token.text.toUpperCase() === keyword);
  }

  private acceptSymbol(symbol: string): boolean {
    return this.acceptIf((token) => token.kind === 'symbol' && token.text === symbol);
  }

  private acceptIf(test: (token: Token) => boolean): boolean {
    if (!test(this.peek())) return false;
    this.index++;
    return true;
  }

  private peek(): Token {
    return this.tokens[this.index]!;
  }

  private error(detail: string, position: number): RqlSyntaxError {
    return syntaxError(this.query, detail, position);
  }
}
