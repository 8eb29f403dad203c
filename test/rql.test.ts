// Unit: Realm Query Language (Flexible Sync subset) read into MongoDB filters: each operator's
// translation, precedence, arguments, regex escaping, exact error positions, and (through mingo)
// that the filters mean what the RQL means.
import { Query } from 'mingo';
import { describe, expect, it } from 'vitest';
import { toFilter } from '../client-sdk/queries.ts';
import { compileFilter } from '../gateway/query/filter.ts';
import { loadModel } from '../protocol/model.ts';
import { escapeRegex, parseRql, rqlFieldsOf, RqlSyntaxError, type RqlFields } from '../protocol/rql.ts';
import { SCHEMA } from './helpers/harness.ts';

function syntaxErrorOf(query: string, args?: readonly unknown[]): RqlSyntaxError {
  try {
    parseRql(query, args);
  } catch (error) {
    if (error instanceof RqlSyntaxError) return error;
    throw error;
  }
  throw new Error(`expected ${JSON.stringify(query)} to be rejected`);
}

/** The query is refused with this message, pointing at this position. */
function expectRejected(query: string, args: readonly unknown[], position: number, message: RegExp): void {
  const error = syntaxErrorOf(query, args);
  expect(error.message).toMatch(message);
  expect(error.position).toBe(position);
}

describe('comparisons', () => {
  it.each([
    ['a == 1', { a: { $eq: 1 } }],
    ['a = 1', { a: { $eq: 1 } }],
    ['a != 1', { a: { $ne: 1 } }],
    ['a <> 1', { a: { $ne: 1 } }],
    ['a > 1', { a: { $gt: 1 } }],
    ['a >= 1', { a: { $gte: 1 } }],
    ['a < 1', { a: { $lt: 1 } }],
    ['a <= 1', { a: { $lte: 1 } }],
    ['a==1', { a: { $eq: 1 } }],
    ['a>=-1', { a: { $gte: -1 } }],
    ['a == null', { a: { $eq: null } }],
    ['a != NULL', { a: { $ne: null } }],
  ])('%s', (query, filter) => {
    expect(parseRql(query)).toEqual(filter);
  });

  it.each([
    ['5 < priority', { priority: { $gt: 5 } }],
    ['5 <= priority', { priority: { $gte: 5 } }],
    ['5 > priority', { priority: { $lt: 5 } }],
    ['5 >= priority', { priority: { $lte: 5 } }],
    ["'x' == status", { status: { $eq: 'x' } }],
    ["'x' != status", { status: { $ne: 'x' } }],
    ["'x' ==[c] status", { status: { $regex: '^x$', $options: 'i' } }],
    ['$0 < priority', { priority: { $gt: 7 } }],
  ])('reversed %s is normalised field first', (query, filter) => {
    expect(parseRql(query, [7])).toEqual(filter);
  });
});

describe('values and key paths', () => {
  it.each([
    ["a == 'single'", 'single'],
    ['a == "double"', 'double'],
    ["a == ''", ''],
    ["a == 'it\\'s'", "it's"],
    ['a == "say \\"hi\\""', 'say "hi"'],
    ["a == 'back\\\\slash'", 'back\\slash'],
    ["a == 'line\\nbreak\\ttab'", 'line\nbreak\ttab'],
    ["a == 'mixed \" quote'", 'mixed " quote'],
    ["a == '  spaces  and (parens) == AND'", '  spaces  and (parens) == AND'],
    ['a == 42', 42],
    ['a == -42', -42],
    ['a == 3.25', 3.25],
    ['a == -0.5', -0.5],
    ['a == 1e3', 1000],
    ['a == true', true],
    ['a == FALSE', false],
  ])('%s', (query, value) => {
    expect(parseRql(query)).toEqual({ a: { $eq: value } });
  });

  it('reads dotted key paths, underscores and digits', () => {
    expect(parseRql('checklist.done == true')).toEqual({ 'checklist.done': { $eq: true } });
    expect(parseRql('_sync.seq_2 > 3')).toEqual({ '_sync.seq_2': { $gt: 3 } });
    // A keyword is only a keyword on its own, not as a path segment.
    expect(parseRql('a.and == 1')).toEqual({ 'a.and': { $eq: 1 } });
  });

  it('keeps a key path named __proto__ as an own key rather than a prototype', () => {
    const filter = parseRql('__proto__ == 1');
    expect(Object.keys(filter)).toEqual(['__proto__']);
    expect(Object.getPrototypeOf(filter)).toBe(Object.prototype);
  });
});

describe('arguments', () => {
  it('substitutes positional arguments, in any order and more than once', () => {
    expect(parseRql('a == $1 AND b > $0 AND c != $1', [5, 'x'])).toEqual({
      $and: [{ a: { $eq: 'x' } }, { b: { $gt: 5 } }, { c: { $ne: 'x' } }],
    });
  });

  it('passes values through unchanged, dates and objects included', () => {
    const due = new Date('2027-01-01T00:00:00Z');
    const nested = { x: [1, { y: null }] };
    const filter = parseRql('dueDate < $0 AND meta == $1 AND at >= $2 AND n == $3', [due, nested, '2026-01-01T00:00:00Z', null]);
    const parts = (filter as { $and: Record<string, Record<string, unknown>>[] }).$and;
    expect(parts[0]!.dueDate!.$lt).toBe(due);
    expect(parts[1]!.meta!.$eq).toBe(nested);
    expect(parts[2]).toEqual({ at: { $gte: '2026-01-01T00:00:00Z' } });
    expect(parts[3]).toEqual({ n: { $eq: null } });
  });

  it('accepts arguments in set literals and as string operands', () => {
    expect(parseRql('a IN {$0, 2, $1}', ['x', true])).toEqual({ a: { $in: ['x', 2, true] } });
    expect(parseRql('title BEGINSWITH[c] $0', ['a.b'])).toEqual({ title: { $regex: '^a\\.b', $options: 'i' } });
  });
});

describe('string operators', () => {
  it.each([
    ["title BEGINSWITH 'ab'", { title: { $regex: '^ab' } }],
    ["title ENDSWITH 'ab'", { title: { $regex: 'ab$' } }],
    ["title CONTAINS 'ab'", { title: { $regex: 'ab' } }],
    ["title LIKE 'a*b?'", { title: { $regex: '^a.*b.$' } }],
    ["title BEGINSWITH[c] 'ab'", { title: { $regex: '^ab', $options: 'i' } }],
    ["title ENDSWITH[c] 'ab'", { title: { $regex: 'ab$', $options: 'i' } }],
    ["title CONTAINS[c] 'ab'", { title: { $regex: 'ab', $options: 'i' } }],
    ["title LIKE[c] 'a*b?'", { title: { $regex: '^a.*b.$', $options: 'i' } }],
    ["title ==[c] 'x'", { title: { $regex: '^x$', $options: 'i' } }],
    ["title !=[c] 'x'", { title: { $not: { $regex: '^x$', $options: 'i' } } }],
    ["title beginsWith 'ab'", { title: { $regex: '^ab' } }],
    ["title like[c] 'ab'", { title: { $regex: '^ab$', $options: 'i' } }],
  ])('%s', (query, filter) => {
    expect(parseRql(query)).toEqual(filter);
  });

  it('escapes regex metacharacters in the literal', () => {
    expect(parseRql("title CONTAINS 'a.b*'")).toEqual({ title: { $regex: 'a\\.b\\*' } });
    expect(parseRql("title BEGINSWITH '(x)+[y]'")).toEqual({ title: { $regex: '^\\(x\\)\\+\\[y\\]' } });
    expect(parseRql("title ==[c] '$5^'")).toEqual({ title: { $regex: '^\\$5\\^$', $options: 'i' } });
    // In LIKE only * and ? are wildcards; every other metacharacter stays literal.
    expect(parseRql("title LIKE 'a.b*c?|d'")).toEqual({ title: { $regex: '^a\\.b.*c.\\|d$' } });
  });

  it('escapeRegex makes any string match only itself', () => {
    const nasty = 'a.b*c+d?e^f$g{1}h(i)j|k[l]m\\n/o-p';
    expect(escapeRegex('.*+?^${}()|[]\\')).toBe('\\.\\*\\+\\?\\^\\$\\{\\}\\(\\)\\|\\[\\]\\\\');
    expect(new RegExp(`^${escapeRegex(nasty)}$`).test(nasty)).toBe(true);
    expect(new RegExp(escapeRegex('a.b')).test('axb')).toBe(false);
  });
});

