/**
 * profit()'s rows (lib/report/profit/rows.ts): exact rows cut each VMA at
 * our labelled buffers, gaps between them rows of their own; estimated rows
 * keep the VMA whole and name every buffer inside.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import type { SmapsSummary } from '../lib/kernel/smaps.js';
import type { LabelledRange } from '../lib/merge/labels.js';
import { splitRowsOf, wholeRow } from '../lib/report/profit/rows.js';

const vma = (start: number, end: number): SmapsSummary => ({ start: BigInt(start), end: BigInt(end) }) as SmapsSummary;
const label = (start: number, end: number, name: string): LabelledRange => ({ start: BigInt(start), end: BigInt(end), label: name });
const plain = (rows: ReturnType<typeof splitRowsOf>): Array<[number, number, string[]]> => rows.map((r) => [Number(r.start), Number(r.end), r.labels]);

describe('profit rows', () => {
  it('cut each VMA at the labelled ranges inside, in order, gaps rows of their own', () => {
    const vmas = [vma(0x1000, 0x9000), vma(0x9000, 0xb000), vma(0xc000, 0xe000)];
    const labels = [label(0x2000, 0x3000, 'a'), label(0x5000, 0x6000, 'b'), label(0x8000, 0xa000, 'c')];
    expect(plain(splitRowsOf(vmas, labels))).toEqual([
      [0x1000, 0x2000, []], [0x2000, 0x3000, ['a']], [0x3000, 0x5000, []], [0x5000, 0x6000, ['b']],
      [0x6000, 0x8000, []], [0x8000, 0x9000, ['c']],
      // The range straddling two VMAs is cut at their boundary.
      [0x9000, 0xa000, ['c']], [0xa000, 0xb000, []],
      [0xc000, 0xe000, []],
    ]);
    expect(splitRowsOf(vmas, labels).map((r) => r.vma)).toEqual([0, 0, 0, 0, 0, 0, 1, 1, 2].map((i) => vmas[i]));
    expect(wholeRow(vmas[0]!, labels).labels).toEqual(['a', 'b', 'c']);
    expect(splitRowsOf([], labels)).toEqual([]);
  });

  it('tile every VMA exactly, each row inside one VMA and under at most one label (property)', () => {
    const page = 0x1000;
    fc.assert(fc.property(
      fc.array(fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 1, max: 6 })), { maxLength: 8 }),
      fc.array(fc.tuple(fc.integer({ min: 0, max: 60 }), fc.integer({ min: 1, max: 8 })), { maxLength: 6 }),
      (gapsAndSizes, spans) => {
        let at = page;
        const vmas = gapsAndSizes.map(([gap, size]) => {
          at += gap * page;
          const made = vma(at, at + size * page);
          at += size * page;
          return made;
        });
        // Non-overlapping labelled ranges, sorted by start, as our registry keeps them.
        const labels: LabelledRange[] = [];
        let from = 0;
        spans.forEach(([gap, size], i) => {
          from += gap * page;
          labels.push(label(page + from, page + from + size * page, `l${i}`));
          from += size * page;
        });
        const rows = splitRowsOf(vmas, labels);
        for (const v of vmas) {
          const mine = rows.filter((r) => r.vma === v);
          expect(mine[0]!.start).toBe(v.start);
          expect(mine.at(-1)!.end).toBe(v.end);
          mine.forEach((r, k) => {
            expect(r.start < r.end).toBe(true);
            if (k > 0) expect(r.start).toBe(mine[k - 1]!.end);
            const under = labels.filter((l) => l.start < r.end && r.start < l.end);
            expect(r.labels).toEqual(under.map((l) => l.label));
            expect(under.length).toBeLessThanOrEqual(1);
            if (under.length === 1) expect(under[0]!.start <= r.start && r.end <= under[0]!.end).toBe(true);
          });
        }
        expect(rows.length).toBeGreaterThanOrEqual(vmas.length);
      },
    ), { numRuns: 500 });
  });
});
