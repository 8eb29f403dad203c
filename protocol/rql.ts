// Realm Query Language (RQL), the Flexible Sync subset, read into a MongoDB-style filter.
// Realm clients describe subscriptions as RQL strings with positional arguments; the gateway
// evaluates them as MongoDB filters (in MongoDB and, through mingo, in memory), so this file is
// the one place that decides what an RQL query means. The reference is realm-core's grammar
// (src/realm/parser/query_flex.ll and query_bison.yy) and Flexible Sync's documented limits.
//
// Shape: a tokenizer, then a recursive-descent parser (OR < AND < NOT < comparison) that builds
// the filter directly; there is no separate syntax tree because nothing else consumes one.
//
// The filter uses only what the gateway's checker allows (protocol/filter.ts): $eq $ne $gt $gte
// $lt $lte $in $nin $exists $not $regex $options $and $or $nor. On arrays MongoDB reads $eq,
// $gt, $regex, $in… as "some element" and $ne, $nin, $not as "no element", and that is what
// ANY, ALL and NONE are built from.
import { PRIMARY_KEY, type CollectionModel, type FieldType } from './model.ts';

export type Filter = Record<string, unknown>;

/**
 * What the parser may know of the queried fields. Some RQL forms mean different things by the
 * field's type (realm-core decides them from the schema): a comparison on a list field compares
 * its elements (an implicit ANY), and ALL or NONE need a list. Without it, every field is read
 * as a scalar and quantifiers are taken as written.
 */
export interface RqlFields {
  /** Whether `path` (a key path, `_id` already read as `id`) is a list; undefined if unknown. */
  isList(path: string): boolean | undefined;
}

/** The fields of a collection of the data model, as the parser needs them. */
export function rqlFieldsOf(collection: CollectionModel): RqlFields {
  return {
    isList(path) {
      let fields = collection.fields;
      let list = false;
      for (const part of path.split('.')) {
        const field = fields.find((f) => f.name === part);
        if (!field) return undefined;
        const type: FieldType = field.type;
        list ||= type.kind === 'list';
        const inner = type.kind === 'list' ? type.of : type;
        fields = inner.kind === 'object' ? inner.fields : [];
      }
      return list;
    },
  };
}

export class RqlSyntaxError extends Error {
  override name = 'RqlSyntaxError';
  /** 0-based character offset into the query where the problem starts. */
  readonly position: number;

  constructor(message: string, position: number) {
    super(message);
    this.position = position;
  }
}

/**
 * Parses `query`, substituting `$0`, `$1`, … from `args` (passed through unchanged). With
 * `fields`, the forms that depend on a field's type read as realm-core reads them (RqlFields).
 */