describe('logical operators', () => {
  const a = { a: { $eq: 1 } };
  const b = { b: { $eq: 2 } };
  const c = { c: { $eq: 3 } };

  it.each([
    ['a == 1 AND b == 2', { $and: [a, b] }],
    ['a == 1 && b == 2', { $and: [a, b] }],
    ['a == 1 and b == 2', { $and: [a, b] }],
    ['a == 1 OR b == 2', { $or: [a, b] }],
    ['a == 1 || b == 2', { $or: [a, b] }],
    ['a == 1 Or b == 2', { $or: [a, b] }],
    ['NOT a == 1', { $nor: [a] }],
    ['!a == 1', { $nor: [a] }],
    ['not (a == 1)', { $nor: [a] }],
    ['NOT NOT a == 1', { $nor: [{ $nor: [a] }] }],
  ])('%s', (query, filter) => {
    expect(parseRql(query)).toEqual(filter);
  });

  it('flattens chains of the same operator into one array', () => {
    expect(parseRql('a == 1 AND b == 2 && c == 3')).toEqual({ $and: [a, b, c] });
    expect(parseRql('a == 1 OR b == 2 || c == 3')).toEqual({ $or: [a, b, c] });
  });

  it('binds AND tighter than OR, on either side', () => {
    expect(parseRql('a == 1 OR b == 2 AND c == 3')).toEqual({ $or: [a, { $and: [b, c] }] });
    expect(parseRql('a == 1 AND b == 2 OR c == 3')).toEqual({ $or: [{ $and: [a, b] }, c] });
  });

  it('binds NOT tighter than AND', () => {
    expect(parseRql('NOT a == 1 AND b == 2')).toEqual({ $and: [{ $nor: [a] }, b] });
    expect(parseRql('a == 1 && !b == 2')).toEqual({ $and: [a, { $nor: [b] }] });
  });

  it('lets parentheses override precedence', () => {
    expect(parseRql('(a == 1 OR b == 2) AND c == 3')).toEqual({ $and: [{ $or: [a, b] }, c] });
    expect(parseRql('NOT (a == 1 AND b == 2)')).toEqual({ $nor: [{ $and: [a, b] }] });
    expect(parseRql('((a == 1))')).toEqual(a);
    expect(parseRql('!(a==1)&&!(b==2)')).toEqual({ $and: [{ $nor: [a] }, { $nor: [b] }] });
  });

  it('translates TRUEPREDICATE and FALSEPREDICATE', () => {
    expect(parseRql('TRUEPREDICATE')).toEqual({});
    expect(parseRql('falsepredicate')).toEqual({ $nor: [{}] });
    expect(parseRql('TRUEPREDICATE AND a == 1')).toEqual({ $and: [{}, a] });
    expect(parseRql('NOT FALSEPREDICATE')).toEqual({ $nor: [{ $nor: [{}] }] });
  });
});

describe('IN', () => {
  it.each([
    ['a IN {1, 2}', [], { a: { $in: [1, 2] } }],
    ["status in {'TODO', \"DONE\", null}", [], { status: { $in: ['TODO', 'DONE', null] } }],
    ['a IN {}', [], { a: { $in: [] } }],
    ['a IN { 1 }', [], { a: { $in: [1] } }],
    ['a IN $0', [[1, 'two']], { a: { $in: [1, 'two'] } }],
    ["'x' IN tags", [], { tags: { $eq: 'x' } }],
    ['3 IN scores', [], { scores: { $eq: 3 } }],
    ['$0 IN tags', ['urgent'], { tags: { $eq: 'urgent' } }],
  ])('%s', (query, args, filter) => {
    expect(parseRql(query, args)).toEqual(filter);
  });
});

describe('syntax errors', () => {
  it.each<[string, unknown[], number, RegExp]>([
    ['', [], 0, /^expected a predicate, got an empty query at position 0/],
    ['   ', [], 0, /empty query/],
    ['a == $3', [1, 2], 5, /^argument \$3 is out of range: 2 arguments were given at position 5, near "\$3"$/],
    ['a == $0', [], 5, /argument \$0 is out of range: 0 arguments were given/],
    ["a == 'abc", [], 5, /^unterminated string at position 5/],
    ['a == "abc\\', [], 5, /unterminated string/],
    ["a == 'a\\qb'", [], 7, /unknown escape sequence "\\q"/],
    ['a === 1', [], 2, /^unknown operator "===" at position 2, near "=== 1"$/],
    ['a =< 1', [], 2, /unknown operator "=<"/],
    ['a !== 1', [], 2, /unknown operator "!=="/],
    ['a FOO 1', [], 2, /unknown operator "FOO"/],
    ['a BETWEENX {1, 2}', [], 2, /unknown operator "BETWEENX"/],
    ['a == 1 & b == 2', [], 7, /unknown operator "&"/],
    ['a ~ 1', [], 2, /unexpected character "~"/],
    ['a == 1 b', [], 7, /^expected AND, OR or the end of the query at position 7/],
    ['a == 1)', [], 6, /expected AND, OR or the end of the query/],
    ['a == ', [], 5, /^expected a value after "==" at position 5, at end of query$/],
    ['a == )', [], 5, /expected a value after "=="/],
    ['a CONTAINS[c]', [], 13, /expected a value after "CONTAINS\[c\]"/],
    ['a == 1 AND', [], 10, /expected a predicate after "AND"/],
    ['a == 1 AND OR b == 2', [], 11, /expected a predicate after "AND"/],
    ['(a == 1', [], 7, /expected "\)" to close the parenthesis opened at offset 0/],
    ['()', [], 1, /expected a predicate after "\("/],
    ['== 1', [], 0, /^expected a predicate at position 0/],
    ['and == 1', [], 0, /expected a predicate/],
    ['a', [], 1, /expected an operator after "a"/],
    ['$foo == 1', [], 0, /a key path cannot start with "\$"/],
    ['$ == 1', [], 0, /expected an argument number after "\$"/],
    ['a. == 1', [], 2, /expected an identifier after "\."/],
    ['a..b == 1', [], 2, /expected an identifier after "\."/],
    ["a ==[d] 'x'", [], 4, /diacritic-insensitive/],
    ["a CONTAINS[cd] 'x'", [], 10, /diacritic-insensitive/],
    ["a ==[x] 'x'", [], 4, /unknown modifier "\[x\]"/],
    ["a == [c 'x'", [], 5, /expected a modifier such as "\[c\]"/],
    ["title like[C] 'ab'", [], 10, /^unknown modifier "\[C\]" \(realm-core reads only "\[c\]"\)/],
    ['a >[c] 1', [], 3, /"\[c\]" is not allowed after ">"/],
    ['a IN[c] {1}', [], 4, /"\[c\]" is not allowed after "IN"/],
    ['a CONTAINS 5', [], 11, /expected a string for "CONTAINS"/],
    ['a BEGINSWITH null', [], 13, /expected a string for "BEGINSWITH"/],
    ['a LIKE $0', [5], 7, /expected a string for "LIKE"/],
    ['a ==[c] 1', [], 8, /expected a string for "==\[c\]"/],
    ['a IN 5', [], 5, /expected a set \{…\} or an array argument after "IN"/],
    ['a IN $0', ['x'], 5, /expected a set \{…\} or an array argument/],
    ['a IN {1,}', [], 8, /expected a value after ","/],
    ['a IN {1 2}', [], 8, /expected "," or "}" in the set/],
    ['a IN {1', [], 7, /expected "," or "}" in the set/],
    ['a IN {b}', [], 6, /expected a value in the set/],
    ['{1} IN a', [], 0, /comparing a list with a list is not supported/],
    ["'x' IN 'y'", [], 7, /expected a key path after "IN"/],
    ['a == {1}', [], 5, /a set literal is only allowed after IN/],
    ['a == b', [], 5, /comparing two key paths is not supported/],
    ['1 == 2', [], 0, /expected a key path on one side of "=="/],
    ["'x' BEGINSWITH title", [], 0, /expected a key path before "BEGINSWITH"/],
  ])('rejects %j (args %j) at position %i', (query, args, position, message) => {
    const error = syntaxErrorOf(query, args);
    expect(error).toBeInstanceOf(RqlSyntaxError);
    expect(error.name).toBe('RqlSyntaxError');
    expect(error.message).toMatch(message);
    expect(error.message).toContain(`at position ${position}`);
    expect(error.position).toBe(position);
  });

  it('quotes a short excerpt of the query where the problem starts', () => {
    const error = syntaxErrorOf("title == 'x' AND status ~~ 'a very long remainder of the query'");
    expect(error.position).toBe(24);
    expect(error.message).toBe('unexpected character "~" at position 24, near "~~ \'a very long rema…"');
  });
});

