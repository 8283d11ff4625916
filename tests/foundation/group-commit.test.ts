import { describe, expect, it } from 'vitest';
import { GroupCommit } from '../../src/db/group-commit.ts';

interface Order {
  reader: string;
  n: number;
}

/** A statement that answers each order with its number doubled, and remembers its batches. */
function doubling(options: { maxBatch?: number; inFlight?: number; failOn?: number } = {}) {
  const batches: number[][] = [];
  let release: (() => void) | undefined;
  let held = Promise.resolve();
  const group = new GroupCommit<Order, number>(
    async (orders) => {
      batches.push(orders.map((order) => order.n));
      await held;
      if (orders.some((order) => order.n === options.failOn)) {
        throw new Error(`order ${options.failOn} is refused`);
      }
      return orders.map((order) => order.n * 2);
    },
    {
      maxBatch: options.maxBatch ?? 100,
      inFlight: options.inFlight ?? 1,
      keyOf: (order) => order.reader,
    },
  );
  return {
    group,
    batches,
    hold() {
      held = new Promise((resolve) => (release = resolve));
    },
    release() {
      release?.();
    },
  };
}

describe('group commit', () => {
  it('runs a caller alone at once and takes everyone who arrived meanwhile together', async () => {
    const t = doubling();
    t.hold();
    const first = t.group.submit({ reader: 'a', n: 1 });
    const later = [2, 3, 4, 5].map((n) => t.group.submit({ reader: `r${n}`, n }));
    expect(t.batches).toEqual([[1]]);
    t.release();
    expect(await first).toBe(2);
    expect(await Promise.all(later)).toEqual([4, 6, 8, 10]);
    expect(t.batches).toEqual([[1], [2, 3, 4, 5]]);
  });

  it('sends the next statement before it answers the callers of the last one', async () => {
    const t = doubling();
    t.hold();
    const batchesSeenByFirst = t.group.submit({ reader: 'a', n: 1 }).then(() => t.batches.length);
    const second = t.group.submit({ reader: 'b', n: 2 });
    t.release();
    expect(await batchesSeenByFirst).toBe(2);
    expect(await second).toBe(4);
  });

  it('never puts two orders of one reader in the same statement', async () => {
    const t = doubling();
    t.hold();
    const first = t.group.submit({ reader: 'x', n: 0 });
    const later = [1, 2, 3, 4].map((n) => t.group.submit({ reader: n % 2 ? 'ann' : 'bob', n }));
    t.release();
    await first;
    expect(await Promise.all(later)).toEqual([2, 4, 6, 8]);
    expect(t.batches).toEqual([[0], [1, 2], [3, 4]]);
  });

  it('keeps to the largest batch and to the statements allowed at once', async () => {
    const t = doubling({ maxBatch: 2, inFlight: 2 });
    t.hold();
    const all = [1, 2, 3, 4, 5, 6].map((n) => t.group.submit({ reader: `r${n}`, n }));
    expect(t.batches).toEqual([[1], [2]]);
    t.release();
    expect(await Promise.all(all)).toEqual([2, 4, 6, 8, 10, 12]);
    expect(t.batches.slice(2)).toEqual([
      [3, 4],
      [5, 6],
    ]);
  });

  it('fails only the caller whose order the statement refused', async () => {
    const t = doubling({ failOn: 3 });
    t.hold();
    const first = t.group.submit({ reader: 'a', n: 1 });
    const later = [2, 3, 4].map((n) => t.group.submit({ reader: `r${n}`, n }));
    t.release();
    await first;
    const outcomes = await Promise.allSettled(later);
    expect(outcomes.map((outcome) => outcome.status)).toEqual([
      'fulfilled',
      'rejected',
      'fulfilled',
    ]);
    expect(outcomes[0]).toMatchObject({ value: 4 });
    expect(outcomes[1]).toMatchObject({ reason: new Error('order 3 is refused') });
    expect(outcomes[2]).toMatchObject({ value: 8 });
    expect(t.batches).toEqual([[1], [2, 3, 4], [2], [3], [4]]);
  });
});
