// What a session's client knows of the data model: the SDK sends its canonical model as
// `schema` in graphql-ws connection_init (PROTOCOL.md, "Schema versions"). A client whose model
// breaks against the gateway's is refused (close 4426); a compatible older one gets permissions
// narrowed to the fields it knows (rules/permissions.ts narrowToKnownFields). A client that sends
// no `schema` (RxDB's stock plugin, plain GraphQL) is taken to know the current schema.
import { breakingOnly, diffModels, knownFieldsOf, parseCanonicalModel, SchemaFormError, type CanonicalModel, type SchemaDifference } from '../../protocol/schema-evolution.ts';
import type { CollectionModel } from '../../protocol/model.ts';
import { narrowToKnownFields, type CollectionPermissions } from '../rules/permissions.ts';

/** A session's view of the model: the fields it knows per collection, and its narrowed permissions. */
export class SessionSchema {
  private readonly narrowed = new WeakMap<CollectionPermissions, CollectionPermissions>();

  constructor(private readonly known: Map<string, ReadonlySet<string>>) {}

  /** `base` narrowed to the fields this client knows; the same object for the same `base`. */
  permissions(base: CollectionPermissions, model: CollectionModel): CollectionPermissions {
    let narrowed = this.narrowed.get(base);
    if (!narrowed) {
      narrowed = narrowToKnownFields(base, model, this.known.get(model.name) ?? new Set());
      this.narrowed.set(base, narrowed);
    }
    return narrowed;
  }
}

export type ClientSchemaCheck =
  /** session null: the client knows the current schema (or sent none). */
  | { ok: true; session: SessionSchema | null; differences: SchemaDifference[] }
  | { ok: false; malformed: true; reason: string }
  | { ok: false; malformed: false; breaking: SchemaDifference[]; reason: string };

/** Checks the `schema` a client sent (absent: it knows the current schema). */
export function checkClientSchema(server: CanonicalModel, sent: unknown): ClientSchemaCheck {
  if (sent === undefined) return { ok: true, session: null, differences: [] };
  let client: CanonicalModel;
  try {
    client = parseCanonicalModel(sent);
  } catch (error) {
    if (error instanceof SchemaFormError) return { ok: false, malformed: true, reason: `bad schema: ${error.message}` };
    throw error;
  }
  // From the client's model to the server's: what the server has that the client lacks is
  // additive for it; what the client has that the server lacks (or holds otherwise) breaks.
  const differences = diffModels(client, server);
  const breaking = breakingOnly(differences);
  if (breaking.length > 0) return { ok: false, malformed: false, breaking, reason: `schema outdated: ${breaking.map((d) => d.message).join('; ')}` };
  if (differences.length === 0) return { ok: true, session: null, differences };
  return { ok: true, session: new SessionSchema(knownFieldsOf(client)), differences };
}