describe('semantics in mingo', () => {
  const docs = [
    { _id: 1, title: 'Buy MILK', status: 'TODO', priority: 3, tags: ['home', 'urgent'], checklist: [{ done: true }], dueDate: new Date('2026-03-01T00:00:00Z') },
    { _id: 2, title: 'file a.b report', status: 'DONE', priority: 1, tags: ['work'], checklist: [], dueDate: new Date('2026-09-01T00:00:00Z') },
    { _id: 3, title: 'buy bread', status: 'TODO', priority: 5, tags: [], checklist: [{ done: false }], dueDate: new Date('2027-03-01T00:00:00Z') },
    { _id: 4, title: 'file axb report', status: 'BLOCKED', priority: 2, tags: ['work', 'urgent'], checklist: [] },
  ];
  const matching = (query: string, args?: unknown[]) => {
    const q = new Query(parseRql(query, args));
    return docs.filter((doc) => q.test(doc)).map((doc) => doc._id);
  };

  it.each<[string, unknown[], number[]]>([
    ["title CONTAINS 'milk'", [], []],
    ["title CONTAINS[c] 'milk'", [], [1]],
    ["title CONTAINS 'a.b'", [], [2]],
    ["title BEGINSWITH 'buy'", [], [3]],
    ["title BEGINSWITH[c] 'buy'", [], [1, 3]],
    ["title ENDSWITH 'report'", [], [2, 4]],
    ["title LIKE 'b?y *'", [], [3]],
    ["title LIKE[c] 'b?y *'", [], [1, 3]],
    ["title LIKE 'file a?b report'", [], [2, 4]],
    ["title LIKE 'file a.b*'", [], [2]],
    ["title LIKE 'b?y'", [], []],
    ["title ==[c] 'BUY bread'", [], [3]],
    ["title !=[c] 'buy bread'", [], [1, 2, 4]],
    ["'urgent' IN tags", [], [1, 4]],
    ["NOT 'urgent' IN tags", [], [2, 3]],
    ["status IN {'DONE', 'BLOCKED'}", [], [2, 4]],
    ['status IN $0', [['TODO']], [1, 3]],
    ['3 <= priority', [], [1, 3]],
    ["priority > 2 AND status == 'TODO' OR priority == 1", [], [1, 2, 3]],
    ["priority > 2 AND (status == 'DONE' OR 'home' IN tags)", [], [1]],
    ['checklist.done == true', [], [1]],
    ['dueDate < $0', [new Date('2026-12-31T00:00:00Z')], [1, 2]],
    ['TRUEPREDICATE', [], [1, 2, 3, 4]],
    ['FALSEPREDICATE', [], []],
    ['dueDate < 2026-12-31@00:00:00', [], [1, 2]],
    ['dueDate >= 2026-09-01T00:00:00', [], [2, 3]],
    ['dueDate BETWEEN {2026-03-01@00:00:00, 2026-09-01@00:00:00}', [], [1, 2]],
    ['dueDate == nil', [], [4]],
    ['dueDate != nil', [], [1, 2, 3]],
    ['priority BETWEEN {2, 3}', [], [1, 4]],
    ['priority BETWEEN {3, 3}', [], [1]],
    ['priority BETWEEN {4, 2}', [], []],
    ['tags.@count == 2', [], [1, 4]],
    ['tags.@size < 1', [], [3]],
    ["ALL tags == 'work'", [], [2, 3]],
    ["NONE tags == 'urgent'", [], [2, 3]],
    ["ANY tags == 'urgent' && priority <> 3", [], [4]],
  ])('%s', (query, args, ids) => {
    expect(matching(query, args)).toEqual(ids);
  });
});

// Issue 13, point 7: every form Flexible Sync accepts. Keyword spellings, date formats and
// refusals follow realm-core's lexer and grammar (src/realm/parser/query_flex.ll, query_bison.yy).

describe('nil', () => {
  it.each([
    ['a == nil', { a: { $eq: null } }],
    ['a == NIL', { a: { $eq: null } }],
    ['a == nIl', { a: { $eq: null } }],
    ['a == Null', { a: { $eq: null } }],
    ['a != nil', { a: { $ne: null } }],
    ['nil == a', { a: { $eq: null } }],
    ["a IN {'x', nil}", { a: { $in: ['x', null] } }],
  ])('%s', (query, filter) => {
    expect(parseRql(query)).toEqual(filter);
  });

  // A field a document lacks is null in Realm (every object has every property).
  const people = [{ _id: 1, nick: 'ann' }, { _id: 2, nick: null }, { _id: 3 }];
  it.each<[string, number[]]>([
    ['nick == nil', [2, 3]],
    ['nick == NULL', [2, 3]],
    ['nick != nil', [1]],
    ['NOT nick == nil', [1]],
    ['nick IN {nil}', [2, 3]],
    ["nick IN {'ann', nil}", [1, 2, 3]],
    ["nick != 'ann'", [2, 3]],
  ])('%s matches a missing field as null in mingo', (query, ids) => {
    const q = new Query(parseRql(query));
    expect(people.filter((doc) => q.test(doc)).map((doc) => doc._id)).toEqual(ids);
  });
});

