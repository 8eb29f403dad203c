// A request's document budget: how many documents it may ask for in total. Every selected field
// with an Int `limit` argument (pulls, bootstraps, plain lists) counts its limit (the variable's
// value, or the argument's default), once per selection: 1,000 aliases of `tasks(limit: 1000)`
// ask for a million documents, though each alias alone is within the list limit.
// Checked before execution with the request's variables; graphql-armor bounds the shape
// (tokens, depth, aliases) before that.
import {
  getNamedType,
  getOperationAST,
  isInterfaceType,
  isObjectType,
  Kind,
  valueFromAST,
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLField,
  type GraphQLNamedType,
  type GraphQLSchema,
  type SelectionSetNode,
} from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { limitError } from './errors.ts';

/** The sum of the `limit` arguments of every list field the operation selects. */
export function documentsRequested(schema: GraphQLSchema, document: DocumentNode, operationName?: string | null, variables?: Record<string, unknown> | null): number {
  const operation = getOperationAST(document, operationName);
  if (!operation) return 0; // execution refuses it anyway
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  const variableDefaults = new Map(operation.variableDefinitions?.map((v) => [v.variable.name.value, v.defaultValue]) ?? []);

  const limitOf = (field: GraphQLField<unknown, unknown>, node: FieldNode): number => {
    const argument = field.args.find((a) => a.name === 'limit');
    if (!argument) return 0;
    const given = node.arguments?.find((a) => a.name.value === 'limit')?.value;
    let value: unknown = argument.defaultValue;
    if (given?.kind === Kind.VARIABLE) {
      const name = given.name.value;
      const fallback = variableDefaults.get(name);
      if (variables && name in variables) value = variables[name];
      else if (fallback) value = valueFromAST(fallback, argument.type);
    } else if (given) {
      value = valueFromAST(given, argument.type);
    }
    // Anything but a positive number is refused by the field itself.
    return typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : 0;
  };

  // A fragment spread many times counts each time; its own cost is worked out once.
  const fragmentCosts = new Map<string, number>();
  const fragmentCost = (name: string): number => {
    const known = fragmentCosts.get(name);
    if (known !== undefined) return known;
    fragmentCosts.set(name, 0); // a cycle (refused by validation) counts nothing
    const fragment = fragments.get(name);
    const cost = fragment ? selectionCost(fragment.selectionSet, schema.getType(fragment.typeCondition.name.value)) : 0;
    fragmentCosts.set(name, cost);
    return cost;
  };
  const selectionCost = (selectionSet: SelectionSetNode, parent: GraphQLNamedType | null | undefined): number => {
    let total = 0;
    for (const selection of selectionSet.selections) {
      if (selection.kind === Kind.FIELD) {
        const field = isObjectType(parent) || isInterfaceType(parent) ? parent.getFields()[selection.name.value] : undefined;
        if (!field) continue;
        total += limitOf(field, selection);
        if (selection.selectionSet) total += selectionCost(selection.selectionSet, getNamedType(field.type));
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        total += selectionCost(selection.selectionSet, selection.typeCondition ? schema.getType(selection.typeCondition.name.value) : parent);
      } else {
        total += fragmentCost(selection.name.value);
      }
    }
    return total;
  };
  return selectionCost(operation.selectionSet, schema.getRootType(operation.operation));
}

/** Refuses, before it runs, an operation that asks for more than `maxDocuments` documents in total. */
export function documentBudgetPlugin(maxDocuments: number): Plugin {
  const refusal = (args: { schema: GraphQLSchema; document: DocumentNode; operationName?: string | null; variableValues?: Record<string, unknown> | null }) => {
    const requested = documentsRequested(args.schema, args.document, args.operationName, args.variableValues);
    return requested > maxDocuments
      ? limitError('TOO_COMPLEX', `the request asks for up to ${requested} documents (the sum of its list fields' limits); at most ${maxDocuments} are allowed`)
      : null;
  };
  return {
    onExecute: ({ args, setResultAndStopExecution }) => {
      const error = refusal(args);
      if (error) setResultAndStopExecution({ errors: [error] });
    },
    onSubscribe: ({ args, setResultAndStopExecution }) => {
      const error = refusal(args);
      if (error) setResultAndStopExecution({ errors: [error] });
    },
  };
}
