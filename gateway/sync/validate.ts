// Validates documents against their schema.graphql type (via the JSON Schema derived from it)
// and names the offending field in the error.
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { createRequire } from 'node:module';
import { documentJsonSchema, DELETED_FIELD, STAMPS_FIELD, type CollectionModel } from '../../protocol/model.ts';
import { wireDocumentProblem } from '../../protocol/bson-values.ts';

// ajv-formats is CommonJS with a default export that ESM sees wrapped; require() unwraps it.
const addFormats = createRequire(import.meta.url)('ajv-formats') as typeof import('ajv-formats').default;

export interface FieldViolation {
  field: string | null;
  message: string;
}

/** `ignore`: top-level fields whose violations are not reported (a user's hidden fields). */
export type DocumentValidator = (doc: Record<string, unknown>, ignore?: (field: string) => boolean) => FieldViolation | null;

export function createValidator(collection: CollectionModel): DocumentValidator {
  // Every error, so the first one on a field the caller may report can be found.
  const ajv = new Ajv({ allErrors: true, strict: true });
  addFormats(ajv, ['date-time']);
  const validate: ValidateFunction = ajv.compile(documentJsonSchema(collection));
  return (doc, ignore) => {
    const { [DELETED_FIELD]: _deleted, [STAMPS_FIELD]: _stamps, ...fields } = doc;
    if (validate(fields)) return wireDocumentProblem(collection, fields, ignore);
    const violations = (validate.errors ?? []).map((error) => describe(collection.typeName, error));
    return violations.find((v) => !(ignore && v.field !== null && ignore(v.field.split('.')[0]!))) ?? null;
  };
}

function describe(typeName: string, error: ErrorObject): FieldViolation {
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
  return { field, message: field ? `${typeName}.${field} ${what}` : `${typeName} ${what}` };
}
