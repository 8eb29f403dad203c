// MongoDB's answer to an insert of an `_id` (or unique key) already taken: the one atomic
// primitive every supported store has (FerretDB v1 included), which locks, leases, schema
// records and optimistic inserts are built on.
import { MongoBulkWriteError, MongoServerError } from 'mongodb';

const DUPLICATE_KEY = 11000;

/** Whether a write failed only because its key was taken. (Number: with promoteValues off, a code may come as an Int32.) */
export function isDuplicateKey(error: unknown): boolean {
  return error instanceof MongoServerError && Number(error.code) === DUPLICATE_KEY;
}

/**
 * The indexes of the operations of an unordered bulk write that failed because their key was
 * taken, or null when it failed otherwise (then the caller rethrows).
 */
export function duplicateKeyIndexes(error: unknown): Set<number> | null {
  if (!(error instanceof MongoBulkWriteError) || error.writeErrors === undefined) return null;
  const writeErrors = Array.isArray(error.writeErrors) ? error.writeErrors : [error.writeErrors];
  if (writeErrors.some((e) => Number(e.code) !== DUPLICATE_KEY)) return null;
  return new Set(writeErrors.map((e) => e.index));
}
