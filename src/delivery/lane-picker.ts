/** What the picker needs to know of a lane. */
export interface PickableLane {
  name: string;
  weight?: number;
  fallbackOnly?: boolean;
}

/**
 * Chooses the lane for each message: smooth weighted round robin over the primary lanes that are
 * up, fall-back lanes only when no primary is. A lane whose relay cannot be reached is left out
 * for a while. This only spreads load; who gets mail is decided by the ledger alone.
 */
export class LanePicker<Lane extends PickableLane> {
  private readonly current = new Map<string, number>();
  private readonly downUntil = new Map<string, number>();

  constructor(
    private readonly lanes: readonly Lane[],
    private readonly downForMs = 30_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** The next lane to use, skipping those in `tried`; undefined when none is left. */
  next(tried: ReadonlySet<string> = new Set()): Lane | undefined {
    const up = this.lanes.filter(
      (lane) => !tried.has(lane.name) && (this.downUntil.get(lane.name) ?? 0) <= this.now(),
    );
    const primaries = up.filter((lane) => !lane.fallbackOnly);
    const candidates = primaries.length > 0 ? primaries : up;
    if (candidates.length === 0) {
      // Every lane is down: try the one that has been down longest rather than stall.
      return this.lanes
        .filter((lane) => !tried.has(lane.name))
        .sort((a, b) => (this.downUntil.get(a.name) ?? 0) - (this.downUntil.get(b.name) ?? 0))[0];
    }
    let total = 0;
    let best: Lane | undefined;
    for (const lane of candidates) {
      const weight = Math.max(lane.weight ?? 1, 0);
      total += weight;
      const score = (this.current.get(lane.name) ?? 0) + weight;
      this.current.set(lane.name, score);
      if (!best || score > this.current.get(best.name)!) best = lane;
    }
    this.current.set(best!.name, this.current.get(best!.name)! - total);
    return best;
  }

  markDown(name: string): void {
    this.downUntil.set(name, this.now() + this.downForMs);
  }

  markUp(name: string): void {
    this.downUntil.delete(name);
  }
}