describe('keyword case, as realm-core spells each keyword', () => {
  const a = { a: { $eq: 1 } };
  const b = { b: { $eq: 2 } };
  it.each([
    ['a == 1 aNd b == 2', { $and: [a, b] }],
    ['a == 1 oR b == 2', { $or: [a, b] }],
    ["t BeginsWith 'x'", { t: { $regex: '^x' } }],
    ["t endsWITH 'x'", { t: { $regex: 'x$' } }],
    ["t Contains 'x'", { t: { $regex: 'x' } }],
    ["t Like 'x'", { t: { $regex: '^x$' } }],
    ['a Between {1, 2}', { a: { $gte: 1, $lte: 2 } }],
    ['TruePredicate', {}],
    ['falsePREDICATE', { $nor: [{}] }],
    ['not a == 1', { $nor: [a] }],
    ['NOT a == 1', { $nor: [a] }],
    ['a in {1}', { a: { $in: [1] } }],
    ['a IN {1}', { a: { $in: [1] } }],
    ['a == true', { a: { $eq: true } }],
    ['a == TRUE', { a: { $eq: true } }],
    ['a == false', { a: { $eq: false } }],
    ['a == FALSE', { a: { $eq: false } }],
    ['any t == 1', { t: { $eq: 1 } }],
    ['ANY t == 1', { t: { $eq: 1 } }],
    ['some t == 1', { t: { $eq: 1 } }],
    ['SOME t == 1', { t: { $eq: 1 } }],
    ['all t != 1', { $nor: [{ t: { $eq: 1 } }] }],
    ['ALL t != 1', { $nor: [{ t: { $eq: 1 } }] }],
    ['none t == 1', { $nor: [{ t: { $eq: 1 } }] }],
    ['NONE t == 1', { $nor: [{ t: { $eq: 1 } }] }],
  ])('%s', (query, filter) => {
    expect(parseRql(query)).toEqual(filter);
  });

  it('reads other spellings of case-sensitive keywords as key paths, as realm-core does', () => {
    expect(parseRql('True == 1')).toEqual({ True: { $eq: 1 } });
    expect(parseRql('Not == 1')).toEqual({ Not: { $eq: 1 } });
    expect(parseRql('None != 1')).toEqual({ None: { $ne: 1 } });
    expect(parseRql("'x' IN Any")).toEqual({ Any: { $eq: 'x' } });
  });

  it.each<[string, number, RegExp]>([
    ['a == True', 5, /comparing two key paths is not supported\) \("True" is read as a key path: realm-core reads that keyword only as true, TRUE\)/],
    ['a == False', 5, /"False" is read as a key path: realm-core reads that keyword only as false, FALSE/],
    ['Not a == 1', 4, /^unknown operator "a" \("Not" is read as a key path: realm-core reads that keyword only as not, NOT\)/],
    ['a In {1}', 2, /^unknown operator "In" \("In" is read as a key path: realm-core reads that keyword only as in, IN\)/],
    ['Some t == 1', 5, /"Some" is read as a key path: realm-core reads that keyword only as any, ANY, some, SOME/],
    ['All t == 1', 4, /"All" is read as a key path: realm-core reads that keyword only as all, ALL/],
  ])('says when %j reads a keyword as a key path', (query, position, message) => {
    const error = syntaxErrorOf(query);
    expect(error.message).toMatch(message);
    expect(error.position).toBe(position);
  });
});

describe('the primary key as _id', () => {
  it.each([
    ['_id == oid(507f1f77bcf86cd799439011)', { id: { $eq: '507f1f77bcf86cd799439011' } }],
    ["_id IN {'a', 'b'}", { id: { $in: ['a', 'b'] } }],
    ["'a' == _id", { id: { $eq: 'a' } }],
    ["_id != uuid(3B241101-E2BB-4255-8CAF-4136C566A962)", { id: { $ne: '3b241101-e2bb-4255-8caf-4136c566a962' } }],
    // Only the whole first segment is the key.
    ['_idx == 1', { _idx: { $eq: 1 } }],
    ['a._id == 1', { 'a._id': { $eq: 1 } }],
  ])('%s', (query, filter) => {
    expect(parseRql(query)).toEqual(filter);
  });
});

describe('date literals', () => {
  it.each([
    ['2024-03-01@10:30:00', '2024-03-01T10:30:00.000Z'],
    ['2024-03-01T10:30:00', '2024-03-01T10:30:00.000Z'],
    ['2024-03-01@10:30:00:0', '2024-03-01T10:30:00.000Z'],
    ['2024-03-01T10:30:00:123000000', '2024-03-01T10:30:00.123Z'],
    ['2024-3-1@9:5:7', '2024-03-01T09:05:07.000Z'],
    // Fields past their range carry over, as realm-core's timegm has them.
    ['2024-13-01@00:00:00', '2025-01-01T00:00:00.000Z'],
    ['2024-02-30@25:00:00', '2024-03-02T01:00:00.000Z'],
    ['1900-01-01@00:00:00', '1900-01-01T00:00:00.000Z'],
    // Before the epoch, realm-core counts the nanoseconds away from it, as the seconds.
    ['1969-12-31@23:59:59:500000000', '1969-12-31T23:59:58.500Z'],
    ['T1709289000:0', '2024-03-01T10:30:00.000Z'],
    ['T1709289000:123000000', '2024-03-01T10:30:00.123Z'],
    ['T0:0', '1970-01-01T00:00:00.000Z'],
    ['T+5:+0', '1970-01-01T00:00:05.000Z'],
    ['T-1:-500000000', '1969-12-31T23:59:58.500Z'],
  ])('%s', (literal, iso) => {
    expect(parseRql(`d == ${literal}`)).toEqual({ d: { $eq: new Date(iso) } });
  });

  it('reads dates in sets, reversed comparisons and next to other tokens', () => {
    expect(parseRql('d IN {2024-03-01@10:30:00, T0:0}')).toEqual({ d: { $in: [new Date('2024-03-01T10:30:00Z'), new Date(0)] } });
    expect(parseRql('T0:0 < d')).toEqual({ d: { $gt: new Date(0) } });
    expect(parseRql('(d>=T0:0)&&d<2024-03-01T10:30:00')).toEqual({ $and: [{ d: { $gte: new Date(0) } }, { d: { $lt: new Date('2024-03-01T10:30:00Z') } }] });
    // Without the colon, T and digits are a key path.
    expect(parseRql('T1 == 5')).toEqual({ T1: { $eq: 5 } });
  });

  it.each<[string, number, RegExp]>([
    ['d == 2024-03-01', 5, /^expected a date with its time, such as 2024-03-01@10:30:00 at position 5/],
    ['d == 2024-03-01@10:30', 5, /expected a date with its time/],
    ['d == 1899-12-31@23:59:59', 5, /^dates before 1900 are not supported/],
    ['d == 2024-03-01@10:30:00:1000000000', 5, /^nanoseconds must be fewer than 1000000000/],
    ['d == 3000000000-01-01@00:00:00', 5, /^date field out of range/],
    ['d == 300000-01-01@00:00:00', 5, /^date out of range/],
    ['d == T9000000000000:0', 5, /^date out of range/],
    ['d == T1:1000000000', 5, /^nanoseconds must be fewer than 1000000000/],
    ['d == T-1:5', 5, /^the seconds and nanoseconds of a T<seconds>:<nanoseconds> date must have the same sign/],
    ['d == T1:-5', 5, /same sign/],
    ['d == T01:0', 5, /cannot start with 0 \(realm-core would read it as octal\)/],
    ['d == T1:0500', 5, /would read it as octal/],
  ])('rejects %j at position %i', (query, position, message) => {
    const error = syntaxErrorOf(query);
    expect(error.message).toMatch(message);
    expect(error.position).toBe(position);
  });

  // T1:1500000 is 1001.5 ms after the epoch; stored dates are whole milliseconds.
  it.each([
    ['d == T1:1500000', { $nor: [{}] }],
    ['d != T1:1500000', {}],
    ['d > T1:1500000', { d: { $gt: new Date(1001) } }],
    ['d >= T1:1500000', { d: { $gt: new Date(1001) } }],
    ['d < T1:1500000', { d: { $lte: new Date(1001) } }],
    ['d <= T1:1500000', { d: { $lte: new Date(1001) } }],
    ['d > T-1:-500000', { d: { $gt: new Date(-1001) } }],
    ['d IN {T1:1500000, T1:2000000}', { d: { $in: [new Date(1002)] } }],
    ['d BETWEEN {T1:500000, T1:1500000}', { d: { $gt: new Date(1000), $lte: new Date(1001) } }],
  ])('%s compares exactly with a date between two milliseconds', (query, filter) => {
    expect(parseRql(query)).toEqual(filter);
  });

  const stamped = [{ _id: 1, d: new Date(1000) }, { _id: 2, d: new Date(1001) }, { _id: 3, d: new Date(1002) }, { _id: 4, d: null }, { _id: 5 }];
  it.each<[string, number[]]>([
    ['d == T1:1500000', []],
    ['d != T1:1500000', [1, 2, 3, 4, 5]],
    ['d > T1:1500000', [3]],
    ['d >= T1:1500000', [3]],
    ['d < T1:1500000', [1, 2]],
    ['d <= T1:1500000', [1, 2]],
    ['T1:1500000 < d', [3]],
    ['d == T1:1000000', [2]],
    ['d >= 1970-01-01@00:00:01:1000000', [2, 3]],
    ['d IN {T1:1500000, T1:2000000}', [3]],
    ['d BETWEEN {T1:500000, T1:1500000}', [2]],
    ['d BETWEEN {T1:0, T1:2000000}', [1, 2, 3]],
  ])('%s in mingo', (query, ids) => {
    const q = new Query(parseRql(query));
    expect(stamped.filter((doc) => q.test(doc)).map((doc) => doc._id)).toEqual(ids);
  });
});

