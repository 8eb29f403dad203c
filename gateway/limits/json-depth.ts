// How deeply a JSON value nests, measured without recursion: a value nested 50,000 levels deep
// must be refused, not overflow the stack of whatever measures it (or later stores it).

/**
 * The deepest nesting a JSONObject value may have (the object itself is level 1). Documents,
 * views and stamps nest a few levels; BSON and JSON.stringify recurse, so depth must be bounded.
 */
export const MAX_JSON_DEPTH = 32;

/** Whether `value` nests objects or arrays more than `max` levels deep; stops at the first path too deep. */
export function nestsDeeperThan(value: unknown, max: number): boolean {
  const stack: Array<[object, number]> = typeof value === 'object' && value !== null ? [[value, 1]] : [];
  while (stack.length > 0) {
    const [next, depth] = stack.pop()!;
    if (depth > max) return true;
    for (const child of Array.isArray(next) ? next : Object.values(next)) {
      if (typeof child === 'object' && child !== null) stack.push([child, depth + 1]);
    }
  }
  return false;
}
