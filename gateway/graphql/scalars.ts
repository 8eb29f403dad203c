// The GraphQL scalars of the BSON types (README.md, "BSON types"): each accepts the wire form
// (and the obvious lenient spellings: uppercase hex, a Long or Decimal as a number literal) and
// answers with the canonical wire form, so what a client gets back is what is stored. Checks are
// the codec's (protocol/bson-values.ts, protocol/wire-values.ts): a value the store could not
// hold is refused here, before anything runs, with a message naming what is wrong.
import { Decimal128 } from 'mongodb';
import { GraphQLError, GraphQLScalarType, Kind, valueFromASTUntyped, type DocumentNode, type ValueNode } from 'graphql';
import { BsonValueError, currentBsonSupport, mixedToStored, storedValue, wireValue } from '../../protocol/bson-values.ts';
import { CUSTOM_SCALARS, type ScalarName } from '../../protocol/model.ts';
import { decimalText, isCanonicalBase64, normalizeLong, normalizeObjectId, normalizeUuid } from '../../protocol/wire-values.ts';

/** `scalar X` for each scalar of ours a schema uses without declaring it (DateTime included). */
export function missingScalarDefinitions(document: DocumentNode): string[] {
  const declared = new Set(document.definitions.flatMap((d) => (d.kind === Kind.SCALAR_TYPE_DEFINITION ? [d.name.value] : [])));
  return CUSTOM_SCALARS.filter((name) => !declared.has(name)).map((name) => `scalar ${name}`);
}

const refuse = (name: string, expected: string, value: unknown): never => {
  throw new GraphQLError(`${name} must be ${expected}, got ${show(value)}`);
};

/** A string literal's value (or, where `numbers`, an integer or float literal's text). */
function literalText(ast: ValueNode, numbers = false): unknown {
  if (ast.kind === Kind.STRING) return ast.value;
  if (numbers && (ast.kind === Kind.INT || ast.kind === Kind.FLOAT)) return ast.value;
  return ast.kind === Kind.NULL ? null : `<${ast.kind}>`;
}

function scalar(name: ScalarName, description: string, parse: (value: unknown) => unknown, numberLiterals = false): GraphQLScalarType {
  return new GraphQLScalarType({
    name,
    description,
    // Answers come from toWireForm already; a BSON value that reaches here is converted the same way.
    serialize: (value) => (typeof value === 'object' && value !== null && '_bsontype' in value ? wireValue({ kind: 'scalar', name }, value) : parse(value)),
    parseValue: parse,
    parseLiteral: (ast) => parse(literalText(ast, numberLiterals)),
  });
}

const objectIdScalar = scalar('ObjectId', 'A MongoDB ObjectId: 24 hex digits (answered in lowercase).', (value) => normalizeObjectId(value) ?? refuse('ObjectId', '24 hex digits', value));

const uuidScalar = scalar('UUID', 'A UUID in its 8-4-4-4-12 form (answered in lowercase); stored as BSON binary subtype 4.', (value) => normalizeUuid(value) ?? refuse('UUID', 'a UUID (8-4-4-4-12 hex digits)', value));

const longScalar = scalar(
  'Long',
  'A 64-bit integer as a decimal string ("9007199254740993"); a number literal or a safe integer is accepted too.',
  (value) => normalizeLong(value) ?? refuse('Long', 'a 64-bit integer as a decimal string (from -9223372036854775808 to 9223372036854775807)', value),
  true,
);

const decimalScalar = scalar(
  'Decimal',
  'A Decimal128 as a decimal string ("1.10", "-0", "1E+3"), answered as Decimal128 writes it; a number literal is accepted too.',
  (value) => {
    const text = decimalText(value);
    if (text === null) return refuse('Decimal', 'a decimal number as a string (e.g. "1.10")', value);
    if (!currentBsonSupport().decimal128) throw new GraphQLError('Decimal: this store (FerretDB v1) cannot hold Decimal values');
    try {
      return Decimal128.fromString(text).toString();
    } catch {
      return refuse('Decimal', 'a decimal with at most 34 significant digits and an exponent within Decimal128 range', value);
    }
  },
  true,
);

const binaryScalar = scalar('Binary', 'Binary data (BSON binary subtype 0) in standard base64 with padding.', (value) => (isCanonicalBase64(value) ? value : refuse('Binary', 'base64 (standard alphabet, padded, unused bits zero)', value)));

/** Checks a Mixed or Dictionary value with the codec; answers the value as given (the store normalizes). */
function checkedBy(name: 'Mixed' | 'Dictionary', value: unknown): unknown {
  try {
    if (name === 'Mixed') mixedToStored(value);
    else storedValue({ kind: 'scalar', name }, value, '');
  } catch (error) {
    if (error instanceof BsonValueError) throw new GraphQLError(`${name}: ${error.message.replace(/^ /, '')}`);
    throw error;
  }
  return value;
}

const mixedScalar = new GraphQLScalarType({
  name: 'Mixed',
  description:
    'Any value: JSON, with Extended JSON v2 wrappers for what JSON lacks ({"$oid"}, {"$uuid"}, {"$numberLong"}, {"$numberDecimal"}, {"$numberDouble"} for integral doubles, NaN and infinities, {"$date"}, {"$binary"}). Integers within int32 are int32, other numbers doubles.',
  serialize: (value) => value,
  parseValue: (value) => checkedBy('Mixed', value),
  parseLiteral: (ast, variables) => checkedBy('Mixed', valueFromASTUntyped(ast, variables)),
});

const dictionaryScalar = new GraphQLScalarType({
  name: 'Dictionary',
  description: 'A map of string keys to Mixed values (a Realm dictionary), stored as an embedded document.',
  serialize: (value) => value,
  parseValue: (value) => checkedBy('Dictionary', value),
  parseLiteral: (ast, variables) => (ast.kind === Kind.OBJECT ? checkedBy('Dictionary', valueFromASTUntyped(ast, variables)) : refuse('Dictionary', 'an object', literalText(ast))),
});

/** Resolvers of the BSON scalars, by name (DateTime is schema.ts's). */
export const BSON_SCALARS: Record<string, GraphQLScalarType> = {
  ObjectId: objectIdScalar,
  UUID: uuidScalar,
  Long: longScalar,
  Decimal: decimalScalar,
  Binary: binaryScalar,
  Mixed: mixedScalar,
  Dictionary: dictionaryScalar,
};

function show(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