describe('BETWEEN', () => {
  it.each<[string, unknown[], Record<string, unknown>]>([
    ['a BETWEEN {1, 5}', [], { a: { $gte: 1, $lte: 5 } }],
    ['a between {$0, $1}', [2, 4], { a: { $gte: 2, $lte: 4 } }],
    ["name BETWEEN {'a', 'm'}", [], { name: { $gte: 'a', $lte: 'm' } }],
    ['d BETWEEN {2024-03-01@00:00:00, T1709289000:0}', [], { d: { $gte: new Date('2024-03-01T00:00:00Z'), $lte: new Date('2024-03-01T10:30:00Z') } }],
    ['NOT a BETWEEN {1, 5}', [], { $nor: [{ a: { $gte: 1, $lte: 5 } }] }],
  ])('%s', (query, args, filter) => {
    expect(parseRql(query, args)).toEqual(filter);
  });

  it.each<[string, unknown[], number, RegExp]>([
    ['a BETWEEN {1}', [], 10, /^expected \{low, high\} after "BETWEEN"/],
    ['a BETWEEN {1, 2, 3}', [], 10, /expected \{low, high\} after "BETWEEN"/],
    ['a BETWEEN {}', [], 10, /expected \{low, high\} after "BETWEEN"/],
    ['a BETWEEN $0', [[1, 2]], 10, /expected \{low, high\} after "BETWEEN"/],
    ['a BETWEEN 1', [], 10, /expected \{low, high\} after "BETWEEN"/],
    ['a BETWEEN {nil, 2}', [], 10, /^the bounds of "BETWEEN" must be values, not nil or a list/],
    ['a BETWEEN {1, $0}', [[2]], 10, /must be values, not nil or a list/],
    ['5 BETWEEN {1, 2}', [], 0, /^expected a key path before "BETWEEN"/],
    ['a BETWEEN[c] {1, 2}', [], 9, /"\[c\]" is not allowed after "BETWEEN"/],
  ])('rejects %j', expectRejected);
});

