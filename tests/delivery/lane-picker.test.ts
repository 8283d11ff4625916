import { describe, expect, it } from 'vitest';
import { LanePicker } from '../../src/delivery/lane-picker.ts';

const count = (picks: (string | undefined)[]) =>
  picks.reduce<Record<string, number>>(
    (acc, name) => ({ ...acc, [name!]: (acc[name!] ?? 0) + 1 }),
    {},
  );

describe('lane picker', () => {
  it('spreads messages by weight, smoothly', () => {
    const picker = new LanePicker([
      { name: 'a', weight: 3 },
      { name: 'b', weight: 1 },
    ]);
    const picks = Array.from({ length: 8 }, () => picker.next()?.name);
    expect(count(picks)).toEqual({ a: 6, b: 2 });
    expect(picks.slice(0, 4).sort()).toEqual(['a', 'a', 'a', 'b']);
  });

  it('uses a fall-back lane only while every primary is down, and retries a lane later', () => {
    let now = 0;
    const picker = new LanePicker(
      [{ name: 'primary' }, { name: 'backup', fallbackOnly: true }],
      1000,
      () => now,
    );
    expect(picker.next()?.name).toBe('primary');
    picker.markDown('primary');
    expect(picker.next()?.name).toBe('backup');
    now = 1001;
    expect(picker.next()?.name).toBe('primary');
  });

  it('offers the other lanes for a message whose lane failed, then nothing', () => {
    const picker = new LanePicker([{ name: 'a' }, { name: 'b' }]);
    const first = picker.next()!;
    const second = picker.next(new Set([first.name]))!;
    expect(second.name).not.toBe(first.name);
    expect(picker.next(new Set(['a', 'b']))).toBeUndefined();
  });

  it('still offers a lane when all are down, the one down longest first', () => {
    let now = 0;
    const picker = new LanePicker([{ name: 'a' }, { name: 'b' }], 1000, () => now);
    picker.markDown('a');
    now = 10;
    picker.markDown('b');
    expect(picker.next()?.name).toBe('a');
  });
});
