// The GraphQL text of the sync operations for one collection. The gateway serves exactly these
// fields (gateway/graphql/schema.ts); clients send these documents.
import { operationSuffix, type CollectionModel } from './model.ts';

export interface SyncOperations {
  pull: string;
  push: string;
  stream: string;
  /** Root field names, to read results. */
  fields: { pull: string; push: string; stream: string };
}

export function syncOperations(collection: CollectionModel): SyncOperations {
  const s = operationSuffix(collection);
  const fields = { pull: `pull${s}`, push: `push${s}`, stream: `stream${s}` };
  return {
    fields,
    pull: `query Pull${s}($checkpoint: SyncCheckpointInput, $limit: Int!) {
  ${fields.pull}(checkpoint: $checkpoint, limit: $limit) { documents checkpoint { seq } }
}`,
    push: `mutation Push${s}($rows: [SyncPushRow!]!) {
  ${fields.push}(rows: $rows) { conflicts rejected { id code field message } }
}`,
    stream: `subscription Stream${s} {
  ${fields.stream} { documents checkpoint { seq } resync }
}`,
  };
}
