// Hybrid logical clocks: stamps that follow wall-clock time but never go backwards on one device
// and order every pair of changes, with the device id as the deterministic tie-break. A stamp is
// a string that sorts in clock order: `<wall ms, base 36, 11 wide>:<counter, base 36, 4 wide>:<node>`.
//
// Stamps arrive from users, so a clock must stay well-formed whatever it observes: it never
// adopts a wall far in the future, a counter at its maximum moves the wall on by 1 ms instead of
// growing a digit, and formatStamp refuses anything that would not parse back.
import { isUnsafeKey } from './paths.ts';

export type Stamp = string;

const WALL_WIDTH = 11;
const COUNTER_WIDTH = 4;
/** The largest wall (ms) a stamp holds: 11 base-36 digits hold more, but not as an exact number. */
export const MAX_WALL = Number.MAX_SAFE_INTEGER;
/** The largest counter a stamp holds (4 base-36 digits). */
export const MAX_COUNTER = 36 ** COUNTER_WIDTH - 1;
/**
 * How far ahead of its own time a clock follows a stamp it observes, by default. Further ahead is
 * taken as this far: a stamp from a broken or hostile clock cannot drag this one into the future.
 * (The gateway passes its smaller allowed skew.)
 */
export const MAX_OBSERVED_AHEAD_MS = 24 * 60 * 60 * 1000;

const NODE = /^[A-Za-z0-9_-]{1,64}$/;
const STAMP = /^([0-9a-z]{11}):([0-9a-z]{4}):([A-Za-z0-9_-]{1,64})$/;

/** Whether `node` can name a device: in a stamp, and as a key of counter and set states. */
export function isNode(node: string): boolean {
  return NODE.test(node) && !isUnsafeKey(node);
}

/** Throws RangeError rather than produce a stamp that would not parse (or sort) back. */
export function formatStamp(wall: number, counter: number, node: string): Stamp {
  const w = Math.floor(wall);
  if (!Number.isSafeInteger(w) || w < 0 || w > MAX_WALL) throw new RangeError(`stamp wall ${wall} is out of range`);
  if (!Number.isSafeInteger(counter) || counter < 0 || counter > MAX_COUNTER) throw new RangeError(`stamp counter ${counter} is out of range`);
  if (!isNode(node)) throw new RangeError(`"${node}" cannot name a device`);
  return `${w.toString(36).padStart(WALL_WIDTH, '0')}:${counter.toString(36).padStart(COUNTER_WIDTH, '0')}:${node}`;
}

export function parseStamp(stamp: Stamp): { wall: number; counter: number; node: string } | null {
  const match = typeof stamp === 'string' ? STAMP.exec(stamp) : null;
  if (!match || isUnsafeKey(match[3]!)) return null;
  const wall = parseInt(match[1]!, 36);
  if (wall > MAX_WALL) return null;
  return { wall, counter: parseInt(match[2]!, 36), node: match[3]! };
}

/** The later of two stamps (a missing stamp is earlier than any). */
export function laterStamp(a: Stamp | undefined, b: Stamp | undefined): Stamp | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return a > b ? a : b;
}

/** One device's clock. */
export class HybridLogicalClock {
  private wall = 0;
  private counter = 0;

  constructor(
    readonly node: string,
    private readonly now: () => number = Date.now,
    private readonly maxObservedAheadMs: number = MAX_OBSERVED_AHEAD_MS,
  ) {
    if (!isNode(node)) throw new RangeError(`"${node}" cannot name a device`);
  }

  /** A stamp for a local change, later than every stamp this clock has issued or seen (within the bound). */
  tick(): Stamp {
    const physical = Math.floor(this.now());
    if (physical > this.wall) {
      this.wall = physical;
      this.counter = 0;
    } else if (this.counter >= MAX_COUNTER) {
      // One more would need a fifth digit: the next millisecond is later than every such stamp.
      this.wall++;
      this.counter = 0;
    } else {
      this.counter++;
    }
    return formatStamp(this.wall, this.counter, this.node);
  }

  /**
   * Moves the clock past a stamp received from elsewhere. A stamp more than `maxAheadMs` ahead
   * of this clock's time counts as that far ahead, no further.
   */
  observe(stamp: Stamp, maxAheadMs: number = this.maxObservedAheadMs): void {
    const seen = parseStamp(stamp);
    if (!seen) return;
    const bound = Math.min(Math.floor(this.now()) + Math.max(maxAheadMs, 0), MAX_WALL);
    const [wall, counter] = seen.wall > bound ? [bound, 0] : [seen.wall, seen.counter];
    if (wall > this.wall || (wall === this.wall && counter > this.counter)) {
      this.wall = wall;
      this.counter = counter;
    }
  }
}