export function parseRql(query: string, args: readonly unknown[] = [], fields?: RqlFields): Filter {
  if (query.trim() === '') throw syntaxError(query, 'expected a predicate, got an empty query', 0);
  return new Parser(query, tokenize(query), args, fields).parseQuery();
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

/** Nothing matches it (the negation of the match-everything filter); a new object each time. */
function matchesNothing(): Filter {
  return { $nor: [{}] };
}

// ---------------------------------------------------------------------------------------------
// Keywords, spelled as realm-core's lexer has them. Any other spelling is a key path there, so
// it is one here too: `True` and `Not` are fields, `true` and `TRUE` are the literal.

const KEYWORDS_IN_ANY_CASE = new Set(['AND', 'OR', 'BEGINSWITH', 'ENDSWITH', 'CONTAINS', 'LIKE', 'BETWEEN', 'TRUEPREDICATE', 'FALSEPREDICATE', 'NULL', 'NIL']);
const KEYWORDS_AS_WRITTEN = new Map([
  ['not', 'NOT'], ['NOT', 'NOT'], ['in', 'IN'], ['IN', 'IN'],
  ['any', 'ANY'], ['ANY', 'ANY'], ['some', 'ANY'], ['SOME', 'ANY'], ['all', 'ALL'], ['ALL', 'ALL'], ['none', 'NONE'], ['NONE', 'NONE'],
  ['true', 'TRUE'], ['TRUE', 'TRUE'], ['false', 'FALSE'], ['FALSE', 'FALSE'],
]);

function keywordOf(word: string): string | undefined {
  const upper = word.toUpperCase();
  return KEYWORDS_IN_ANY_CASE.has(upper) ? upper : KEYWORDS_AS_WRITTEN.get(word);
}

/** For a word read as a key path because of its case: how realm-core spells the keyword. */
function caseHint(word: string): string {
  const keyword = KEYWORDS_AS_WRITTEN.get(word.toLowerCase());
  if (keyword === undefined || keywordOf(word) !== undefined) return '';
  const spellings = [...KEYWORDS_AS_WRITTEN].filter(([, k]) => k === keyword).map(([s]) => s);
  return ` ("${word}" is read as a key path: realm-core reads that keyword only as ${spellings.join(', ')})`;
}

// Query suffixes, aggregates and SUBQUERY: valid RQL that Flexible Sync does not serve.
const SUFFIXES = new Set(['SORT', 'DISTINCT', 'LIMIT']);
const UNSUPPORTED_POSTFIX = new Map([
  ['@avg', 'aggregates (@avg, @min, @max, @sum) are not supported in Flexible Sync subscriptions'],
  ['@min', 'aggregates (@avg, @min, @max, @sum) are not supported in Flexible Sync subscriptions'],
  ['@max', 'aggregates (@avg, @min, @max, @sum) are not supported in Flexible Sync subscriptions'],
  ['@sum', 'aggregates (@avg, @min, @max, @sum) are not supported in Flexible Sync subscriptions'],
  ['@links', 'backlinks (@links) are not supported in Flexible Sync subscriptions'],
  ['@type', '@type is not supported in Flexible Sync subscriptions (it applies to Mixed values, which subscriptions cannot query)'],
  ['@keys', '@keys is not supported in Flexible Sync subscriptions (it applies to dictionaries, which subscriptions cannot query)'],
  ['@values', '@values is not supported in Flexible Sync subscriptions (it applies to dictionaries, which subscriptions cannot query)'],
]);

// ---------------------------------------------------------------------------------------------
// Tokenizer

type TokenKind = 'word' | 'string' | 'number' | 'literal' | 'arg' | 'symbol' | 'modifier' | 'count' | 'end';

interface Token {
  kind: TokenKind;
  /** The source text, so that errors can quote it and the next token's offset follows. */
  text: string;
  pos: number;
  /** Decoded string, number, date, argument index, or modifier letters. */
  value?: string | number | Date;
  /** For a word: the keyword it is, if realm-core reads it as one. */
  keyword?: string;
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
// Dates as realm-core's lexer reads them: `YYYY-MM-DD@HH:MM:SS` (or `T` for `@`) with optional
// `:NANOSECONDS`, in UTC, and `T<seconds>:<nanoseconds>` since the epoch (the form Realm's SDKs
// serialize a date argument into).
const READABLE_DATE = /(\d+)-(\d+)-(\d+)[@T](\d+):(\d+):(\d+)(?::(\d+))?/y;
const DATE_WITHOUT_TIME = /\d+-\d+-\d+/y;
const EPOCH_DATE = /T([+-]?\d+):([+-]?\d+)/y;
const AT_OPERATOR = /(\.?)(@[A-Za-z]*)/y;
const MODIFIER = /\[([A-Za-z]*)\]/y;
const OPERATOR_TAIL = /[=<>!]+/y;
// Longest first, so that `<=` is not read as `<` then `=`.
const SYMBOLS = ['==', '!=', '<>', '<=', '>=', '&&', '||', '=', '<', '>', '!', '(', ')', '{', '}', ','];
const ESCAPES = new Map([["'", "'"], ['"', '"'], ['\\', '\\'], ['n', '\n'], ['t', '\t']]);

const NANOS_PER_MILLI = 1_000_000;
const NANOS_PER_SECOND = 1_000_000_000;
/** The furthest a JavaScript (and so a stored) date reaches from the epoch, in milliseconds. */
const MAX_DATE_MS = 8.64e15;
const MAX_INT32 = 2 ** 31 - 1;

/**
 * Dates read from literals with nanoseconds past the millisecond; each Date holds the millisecond
 * before. Stored dates are whole milliseconds (BSON dates), so a comparison with such a date is
 * decided exactly (relational, Parser.condition), never by rounding.
 */
const BETWEEN_MILLISECONDS = new WeakSet<Date>();

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
  if ((m = matchAt(READABLE_DATE, query, pos))) return { kind: 'literal', text: m[0], pos, value: readableDate(query, m, pos) };
  if ((m = matchAt(DATE_WITHOUT_TIME, query, pos))) throw syntaxError(query, 'expected a date with its time, such as 2024-03-01@10:30:00', pos);
  if ((m = matchAt(NUMBER, query, pos))) return { kind: 'number', text: m[0], pos, value: Number(m[0]) };
  if (query.startsWith('oid(', pos)) {
    if ((m = matchAt(OID_LITERAL, query, pos))) return { kind: 'literal', text: m[0], pos, value: m[1]!.toLowerCase() };
    throw syntaxError(query, 'expected oid(<24 hex digits>)', pos);
  }
  if (query.startsWith('uuid(', pos)) {
    if ((m = matchAt(UUID_LITERAL, query, pos))) return { kind: 'literal', text: m[0], pos, value: m[1]!.toLowerCase() };
    throw syntaxError(query, 'expected uuid(<8-4-4-4-12 hex digits>)', pos);
  }
  if ((m = matchAt(EPOCH_DATE, query, pos))) return { kind: 'literal', text: m[0], pos, value: epochDate(query, m, pos) };
  if ((m = matchAt(WORD, query, pos))) {
    const end = pos + m[0].length;
    if (query[end] === '.' && query[end + 1] !== '@') throw syntaxError(query, 'expected an identifier after "."', end + 1);
    // Never a key path in realm-core, whatever follows.
    if (m[0].toUpperCase() === 'SUBQUERY') throw syntaxError(query, 'SUBQUERY is not supported in Flexible Sync subscriptions', pos);
    return { kind: 'word', text: m[0], pos, keyword: keywordOf(m[0]) };
  }
  if ((ch === '.' || ch === '@') && (m = matchAt(AT_OPERATOR, query, pos))) {
    const [, dot, name] = m as unknown as [string, string, string];
    if (dot && (name === '@count' || name === '@size')) return { kind: 'count', text: m[0], pos };
    const at = pos + dot.length;
    const unsupported = UNSUPPORTED_POSTFIX.get(name);
    if (unsupported) throw syntaxError(query, unsupported, at);
    throw syntaxError(query, dot ? `unknown operator "${name}" (realm-core knows @count and @size)` : 'unexpected character "@"', at);
  }
  if (ch === '$') {
    if ((m = matchAt(ARG, query, pos))) return { kind: 'arg', text: m[0], pos, value: Number(m[1]) };
    const startsPath = /[A-Za-z_]/.test(query[pos + 1] ?? '');
    throw syntaxError(query, startsPath ? 'a key path cannot start with "$"' : 'expected an argument number after "$"', pos);
  }
  if (ch === '[') {
    if ((m = matchAt(MODIFIER, query, pos))) return { kind: 'modifier', text: m[0], pos, value: m[1]! };
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

/**
 * `YYYY-MM-DD@HH:MM:SS[:NANOS]` as realm-core converts it: fields past their range carry over
 * (timegm, like Date.UTC), years before 1900 are refused, and before the epoch the nanoseconds
 * count away from it, as the seconds do.
 */
function readableDate(query: string, m: RegExpExecArray, pos: number): Date {
  const fields = m.slice(1).map((d) => Number(d ?? 0));
  // realm-core reads each with sscanf's %d.
  if (fields.some((n) => n > MAX_INT32)) throw syntaxError(query, 'date field out of range', pos);
  const [year, month, day, hour, minute, second, nanos] = fields as [number, number, number, number, number, number, number];
  if (year < 1900) throw syntaxError(query, 'dates before 1900 are not supported', pos);
  const ms = Date.UTC(year, month - 1, day, hour, minute, second);
  if (Number.isNaN(ms)) throw syntaxError(query, 'date out of range', pos);
  const seconds = ms / 1000;
  return timestamp(query, seconds, seconds < 0 ? -nanos : nanos, pos);
}

/** `T<seconds>:<nanoseconds>`: both signed, and of the same sign (realm-core refuses others). */
function epochDate(query: string, m: RegExpExecArray, pos: number): Date {
  // realm-core reads these with strtol(…, 0): a leading zero would make the number octal.
  if (m.slice(1).some((n) => /^[+-]?0\d/.test(n!))) {
    throw syntaxError(query, 'a number in a T<seconds>:<nanoseconds> date cannot start with 0 (realm-core would read it as octal)', pos);
  }
  const seconds = Number(m[1]);
  const nanos = Number(m[2]);
  if (!((seconds >= 0 && nanos >= 0) || (seconds <= 0 && nanos <= 0))) {
    throw syntaxError(query, 'the seconds and nanoseconds of a T<seconds>:<nanoseconds> date must have the same sign', pos);
  }
  return timestamp(query, seconds, nanos, pos);
}

function timestamp(query: string, seconds: number, nanos: number, pos: number): Date {
  if (Math.abs(nanos) >= NANOS_PER_SECOND) throw syntaxError(query, 'nanoseconds must be fewer than 1000000000', pos);
  const ms = seconds * 1000 + Math.floor(nanos / NANOS_PER_MILLI);
  if (!(Math.abs(ms) <= MAX_DATE_MS)) throw syntaxError(query, 'date out of range', pos);
  const date = new Date(ms);
  if (nanos % NANOS_PER_MILLI !== 0) BETWEEN_MILLISECONDS.add(date);
  return date;
}

// ---------------------------------------------------------------------------------------------
// Parser

type OperatorName = '==' | '!=' | '<' | '<=' | '>' | '>=' | 'IN' | 'BETWEEN' | 'BEGINSWITH' | 'CONTAINS' | 'ENDSWITH' | 'LIKE';
type Quantifier = 'ANY' | 'ALL' | 'NONE';

interface Operator {
  name: OperatorName;
  /** As written, modifier included, for error messages. */
  text: string;
  caseInsensitive: boolean;
}

interface PathOperand {
  kind: 'path';
  path: string;
  text: string;
  pos: number;
  /** `ANY tags`, `ALL tags`, `NONE tags`: a list field, compared element by element. */
  quantifier?: Quantifier;
  /** ANY without the keyword: a comparison on a list field (realm-core's implicit ANY). */
  implicit?: boolean;
  /** `tags.@count` (or `@size`): the list's number of elements. */
  count?: boolean;
}
type ValueOperand = { kind: 'value'; value: unknown; text: string; pos: number };
type SetOperand = { kind: 'set'; values: unknown[]; text: string; pos: number };
type Operand = PathOperand | ValueOperand | SetOperand;

/**
 * What one value must satisfy: a scalar field's value, or one element of a list. `match` is an
 * operator object that MongoDB applies to each element of an array and to a scalar alike;
 * `notMatch` is its negation, which MongoDB cannot apply element by element.
 */
type Condition =
  | { kind: 'match'; op: Filter }
  | { kind: 'notMatch'; op: Filter }
  | { kind: 'always' }
  | { kind: 'never' };

const SYMBOL_OPERATORS = new Map<string, OperatorName>([
  ['==', '=='], ['=', '=='], ['!=', '!='], ['<>', '!='], ['<', '<'], ['<=', '<='], ['>', '>'], ['>=', '>='],
]);
const WORD_OPERATORS = new Set<string>(['IN', 'BETWEEN', 'BEGINSWITH', 'CONTAINS', 'ENDSWITH', 'LIKE']);
const QUANTIFIERS = new Set<string>(['ANY', 'ALL', 'NONE']);
const RESERVED = new Set([...WORD_OPERATORS, ...QUANTIFIERS, 'AND', 'OR', 'NOT', 'TRUEPREDICATE', 'FALSEPREDICATE']);
const MONGO_COMPARISONS = new Map<OperatorName, string>([
  ['==', '$eq'], ['!=', '$ne'], ['<', '$lt'], ['<=', '$lte'], ['>', '$gt'], ['>=', '$gte'],
]);
// What an element that fails a comparison satisfies instead (elements of one ordered type:
// MongoDB compares only values of the same type, so a null element satisfies none of these).
const COMPLEMENTS = new Map<string, string[]>([
  ['$eq', ['$lt', '$gt']], ['$lt', ['$gte']], ['$lte', ['$gt']], ['$gt', ['$lte']], ['$gte', ['$lt']],
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
const LITERALS = new Map<string, unknown>([['TRUE', true], ['FALSE', false], ['NULL', null], ['NIL', null]]);
/**
 * No stored list is longer: a MongoDB document is at most 16 MiB. A count beyond it needs no
 * path with an index that long.
 */
const MAX_LIST_LENGTH = 16 * 1024 * 1024;
const LIST_TO_LIST = 'comparing a list with a list is not supported in Flexible Sync subscriptions';

class Parser {
  private index = 0;

  constructor(
    private readonly query: string,
    private readonly tokens: readonly Token[],
    private readonly args: readonly unknown[],
    private readonly fields?: RqlFields,
  ) {}

  parseQuery(): Filter {
    const filter = this.parseOr();
    const token = this.peek();
    if (token.kind === 'word' && SUFFIXES.has(token.text.toUpperCase()) && this.tokens[this.index + 1]!.text === '(') {
      throw this.error(`${token.text.toUpperCase()} is not supported in Flexible Sync subscriptions (no query suffix is: SORT, DISTINCT and LIMIT; a subscription syncs every object it matches)`, token.pos);
    }
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
    if (this.acceptKeyword('FALSEPREDICATE')) return matchesNothing();
    return this.parseComparison();
  }

  private parseComparison(): Filter {
    const previous = this.tokens[this.index - 1];
    const left = this.parseOperand(previous ? `expected a predicate after "${previous.text}"` : 'expected a predicate');
    const op = this.parseOperator(left);
    const right = this.parseOperand(`expected a value after "${op.text}"`);
    if (op.name === 'IN') return this.buildIn(left, op, right);
    if (op.name === 'BETWEEN') return this.buildBetween(left, op, right);
    for (const side of [left, right]) {
      if (side.kind === 'set') throw this.error(`a set literal is only allowed after IN or BETWEEN, not after "${op.text}"`, side.pos);
    }
    if (left.kind === 'path' && right.kind === 'value') return this.buildFieldPredicate(left, op, right);
    if (left.kind === 'value' && right.kind === 'path') {
      const flipped = FLIPPED.get(op.name);
      if (!flipped) throw this.error(`expected a key path before "${op.text}"`, left.pos);
      return this.buildFieldPredicate(right, { ...op, name: flipped }, left);
    }
    if (left.kind === 'path') {
      throw this.error(`expected a value after "${op.text}" (comparing two key paths is not supported)${caseHint(right.text)}`, right.pos);
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
        if (token.keyword && QUANTIFIERS.has(token.keyword)) return this.parseQuantified(token);
        if (token.keyword && RESERVED.has(token.keyword)) break;
        this.index++;
        if (token.keyword && LITERALS.has(token.keyword)) return { kind: 'value', value: LITERALS.get(token.keyword), text, pos };
        return this.parsePath(token);
      }
      case 'symbol':
        if (text === '{') return this.parseSet();
        break;
    }
    throw this.error(expected, pos);
  }

  /** A key path, already consumed, and its `.@count` if any. */
  private parsePath(token: Token, quantifier?: Quantifier): PathOperand {
    // Realm models name their primary key `_id`; here it is `id` (stored as `_id`).
    const path = token.text === '_id' || token.text.startsWith('_id.') ? PRIMARY_KEY + token.text.slice(3) : token.text;
    const operand: PathOperand = { kind: 'path', path, text: token.text, pos: token.pos };
    if (quantifier) operand.quantifier = quantifier;
    const postfix = this.peek();
    if (postfix.kind === 'count') {
      if (quantifier) throw this.error(`${quantifier} cannot apply to a count`, postfix.pos + 1);
      this.index++;
      operand.count = true;
      operand.text += postfix.text;
    }
    const list = this.fields?.isList(path);
    if (list === false && operand.count) {
      throw this.error(`${postfix.text.slice(1)} applies to a list, and ${token.text} is not one (a string's length cannot be queried in Flexible Sync subscriptions)`, postfix.pos + 1);
    }
    if (list === false && quantifier) {
      // realm-core reads ANY before a single value as that value, and refuses ALL and NONE:
      // "The keypath following 'ALL' must contain a list".
      if (quantifier !== 'ANY') throw this.error(`The keypath following '${quantifier}' must contain a list (${token.text} is not a list)`, token.pos);
      delete operand.quantifier;
    }
    if (list === true && !quantifier && !operand.count) {
      operand.quantifier = 'ANY';
      operand.implicit = true;
    }
    return operand;
  }

  private parseQuantified(token: Token): PathOperand {
    const quantifier = token.keyword as Quantifier;
    this.index++;
    const next = this.peek();
    if (next.kind === 'word' && !(next.keyword && RESERVED.has(next.keyword)) && !(next.keyword && LITERALS.has(next.keyword))) {
      this.index++;
      return this.parsePath(next, quantifier);
    }
    if (next.kind === 'symbol' && next.text === '{') throw this.error(`${token.text} before a list of values is not supported (to compare a field with several values, write "field IN {…}")`, token.pos);
    throw this.error(`expected a key path to a list after "${token.text}"`, next.pos);
  }

  private parseSet(): SetOperand {
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
    const name = token.kind === 'symbol' ? SYMBOL_OPERATORS.get(token.text)
      : token.kind === 'word' && token.keyword && WORD_OPERATORS.has(token.keyword) ? (token.keyword as OperatorName) : undefined;
    if (!name) {
      if (token.kind === 'word') throw this.error(`unknown operator "${token.text}"${caseHint(token.text) || caseHint(left.text)}`, token.pos);
      throw this.error(`expected an operator after "${left.text}"${caseHint(left.text)}`, token.pos);
    }
    this.index++;
    const modifier = this.peek();
    if (modifier.kind !== 'modifier') return { name, text: token.text, caseInsensitive: false };

    if (modifier.value !== 'c') {
      const letters = String(modifier.value);
      const detail = letters.toLowerCase().includes('d') ? 'diacritic-insensitive matching ("[d]") is not supported'
        : letters === 'C' ? 'unknown modifier "[C]" (realm-core reads only "[c]")' : `unknown modifier "${modifier.text}"`;
      throw this.error(detail, modifier.pos);
    }
    if (!STRING_PATTERNS.has(name)) throw this.error(`"[c]" is not allowed after "${token.text}"`, modifier.pos);
    this.index++;
    return { name, text: token.text + modifier.text, caseInsensitive: true };
  }

  private buildIn(left: Operand, op: Operator, right: Operand): Filter {
    if (left.kind === 'set' || (left.kind === 'value' && Array.isArray(left.value))) throw this.error(LIST_TO_LIST, left.pos);
    if (left.kind === 'path') {
      const values = right.kind === 'set' ? right.values : right.kind === 'value' && Array.isArray(right.value) ? (right.value as unknown[]) : undefined;
      if (!values) throw this.error(`expected a set {…} or an array argument after "${op.text}"`, right.pos);
      if (left.quantifier) {
        const hint = left.implicit ? ` (${left.text} is a list: to ask whether it holds one of the values, join "'a' IN ${left.text}" with OR)` : '';
        throw this.error(LIST_TO_LIST + hint, left.pos);
      }
      if (left.count) return anyOf(values.map((n) => this.countPredicate(left, '==', { kind: 'value', value: n, text: right.text, pos: right.pos })));
      // A date between two milliseconds equals no stored date.
      return { [left.path]: { $in: values.filter((v) => !(v instanceof Date && BETWEEN_MILLISECONDS.has(v))) } };
    }
    // `'x' IN tags`: some element of tags is 'x'.
    if (left.kind === 'value' && right.kind === 'path') {
      if (right.count) throw this.error(`expected a list after "${op.text}", not a count`, right.pos);
      return this.buildFieldPredicate(right, { ...op, name: '==' }, left);
    }
    throw this.error(`expected a key path after "${op.text}"`, right.pos);
  }

  /** `field BETWEEN {low, high}`: both bounds included. */
  private buildBetween(left: Operand, op: Operator, right: Operand): Filter {
    if (left.kind !== 'path') throw this.error(`expected a key path before "${op.text}"`, left.pos);
    if (right.kind !== 'set' || right.values.length !== 2) throw this.error(`expected {low, high} after "${op.text}"`, right.pos);
    if (right.values.some((v) => v === null || Array.isArray(v))) throw this.error(`the bounds of "${op.text}" must be values, not nil or a list`, right.pos);
    const [low, high] = right.values.map((value): ValueOperand => ({ kind: 'value', value, text: right.text, pos: right.pos })) as [ValueOperand, ValueOperand];
    if (left.count) return { $and: [this.countPredicate(left, '>=', low), this.countPredicate(left, '<=', high)] };
    // realm-core: "Only 'ALL' supported for operator 'BETWEEN' when applied to lists."
    if (left.implicit) throw this.error(`only ALL is supported with "${op.text}" on a list (${left.text} is one): write "ALL ${left.text} ${op.text} {…}"`, left.pos);
    if (left.quantifier && left.quantifier !== 'ALL') throw this.error(`only ALL is supported with "${op.text}" on a list, not ${left.quantifier}`, left.pos);
    return this.quantified(left, op, { kind: 'match', op: { ...relational('>=', low.value), ...relational('<=', high.value) } });
  }

  private buildFieldPredicate(path: PathOperand, op: Operator, operand: ValueOperand): Filter {
    if (path.count) return this.countPredicate(path, op.name, operand);
    if (path.quantifier && Array.isArray(operand.value)) throw this.error(LIST_TO_LIST, operand.pos);
    if (path.quantifier && operand.value === null) {
      // MongoDB's {list: null} also matches a list that is missing or null, which Realm reads as empty.
      const written = path.implicit ? `${path.text} ${op.text} nil, an implicit ANY on a list` : `${path.quantifier} ${path.text} ${op.text} nil`;
      throw this.error(`comparing the elements of a list with nil (${written}) is not supported`, operand.pos);
    }
    return this.quantified(path, op, this.condition(op, operand));
  }

  /** What one value (a scalar, or one list element) must satisfy for `value op operand`. */
  private condition(op: Operator, operand: ValueOperand): Condition {
    const { value } = operand;
    const pattern = STRING_PATTERNS.get(op.name);
    const comparison = MONGO_COMPARISONS.get(op.name);
    if (comparison && !op.caseInsensitive) {
      const betweenMilliseconds = value instanceof Date && BETWEEN_MILLISECONDS.has(value);
      // Stored dates are whole milliseconds: none equals such a date.
      if (op.name === '==') return betweenMilliseconds ? { kind: 'never' } : { kind: 'match', op: { $eq: value } };
      if (op.name === '!=') return betweenMilliseconds ? { kind: 'always' } : { kind: 'notMatch', op: { $eq: value } };
      return { kind: 'match', op: relational(op.name as RelationalName, value) };
    }
    if (typeof value !== 'string' || !pattern) throw this.error(`expected a string for "${op.text}"`, operand.pos);
    const regex: Filter = { $regex: pattern(value) };
    if (op.caseInsensitive) regex.$options = 'i';
    return { kind: op.name === '!=' ? 'notMatch' : 'match', op: regex };
  }

  /** The filter for a field whose value (or, quantified, whose list elements) must meet `condition`. */
  private quantified(path: PathOperand, op: Operator, condition: Condition): Filter {
    const field = path.path;
    switch (path.quantifier) {
      case undefined:
        if (condition.kind === 'always') return {};
        if (condition.kind === 'never') return matchesNothing();
        if (condition.kind === 'match') return { [field]: condition.op };
        return { [field]: '$eq' in condition.op ? { $ne: condition.op.$eq } : { $not: condition.op } };
      case 'ANY':
        return anyOf(this.someElement(path, op, condition));
      case 'NONE':
        return noneOf(this.someElement(path, op, condition));
      case 'ALL':
        // Every element meets it: no element fails it (so an empty list qualifies).
        return noneOf(this.someElement(path, op, negate(condition)));
    }
  }

  /** Alternatives, one of which holds when some element of the list meets `condition`. */
  private someElement(path: PathOperand, op: Operator, condition: Condition): Filter[] {
    const field = path.path;
    switch (condition.kind) {
      case 'never':
        return [];
      case 'always':
        // A list has an element when it has one at index 0 (none if it is missing or null).
        return [{ [`${field}.0`]: { $exists: true } }];
      case 'match':
        return [{ [field]: condition.op }];
      case 'notMatch':
        return Object.entries(condition.op).flatMap(([mongoOp, value]) => {
          const complements = COMPLEMENTS.get(mongoOp);
          if (!complements) {
            const written = path.implicit ? `"${path.text} ${op.text} …" (an implicit ANY on a list)` : `"${path.quantifier} ${path.text} ${op.text} …"`;
            throw this.error(`${written} is not supported: a MongoDB filter cannot ask for a list element that does not match a pattern`, path.pos);
          }
          return complements.map((c) => ({ [field]: { [c]: value } }));
        });
    }
  }

  /**
   * `list.@count op n`. A list has more than k elements when it has one at index k, which
   * `{'list.<k>': {$exists: true}}` asks (MongoDB and mingo read a numeric path segment as an
   * array index; a missing or null list has none, as Realm's empty list).
   */
  private countPredicate(path: PathOperand, name: OperatorName, operand: ValueOperand): Filter {
    if (!MONGO_COMPARISONS.has(name)) throw this.error(`expected a comparison, IN or BETWEEN after ${path.text}`, path.pos);
    const n = operand.value;
    if (typeof n !== 'number' || !Number.isFinite(n)) throw this.error(`expected a number to compare ${path.text} with`, operand.pos);
    const atLeast = (m: number): Filter | boolean => (m <= 0 ? true : m > MAX_LIST_LENGTH ? false : { [`${path.path}.${m - 1}`]: { $exists: true } });
    const fewerThan = (m: number): Filter | boolean => {
      const has = atLeast(m);
      return typeof has === 'boolean' ? !has : { [`${path.path}.${m - 1}`]: { $exists: false } };
    };
    const exactly = (): Filter | boolean => {
      if (!Number.isInteger(n) || n < 0) return false;
      return allOf([atLeast(n), fewerThan(n + 1)]);
    };
    switch (name) {
      case '>':
        return asFilter(atLeast(Math.floor(n) + 1));
      case '>=':
        return asFilter(atLeast(Math.ceil(n)));
      case '<':
        return asFilter(fewerThan(Math.ceil(n)));
      case '<=':
        return asFilter(fewerThan(Math.floor(n) + 1));
      case '==':
        return asFilter(exactly());
      default: {
        // !=
        const is = exactly();
        return typeof is === 'boolean' ? asFilter(!is) : { $nor: [is] };
      }
    }
  }

  private argument(token: Token): unknown {
    const index = token.value as number;
    if (index >= this.args.length) {
      const given = this.args.length === 1 ? '1 argument was' : `${this.args.length} arguments were`;
      throw this.error(`argument ${token.text} is out of range: ${given} given`, token.pos);
    }
    return this.args[index];
  }

  /** Consumes the next token if it is `keyword`, spelled as realm-core reads it. */
  private acceptKeyword(keyword: string): boolean {
    return this.acceptIf((token) => token.kind === 'word' && token.keyword === keyword);
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

type RelationalName = '<' | '<=' | '>' | '>=';

/**
 * `{$gt: value}` and the like. A date between two milliseconds is compared through the millisecond
 * before it (which the Date holds): a stored date, a whole millisecond, is after the date exactly
 * when it is after that millisecond.
 */
function relational(name: RelationalName, value: unknown): Filter {
  if (value instanceof Date && BETWEEN_MILLISECONDS.has(value)) return { [name.startsWith('>') ? '$gt' : '$lte']: value };
  return { [MONGO_COMPARISONS.get(name)!]: value };
}

function negate(condition: Condition): Condition {
  switch (condition.kind) {
    case 'always':
      return { kind: 'never' };
    case 'never':
      return { kind: 'always' };
    case 'match':
      return { kind: 'notMatch', op: condition.op };
    case 'notMatch':
      return { kind: 'match', op: condition.op };
  }
}

function asFilter(value: Filter | boolean): Filter {
  return value === true ? {} : value === false ? matchesNothing() : value;
}

function allOf(parts: Array<Filter | boolean>): Filter | boolean {
  if (parts.includes(false)) return false;
  const filters = parts.filter((p): p is Filter => typeof p !== 'boolean');
  if (filters.length === 0) return true;
  return filters.length === 1 ? filters[0]! : Object.fromEntries(filters.flatMap((f) => Object.entries(f)));
}

function anyOf(alternatives: Filter[]): Filter {
  if (alternatives.length === 0) return matchesNothing();
  return alternatives.length === 1 ? alternatives[0]! : { $or: alternatives };
}

function noneOf(alternatives: Filter[]): Filter {
  return alternatives.length === 0 ? {} : { $nor: alternatives };
}
