// Validates documents against their schema.graphql type (via the JSON Schema derived from it)
// and names the offending field in the error.
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { createRequire } from 'node:module';
import { documentJsonSchema, DELETED_FIELD, STAMPS_FIELD, type CollectionModel } from '../../protocol/model.ts';

// ajv-formats is CommonJS with a default export that ESM sees wrapped; require() unwraps it.
const addFormats = createRequire(import.meta.url)('ajv-formats') as typeof import('ajv-formats').default;

export interface FieldViolation {
  field: string | null;
  message: string;
  /** The field is missing (rather than wrong). */
  missing?: boolean;
}

export type DocumentValidator = (doc: Record<string, unknown>) => FieldViolation | null;

export function createValidator(collection: CollectionModel): DocumentValidator {
  const ajv = new Ajv({ allErrors: false, strict: true });
  addFormats(ajv, ['date-time']);
  const validate: ValidateFunction = ajv.compile(documentJsonSchema(collection));
  return (doc) => {
    const { [DELETED_FIELD]: _deleted, [STAMPS_FIELD]: _stamps, ...fields } = doc;
    if (validate(fields)) return null;
    return describe(collection.typeName, validate.errors?.[0]);
  };
}

function describe(typeName: string, error: ErrorObject | undefined): FieldViolation {
  if (!error) return { field: null, message: `document does not match type ${typeName}` };
  const path = error.instancePath.split('/').filter(Boolean);
  if (error.keyword === 'required') path.push(String(error.params.missingProperty));
  if (error.keyword === 'additionalProperties') path.push(String(error.params.additionalProperty));
  const field = path.length > 0 ? path.join('.') : null;
  const what =
    error.keyword === 'required'
      ? 'is required'
      : error.keyword === 'additionalProperties'
        ? `is not a field of ${typeName}`
        : error.keyword === 'enum'
          ? `must be one of ${(error.params.allowedValues as unknown[]).filter((v) => v !== null).join(', ')}`
          : (error.message ?? 'is invalid');
  return { field, message: field ? `${typeName}.${field} ${what}` : `${typeName} ${what}`, missing: error.keyword === 'required' };
}