describe('ANY, ALL and NONE over list fields', () => {
  it.each<[string, unknown[], Record<string, unknown>]>([
    ['ANY tags == $0', ['x'], { tags: { $eq: 'x' } }],
    ['some tags > 1', [], { tags: { $gt: 1 } }],
    ['ANY tags != 5', [], { $or: [{ tags: { $lt: 5 } }, { tags: { $gt: 5 } }] }],
    ["ANY tags CONTAINS[c] 'x'", [], { tags: { $regex: 'x', $options: 'i' } }],
    ["ANY tags ==[c] 'x'", [], { tags: { $regex: '^x$', $options: 'i' } }],
    ['ALL tags < 5', [], { $nor: [{ tags: { $gte: 5 } }] }],
    ['ALL tags <= 5', [], { $nor: [{ tags: { $gt: 5 } }] }],
    ['ALL tags > 5', [], { $nor: [{ tags: { $lte: 5 } }] }],
    ['ALL tags >= 5', [], { $nor: [{ tags: { $lt: 5 } }] }],
    ['ALL tags == 5', [], { $nor: [{ tags: { $lt: 5 } }, { tags: { $gt: 5 } }] }],
    ['ALL tags != 5', [], { $nor: [{ tags: { $eq: 5 } }] }],
    ['ALL tags BETWEEN {1, 5}', [], { $nor: [{ tags: { $lt: 1 } }, { tags: { $gt: 5 } }] }],
    ['NONE tags == 5', [], { $nor: [{ tags: { $eq: 5 } }] }],
    ['NONE tags != 5', [], { $nor: [{ tags: { $lt: 5 } }, { tags: { $gt: 5 } }] }],
    ["NONE tags BEGINSWITH 'x'", [], { $nor: [{ tags: { $regex: '^x' } }] }],
    ["NONE tags ==[c] 'x'", [], { $nor: [{ tags: { $regex: '^x$', $options: 'i' } }] }],
    ['5 < ANY tags', [], { tags: { $gt: 5 } }],
    ['5 < ALL tags', [], { $nor: [{ tags: { $lte: 5 } }] }],
    ["'x' IN ALL tags", [], { $nor: [{ tags: { $lt: 'x' } }, { tags: { $gt: 'x' } }] }],
    ['NOT ANY tags == 1', [], { $nor: [{ tags: { $eq: 1 } }] }],
    // Equal to no stored date: ANY never holds, ALL only for an empty list.
    ['ANY d == T1:1500000', [], { $nor: [{}] }],
    ['ALL d == T1:1500000', [], { $nor: [{ 'd.0': { $exists: true } }] }],
    ['NONE d == T1:1500000', [], {}],
    ['ANY d != T1:1500000', [], { 'd.0': { $exists: true } }],
  ])('%s', (query, args, filter) => {
    expect(parseRql(query, args)).toEqual(filter);
  });

  // A list a document lacks, or holds as null, is Realm's empty list.
  const lists = [
    { _id: 1, scores: [1, 5], tags: ['home', 'urgent'] },
    { _id: 2, scores: [3], tags: ['work'] },
    { _id: 3, scores: [], tags: [] },
    { _id: 4 },
    { _id: 5, scores: null, tags: null },
  ];
  it.each<[string, unknown[], number[]]>([
    ['ANY scores > 4', [], [1]],
    ['ALL scores > 2', [], [2, 3, 4, 5]],
    ['NONE scores > 4', [], [2, 3, 4, 5]],
    ['NOT ANY scores > 4', [], [2, 3, 4, 5]],
    ['ANY scores == 3', [], [2]],
    ['ALL scores == 3', [], [2, 3, 4, 5]],
    ['NONE scores == 3', [], [1, 3, 4, 5]],
    ['ANY scores != 3', [], [1]],
    ['ALL scores != 3', [], [1, 3, 4, 5]],
    ['NONE scores != 3', [], [2, 3, 4, 5]],
    ['ALL scores <= 5', [], [1, 2, 3, 4, 5]],
    ['ALL scores < 5', [], [2, 3, 4, 5]],
    ['5 <= ANY scores', [], [1]],
    ['ALL scores BETWEEN {1, 5}', [], [1, 2, 3, 4, 5]],
    ['ALL scores BETWEEN {2, 5}', [], [2, 3, 4, 5]],
    ['ALL scores BETWEEN {1, 4}', [], [2, 3, 4, 5]],
    ['ALL scores BETWEEN {$0, $1}', [3, 3], [2, 3, 4, 5]],
    ["ANY tags BEGINSWITH 'ur'", [], [1]],
    ["ANY tags ==[c] 'WORK'", [], [2]],
    ["NONE tags CONTAINS[c] 'OR'", [], [1, 3, 4, 5]],
    ["NONE tags LIKE '?o*'", [], [3, 4, 5]],
    ["ALL tags != 'work'", [], [1, 3, 4, 5]],
    ["'work' IN ANY tags", [], [2]],
  ])('%s in mingo', (query, args, ids) => {
    const q = new Query(parseRql(query, args));
    expect(lists.filter((doc) => q.test(doc)).map((doc) => doc._id)).toEqual(ids);
  });

  it.each<[string, unknown[], number, RegExp]>([
    ["ALL tags CONTAINS 'x'", [], 4, /^"ALL tags CONTAINS …" is not supported: a MongoDB filter cannot ask for a list element that does not match a pattern/],
    ["ALL tags ==[c] 'x'", [], 4, /"ALL tags ==\[c\] …" is not supported/],
    ["ANY tags !=[c] 'x'", [], 4, /"ANY tags !=\[c\] …" is not supported/],
    ["NONE tags !=[c] 'x'", [], 5, /"NONE tags !=\[c\] …" is not supported/],
    ['ANY tags IN {1, 2}', [], 4, /^comparing a list with a list is not supported in Flexible Sync subscriptions/],
    ['ALL tags IN $0', [[1]], 4, /comparing a list with a list/],
    ['ANY tags == $0', [[1, 2]], 12, /comparing a list with a list/],
    ['ANY tags == nil', [], 12, /^comparing the elements of a list with nil \(ANY tags == nil\) is not supported/],
    ['NONE tags != $0', [null], 13, /comparing the elements of a list with nil/],
    ['ANY tags BETWEEN {1, 2}', [], 4, /^only ALL is supported with "BETWEEN" on a list, not ANY/],
    ['NONE tags BETWEEN {1, 2}', [], 5, /only ALL is supported with "BETWEEN" on a list, not NONE/],
    ['ANY {1, 2} == a', [], 0, /^ANY before a list of values is not supported \(to compare a field with several values, write "field IN \{…\}"\)/],
    ['ANY $0 == a', [1], 4, /^expected a key path to a list after "ANY"/],
    ['ALL AND == 1', [], 4, /expected a key path to a list after "ALL"/],
    ['ANY true == 1', [], 4, /expected a key path to a list after "ANY"/],
    ['ANY tags.@count > 1', [], 9, /^ANY cannot apply to a count/],
    ['ANY a == ANY b', [], 13, /comparing two key paths is not supported/],
  ])('rejects %j', expectRejected);
});

describe('@count and @size', () => {
  it.each<[string, unknown[], Record<string, unknown>]>([
    ['tags.@count > 2', [], { 'tags.2': { $exists: true } }],
    ['tags.@size > 2', [], { 'tags.2': { $exists: true } }],
    ['tags.@count >= 2', [], { 'tags.1': { $exists: true } }],
    ['tags.@count < 2', [], { 'tags.1': { $exists: false } }],
    ['tags.@count <= 2', [], { 'tags.2': { $exists: false } }],
    ['tags.@count == 0', [], { 'tags.0': { $exists: false } }],
    ['tags.@count == 2', [], { 'tags.1': { $exists: true }, 'tags.2': { $exists: false } }],
    ['tags.@count != 2', [], { $nor: [{ 'tags.1': { $exists: true }, 'tags.2': { $exists: false } }] }],
    ['tags.@count <> 0', [], { $nor: [{ 'tags.0': { $exists: false } }] }],
    ['tags.@count >= 0', [], {}],
    ['tags.@count < 0', [], { $nor: [{}] }],
    ['tags.@count == 1.5', [], { $nor: [{}] }],
    ['tags.@count != -1', [], {}],
    ['tags.@count > 1.5', [], { 'tags.1': { $exists: true } }],
    ['tags.@count < 1.5', [], { 'tags.1': { $exists: false } }],
    ['2 < tags.@count', [], { 'tags.2': { $exists: true } }],
    ['tags.@count > $0', [2], { 'tags.2': { $exists: true } }],
    ['tags.@count BETWEEN {1, 2}', [], { $and: [{ 'tags.0': { $exists: true } }, { 'tags.2': { $exists: false } }] }],
    ['tags.@count IN {0, 2}', [], { $or: [{ 'tags.0': { $exists: false } }, { 'tags.1': { $exists: true }, 'tags.2': { $exists: false } }] }],
    ['tags.@count IN {}', [], { $nor: [{}] }],
    ['a.b.@count > 0', [], { 'a.b.0': { $exists: true } }],
    // No stored list is that long (a document is at most 16 MiB).
    ['tags.@count > 99999999', [], { $nor: [{}] }],
  ])('%s', (query, args, filter) => {
    expect(parseRql(query, args)).toEqual(filter);
  });

  const lists = [
    { _id: 1, scores: [1, 5] },
    { _id: 2, scores: [3] },
    { _id: 3, scores: [] },
    { _id: 4 },
    { _id: 5, scores: null },
    { _id: 6, scores: [null, null, null] },
  ];
  it.each<[string, number[]]>([
    ['scores.@count > 1', [1, 6]],
    ['scores.@count == 0', [3, 4, 5]],
    ['scores.@size == 1', [2]],
    ['scores.@count == 3', [6]],
    ['scores.@count >= 1', [1, 2, 6]],
    ['scores.@count < 2', [2, 3, 4, 5]],
    ['scores.@count <= 0', [3, 4, 5]],
    ['scores.@count != 1', [1, 3, 4, 5, 6]],
    ['scores.@count BETWEEN {1, 2}', [1, 2]],
    ['scores.@count IN {0, 2}', [1, 3, 4, 5]],
    ['scores.@count > 1.5', [1, 6]],
    ['scores.@count == 1.5', []],
    ['1 < scores.@count', [1, 6]],
    ['NOT scores.@count == 0', [1, 2, 6]],
  ])('%s in mingo', (query, ids) => {
    const q = new Query(parseRql(query));
    expect(lists.filter((doc) => q.test(doc)).map((doc) => doc._id)).toEqual(ids);
  });

  it.each<[string, unknown[], number, RegExp]>([
    ["tags.@count == 'x'", [], 15, /^expected a number to compare tags.@count with/],
    ['tags.@count == $0', [null], 15, /expected a number to compare tags.@count with/],
    ["tags.@count CONTAINS 'x'", [], 0, /^expected a comparison, IN or BETWEEN after tags.@count/],
    ['3 IN tags.@count', [], 5, /^expected a list after "IN", not a count/],
    ['tags.@COUNT > 1', [], 5, /^unknown operator "@COUNT" \(realm-core knows @count and @size\)/],
    ['tags.@ > 1', [], 5, /unknown operator "@"/],
    ['@count > 1', [], 0, /^unexpected character "@"/],
  ])('rejects %j', expectRejected);
});

