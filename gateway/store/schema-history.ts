// The schemas the gateway has served, in MongoDB (`_tributary_schema`): one document per change,
// numbered in order. At start the gateway compares its schema.graphql with the last recorded
// one (protocol/schema-evolution.ts): the same fingerprint records nothing, additive changes are
// recorded (and logged), breaking ones are refused naming every difference unless the operator
// confirms (TRIBUTARY_ACCEPT_BREAKING_SCHEMA=true). Several gateways may start at once: the
// order number is the _id, so two instances recording the same next schema cannot both succeed;
// the loser reads the winner's entry and, if it is its own schema, has nothing left to do.
import type { Collection, Db } from 'mongodb';
import { isDuplicateKey } from './write-errors.ts';
import type { Logger } from 'pino';
import { breakingOnly, diffModels, fingerprint, type CanonicalModel, type SchemaDifference } from '../../protocol/schema-evolution.ts';

export const SCHEMA_COLLECTION = '_tributary_schema';

export interface SchemaRecord {
  /** Order number: 1 for the first schema recorded, then one more per change. */
  _id: number;
  fingerprint: string;
  /** The canonical form as JSON text (field names stay out of BSON keys). */
  canonical: string;
  /** The order number of the last recorded schema that was a breaking change (0: none yet). */
  lastBreaking: number;
  /** Every difference from the schema before it. */
  differences: SchemaDifference[];
  recordedAt: Date;
}

export class BreakingSchemaError extends Error {
  override name = 'BreakingSchemaError';
  constructor(readonly differences: SchemaDifference[]) {
    super(
      `schema.graphql has ${differences.length} breaking change${differences.length === 1 ? '' : 's'} against the schema recorded in MongoDB ` +
        `(${SCHEMA_COLLECTION}); older clients and stored documents may no longer fit:\n` +
        differences.map((d) => `  - ${d.message}`).join('\n') +
        '\nSet TRIBUTARY_ACCEPT_BREAKING_SCHEMA=true to start anyway (clients on the older schema are then refused with close code 4426).',
    );
  }
}

export interface RecordedSchema {
  record: SchemaRecord;
  /** What changed against the schema recorded before (empty when it was already recorded). */
  differences: SchemaDifference[];
}

/**
 * Records `canonical` as the schema served now, unless it already is the last one. Throws
 * BreakingSchemaError for a breaking change unless `acceptBreaking`.
 */
export async function recordSchema(db: Db, canonical: CanonicalModel, options: { acceptBreaking: boolean; log?: Logger }): Promise<RecordedSchema> {
  const history: Collection<SchemaRecord> = db.collection<SchemaRecord>(SCHEMA_COLLECTION);
  const print = fingerprint(canonical);
  for (let attempt = 0; attempt < 20; attempt++) {
    const [last] = await history.find({}).sort({ _id: -1 }).limit(1).toArray();
    if (last && last.fingerprint === print) return { record: last, differences: [] };
    const differences = last ? diffModels(JSON.parse(last.canonical) as CanonicalModel, canonical) : [];
    const breaking = breakingOnly(differences);
    if (breaking.length > 0 && !options.acceptBreaking) throw new BreakingSchemaError(breaking);
    const order = (last?._id ?? 0) + 1;
    const record: SchemaRecord = {
      _id: order,
      fingerprint: print,
      canonical: JSON.stringify(canonical),
      lastBreaking: breaking.length > 0 ? order : (last?.lastBreaking ?? 0),
      differences,
      recordedAt: new Date(),
    };
    try {
      await history.insertOne(record);
    } catch (error) {
      // Another gateway recorded this order number first: look again at what it recorded.
      if (isDuplicateKey(error)) continue;
      throw error;
    }
    if (!last) options.log?.info({ fingerprint: print }, 'schema recorded');
    else if (breaking.length > 0) options.log?.warn({ fingerprint: print, order, breaking: breaking.map((d) => d.message) }, 'breaking schema change accepted (TRIBUTARY_ACCEPT_BREAKING_SCHEMA)');
    else options.log?.info({ fingerprint: print, order, changes: differences.map((d) => d.message) }, 'additive schema change recorded');
    return { record, differences };
  }
  throw new Error(`could not record the schema in ${SCHEMA_COLLECTION}: other gateways kept recording other schemas`);
}
