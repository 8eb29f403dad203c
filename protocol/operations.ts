// The GraphQL text of the sync operations for one collection. The gateway serves exactly these
// fields (gateway/graphql/schema.ts); clients send these documents.
import { operationSuffix, type CollectionModel } from './model.ts';

export interface SyncOperations {
  pull: string;
  push: string;
  stream: string;
  bootstrap: string;
  /** Root field names, to read results. */
  fields: { pull: string; push: string; stream: string; bootstrap: string };
}

export function syncOperations(collection: CollectionModel): SyncOperations {
  const s = operationSuffix(collection);
  const fields = { pull: `pull${s}`, push: `push${s}`, stream: `stream${s}`, bootstrap: `bootstrap${s}` };
  return {
    fields,
    pull: `query Pull${s}($checkpoint: SyncCheckpointInput, $limit: Int!, $view: [JSONObject!], $stamps: Boolean) {
  ${fields.pull}(checkpoint: $checkpoint, limit: $limit, view: $view, stamps: $stamps) { documents checkpoint { seq epoch } hasMore }
}`,
    bootstrap: `query Bootstrap${s}($query: JSONObject!, $exclude: [JSONObject!], $after: ID, $snapshot: Float, $limit: Int!, $stamps: Boolean) {
  ${fields.bootstrap}(query: $query, exclude: $exclude, after: $after, snapshot: $snapshot, limit: $limit, stamps: $stamps) { documents snapshot next estimatedTotal }
}`,
    push: `mutation Push${s}($rows: [SyncPushRow!]!, $view: [JSONObject!]) {
  ${fields.push}(rows: $rows, view: $view) { conflicts rejected { id code field message realmCode } }
}`,
    stream: `subscription Stream${s}($view: [JSONObject!], $stamps: Boolean) {
  ${fields.stream}(view: $view, stamps: $stamps) { documents checkpoint { seq epoch } resync }
}`,
  };
}