describe('forms Flexible Sync refuses', () => {
  it.each<[string, number, RegExp]>([
    ['a == 1 SORT(a ASC)', 7, /^SORT is not supported in Flexible Sync subscriptions \(no query suffix is: SORT, DISTINCT and LIMIT; a subscription syncs every object it matches\)/],
    ['TRUEPREDICATE sort(a DESC)', 14, /^SORT is not supported/],
    ['TRUEPREDICATE DISTINCT(a)', 14, /^DISTINCT is not supported/],
    ['TRUEPREDICATE Limit(10)', 14, /^LIMIT is not supported/],
    ['a == 1 SORT(a ASC) LIMIT(5)', 7, /^SORT is not supported/],
    ['SUBQUERY(items, $x, $x.price > 5).@count > 0', 0, /^SUBQUERY is not supported in Flexible Sync subscriptions/],
    ['a == 1 AND subquery(items, $x, $x.p > 1).@count > 0', 11, /^SUBQUERY is not supported/],
    ['items.@avg > 1', 6, /^aggregates \(@avg, @min, @max, @sum\) are not supported in Flexible Sync subscriptions/],
    ['items.@min > 1', 6, /^aggregates/],
    ['items.@max > 1', 6, /^aggregates/],
    ['items.@sum.price > 1', 6, /^aggregates/],
    ['@links.Project.items.@count > 0', 0, /^backlinks \(@links\) are not supported in Flexible Sync subscriptions/],
    ['x.@links.@count > 0', 2, /^backlinks/],
    ["m.@type == 'int'", 2, /^@type is not supported in Flexible Sync subscriptions/],
    ["d.@keys == 'k'", 2, /^@keys is not supported/],
    ["d.@values == 'v'", 2, /^@values is not supported/],
    ["{'a', 'b'} IN tags", 0, /^comparing a list with a list is not supported in Flexible Sync subscriptions/],
  ])('%j', (query, position, message) => {
    const error = syntaxErrorOf(query);
    expect(error.message).toMatch(message);
    expect(error.position).toBe(position);
  });

  it('refuses an array argument compared with a list', () => {
    const error = syntaxErrorOf('$0 IN tags', [['a', 'b']]);
    expect(error.message).toMatch(/^comparing a list with a list is not supported/);
    expect(error.position).toBe(0);
  });

  it('keeps sort, distinct and limit usable as field names, as realm-core does', () => {
    expect(parseRql('sort == 1 AND limit > 2 AND distinct != 3')).toEqual({ $and: [{ sort: { $eq: 1 } }, { limit: { $gt: 2 } }, { distinct: { $ne: 3 } }] });
  });
});

