// Hybrid logical clocks: stamps that follow wall-clock time but never go backwards on one device
// and order every pair of changes, with the device id as the deterministic tie-break. A stamp is
// a string that sorts in clock order: `<wall ms, base 36, 11 wide>:<counter, base 36, 4 wide>:<node>`.

export type Stamp = string;

const WALL_WIDTH = 11;
const COUNTER_WIDTH = 4;

export function formatStamp(wall: number, counter: number, node: string): Stamp {
  return `${Math.floor(wall).toString(36).padStart(WALL_WIDTH, '0')}:${counter.toString(36).padStart(COUNTER_WIDTH, '0')}:${node}`;
}

export function parseStamp(stamp: Stamp): { wall: number; counter: number; node: string } | null {
  const match = /^([0-9a-z]{11}):([0-9a-z]{4}):([A-Za-z0-9_-]{1,64})$/.exec(stamp);
  if (!match) return null;
  return { wall: parseInt(match[1]!, 36), counter: parseInt(match[2]!, 36), node: match[3]! };
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
  ) {}

  /** A stamp for a local change, later than every stamp this clock has issued or seen. */
  tick(): Stamp {
    const physical = this.now();
    if (physical > this.wall) {
      this.wall = physical;
      this.counter = 0;
    } else {
      this.counter++;
    }
    return formatStamp(this.wall, this.counter, this.node);
  }

  /** Moves the clock past a stamp received from elsewhere. */
  observe(stamp: Stamp): void {
    const seen = parseStamp(stamp);
    if (!seen) return;
    if (seen.wall > this.wall || (seen.wall === this.wall && seen.counter > this.counter)) {
      this.wall = seen.wall;
      this.counter = seen.counter;
    }
  }
}
