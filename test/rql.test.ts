// Unit: Realm Query Language (Flexible Sync subset) read into MongoDB filters: each operator's
// translation, precedence, arguments, regex escaping, exact error positions, and (through mingo)
// that the filters mean what the RQL means.
import { Query } from 'mingo';
import { describe, expect, it } from 'vitest';
import { escapeRegex, parseRql, RqlSyntaxError } from '../protocol/rql.ts';

function syntaxErrorOf(query: string, args?: readonly unknown[]): RqlSyntaxError {
  try {
    parseRql(query, args);
  } catch (error) {
    if (error instanceof RqlSyntaxError) return error;
    throw error;
  }
  throw new Error(`expected ${JSON.stringify(query)} to be rejected`);
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
    ['a == True', true],
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
    ["title like[C] 'ab'", { title: { $regex: '^ab$', $options: 'i' } }],
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
    ['a BETWEEN {1, 2}', [], 2, /unknown operator "BETWEEN"/],
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
    ['{1} IN a', [], 0, /expected a key path or value before "IN"/],
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
    ["priority > 2 AND status == 'TODO' OR _id == 2", [], [1, 2, 3]],
    ["priority > 2 AND (status == 'DONE' OR 'home' IN tags)", [], [1]],
    ['checklist.done == true', [], [1]],
    ['dueDate < $0', [new Date('2026-12-31T00:00:00Z')], [1, 2]],
    ['TRUEPREDICATE', [], [1, 2, 3, 4]],
    ['FALSEPREDICATE', [], []],
  ])('%s', (query, args, ids) => {
    expect(matching(query, args)).toEqual(ids);
  });
});