// Issue 13, point 7: forms whose meaning depends on the field's type, read as realm-core reads
// them against the schema (parseRql's third argument, which the SDK passes).
describe('read against the schema', () => {
  const tasks = loadModel(SCHEMA).collections.find((c) => c.name === 'tasks')!;
  const fields = rqlFieldsOf(tasks);
  const withSchema = (query: string, args: unknown[] = []) => parseRql(query, args, fields);
  const refusalOf = (query: string, args: unknown[] = []): RqlSyntaxError => {
    try {
      withSchema(query, args);
    } catch (error) {
      if (error instanceof RqlSyntaxError) return error;
      throw error;
    }
    throw new Error(`expected ${JSON.stringify(query)} to be refused`);
  };
  // A list a document lacks, or holds as null, is Realm's empty list.
  const docs = [
    { _id: 1, priority: 1, tags: ['x'] },
    { _id: 2, priority: 2, tags: ['x', 'y'] },
    { _id: 3, priority: 3, tags: ['y'] },
    { _id: 4, priority: 4, tags: [] },
    { _id: 5, priority: 5 },
    { _id: 6, priority: 6, tags: null },
  ];
  const matching = (filter: Record<string, unknown>) => docs.filter((d) => new Query(filter).test(d)).map((d) => d._id);

  it('knows lists, scalars and unknown paths of the model', () => {
    expect(fields.isList('tags')).toBe(true);
    expect(fields.isList('assigneeIds')).toBe(true);
    expect(fields.isList('priority')).toBe(false);
    expect(fields.isList('id')).toBe(false);
    expect(fields.isList('checklist.done')).toBe(true); // through a list of embedded objects
    expect(fields.isList('colour')).toBeUndefined();
  });

  it.each<[string, Record<string, unknown>, number[]]>([
    // Some element is not 'x' (realm-core's implicit ANY), where MongoDB's {$ne} means "no element is".
    ["tags != 'x'", { $or: [{ tags: { $lt: 'x' } }, { tags: { $gt: 'x' } }] }, [2, 3]],
    ["tags <> 'x'", { $or: [{ tags: { $lt: 'x' } }, { tags: { $gt: 'x' } }] }, [2, 3]],
    ["tags == 'x'", { tags: { $eq: 'x' } }, [1, 2]],
    ["tags > 'x'", { tags: { $gt: 'x' } }, [2, 3]],
    ["tags BEGINSWITH 'y'", { tags: { $regex: '^y' } }, [2, 3]],
    ["tags ==[c] 'X'", { tags: { $regex: '^X$', $options: 'i' } }, [1, 2]],
    ["'x' IN tags", { tags: { $eq: 'x' } }, [1, 2]],
    ["NOT tags != 'x'", { $nor: [{ $or: [{ tags: { $lt: 'x' } }, { tags: { $gt: 'x' } }] }] }, [1, 4, 5, 6]],
    // The written quantifier, as before.
    ["ANY tags != 'x'", { $or: [{ tags: { $lt: 'x' } }, { tags: { $gt: 'x' } }] }, [2, 3]],
    ["ALL tags != 'x'", { $nor: [{ tags: { $eq: 'x' } }] }, [3, 4, 5, 6]],
    ["NONE tags == 'x'", { $nor: [{ tags: { $eq: 'x' } }] }, [3, 4, 5, 6]],
    // ANY before a single value is that value (realm-core accepts it; only ALL and NONE need a list).
    ['ANY priority == 2', { priority: { $eq: 2 } }, [2]],
    ['SOME priority > 4', { priority: { $gt: 4 } }, [5, 6]],
    ['2 < any priority', { priority: { $gt: 2 } }, [3, 4, 5, 6]],
    // Scalars and counts are read as before.
    ['priority != 2', { priority: { $ne: 2 } }, [1, 3, 4, 5, 6]],
    ['tags.@count == 0', { 'tags.0': { $exists: false } }, [4, 5, 6]],
    ['ALL tags BETWEEN {"a", "x"}', { $nor: [{ tags: { $lt: 'a' } }, { tags: { $gt: 'x' } }] }, [1, 4, 5, 6]],
  ])('%s', (query, filter, ids) => {
    expect(withSchema(query)).toEqual(filter);
    expect(matching(withSchema(query))).toEqual(ids);
  });

  it('reads the unquantified list comparison as MongoDB does without the schema (the old meaning)', () => {
    expect(parseRql("tags != 'x'")).toEqual({ tags: { $ne: 'x' } });
    expect(matching(parseRql("tags != 'x'"))).toEqual([3, 4, 5, 6]);
  });

  it('leaves a path the schema does not know to the filter checker', () => {
    expect(withSchema("colour != 'x'")).toEqual({ colour: { $ne: 'x' } });
    const unknown: RqlFields = { isList: () => undefined };
    expect(parseRql("ALL tags != 'x'", [], unknown)).toEqual({ $nor: [{ tags: { $eq: 'x' } }] });
  });

  it.each<[string, unknown[], number, string]>([
    ['ALL priority == 1', [], 4, "The keypath following 'ALL' must contain a list (priority is not a list) at position 4"],
    ['NONE priority > 1', [], 5, "The keypath following 'NONE' must contain a list (priority is not a list)"],
    ['1 < all priority', [], 8, "The keypath following 'ALL' must contain a list"],
    ['ALL _id == $0', ['a'], 4, "The keypath following 'ALL' must contain a list (_id is not a list)"],
    ["tags BETWEEN {'a', 'b'}", [], 0, 'only ALL is supported with "BETWEEN" on a list (tags is one): write "ALL tags BETWEEN {…}"'],
    ["ANY tags BETWEEN {'a', 'b'}", [], 4, 'only ALL is supported with "BETWEEN" on a list, not ANY'],
    ['tags == nil', [], 8, 'comparing the elements of a list with nil (tags == nil, an implicit ANY on a list) is not supported'],
    ['tags != NULL', [], 8, 'comparing the elements of a list with nil (tags != nil, an implicit ANY on a list) is not supported'],
    ['nil == tags', [], 0, 'comparing the elements of a list with nil (tags == nil, an implicit ANY on a list) is not supported'],
    ['ANY tags == nil', [], 12, 'comparing the elements of a list with nil (ANY tags == nil) is not supported'],
    ["tags IN {'a', 'b'}", [], 0, 'comparing a list with a list is not supported in Flexible Sync subscriptions (tags is a list'],
    ['tags IN $0', [['a']], 0, 'comparing a list with a list is not supported'],
    ['tags == $0', [['a']], 8, 'comparing a list with a list is not supported'],
    ["tags !=[c] 'x'", [], 0, '"tags !=[c] …" (an implicit ANY on a list) is not supported: a MongoDB filter cannot ask for a list element that does not match a pattern'],
    ['title.@count > 3', [], 6, "@count applies to a list, and title is not one (a string's length cannot be queried in Flexible Sync subscriptions)"],
    ['priority.@size == 1', [], 9, '@size applies to a list, and priority is not one'],
  ])('refuses %j', (query, args, position, message) => {
    const error = refusalOf(query, args);
    expect(error.message).toContain(message);
    expect(error.position).toBe(position);
  });

  it('is what the SDK reads subscriptions with', () => {
    expect(toFilter(tasks, "tags != 'x'")).toEqual({ $or: [{ tags: { $lt: 'x' } }, { tags: { $gt: 'x' } }] });
    expect(() => toFilter(tasks, 'ALL priority == 1')).toThrow(/^The keypath following 'ALL' must contain a list/);
    expect(() => toFilter(tasks, 'tags == nil')).toThrow(/implicit ANY on a list/);
  });
});

// Issue 13, point 7, each form the way a subscription takes it: parsed against the schema and
// checked by the SDK (toFilter), then matched by the gateway's compiled filter. The same table
// runs against a real gateway in test/rql-table.test.ts.
describe('every Flexible Sync form through the SDK check', () => {
  const tasks = loadModel(SCHEMA).collections.find((c) => c.name === 'tasks')!;
  const sync = { seq: 1, updatedAt: new Date(), deleted: false };
  const docs = [
    { _id: 'a', title: 'Buy milk', status: 'TODO', priority: 1, tags: ['home'], dueDate: new Date('2024-03-01T10:30:00Z') },
    { _id: 'b', title: 'buy bread', status: 'DONE', priority: 3, tags: ['home', 'shop'], dueDate: new Date('2024-03-01T10:30:00.001Z') },
    { _id: 'c', title: 'Report', status: 'BLOCKED', priority: 5, tags: [] },
  ].map((d) => ({ ...d, _sync: sync }));
  const select = (query: string, args: unknown[] = []) => {
    const filter = compileFilter(tasks, toFilter(tasks, query, args), { queryableOnly: true, subscription: true });
    return docs.filter((d) => filter.matches(d as never)).map((d) => d._id);
  };

  it.each<[string, unknown[], string[]]>([
    ['dueDate == nil', [], ['c']],
    ['dueDate != NIL', [], ['a', 'b']],
    ['dueDate == Null', [], ['c']],
    ['dueDate == 2024-03-01@10:30:00', [], ['a']],
    ['dueDate == 2024-03-01T10:30:00', [], ['a']],
    ['dueDate == 2024-03-01@10:30:00:1000000', [], ['b']],
    ['dueDate > T1709289000:0', [], ['b']],
    ['dueDate == $0', [new Date('2024-03-01T10:30:00.001Z')], ['b']],
    ['priority BETWEEN {2, 5}', [], ['b', 'c']],
    ["ANY tags == 'shop'", [], ['b']],
    ["SOME tags == 'home'", [], ['a', 'b']],
    ["ALL tags == 'home'", [], ['a', 'c']],
    ["NONE tags == 'home'", [], ['c']],
    ["tags != 'home'", [], ['b']],
    ['tags.@count == 2', [], ['b']],
    ['tags.@size < 1', [], ['c']],
    ["_id == 'b'", [], ['b']],
    ["_id IN {'a', 'c'}", [], ['a', 'c']],
    ["title ==[c] 'BUY MILK'", [], ['a']],
    ['priority <> 3', [], ['a', 'c']],
    ["priority > 1 && status != 'DONE' || ! priority > 1", [], ['a', 'c']],
    ['FALSEPREDICATE', [], []],
    ['TRUEPREDICATE', [], ['a', 'b', 'c']],
    ["status == 'TODO' or priority == 5 aNd tags.@count == 0", [], ['a', 'c']],
    ['not priority > 1', [], ['a']],
    ["status == 'DONE' OR NOT priority >= 2", [], ['a', 'b']],
    ['dueDate == nil Or priority == 1', [], ['a', 'c']],
  ])('%s', (query, args, ids) => {
    expect(select(query, args)).toEqual(ids);
  });
});
