/**
 * The private contract between lib/ and the addon: the per-range figures'
 * list on both sides, the page hash switch and the hash the dispatcher
 * picks, and what the shipped addon exports (no bench-only entry points).
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';

import nodeGypBuild from 'node-gyp-build';

import {
  PAGE_STAT,
  PAGE_STAT_COUNT,
  PAGE_STAT_FIELDS,
  hashFor,
  pageStatMismatch,
  type NativeBinding,
  type NativeEstimateResult,
} from '../lib/binding.js';
import { cpuHasAvx2 } from './helpers/hash.js';
import { ROOT } from './helpers/ksm.js';

const addon = nodeGypBuild(ROOT) as NativeBinding & Record<string, unknown>;

describe('per-range figures', () => {
  it('are the same list, in the same order, in the addon and in lib/binding.ts', () => {
    expect([...addon.pageStatFields]).toEqual([...PAGE_STAT_FIELDS]);
    expect(PAGE_STAT_COUNT).toBe(addon.pageStatFields.length);
    PAGE_STAT_FIELDS.forEach((name, i) => expect(PAGE_STAT[name]).toBe(i));
  });

  it('an addon whose list differs is told apart, saying where', () => {
    expect(pageStatMismatch(addon.pageStatFields)).toBeUndefined();
    const swapped = [...PAGE_STAT_FIELDS];
    [swapped[1], swapped[2]] = [swapped[2]!, swapped[1]!];
    expect(pageStatMismatch(swapped)).toBe('its estimate figure 1 is "filePages", not "swappedPages"');
    expect(pageStatMismatch(PAGE_STAT_FIELDS.slice(0, -1))).toBe('its estimate figure 12 is undefined, not "savedPages"');
    expect(pageStatMismatch([...PAGE_STAT_FIELDS, 'extraPages'])).toBe('its estimate figures are 14, not 13');
  });
});

describe('the shipped addon', () => {
  it('exports no bench-only entry points (they live in bench/native)', () => {
    for (const name of ['hashPages', 'readBandwidth', 'vmReadBandwidth']) expect(addon[name], name).toBeUndefined();
    expect(typeof addon.estimatePages).toBe('function');
  });
});

describe('the page hash', () => {
  it('NODE_KSM_HASH=scalar asks for the scalar hash; anything else for the dispatcher', () => {
    const saved = process.env.NODE_KSM_HASH;
    try {
      for (const [value, expected] of [['scalar', 'scalar'], [undefined, 'auto'], ['avx2', 'auto'], ['', 'auto']] as const) {
        if (value === undefined) delete process.env.NODE_KSM_HASH;
        else process.env.NODE_KSM_HASH = value;
        expect(hashFor(), String(value)).toBe(expected);
      }
    } finally {
      if (saved === undefined) delete process.env.NODE_KSM_HASH;
      else process.env.NODE_KSM_HASH = saved;
    }
  });

  // Eight pages of this process: 0-3 one pattern, 4-5 zero, 6-7 two others.
  function layout(): { ranges: BigUint64Array; keep: Buffer } {
    const page = addon.pageSize();
    const keep = addon.alloc(8 * page, [addon.constants.MADV_NOHUGEPAGE]);
    const pattern = (seed: string) => createHash('sha256').update(`node-ksm binding ${seed} ${Math.random()}`).digest();
    keep.fill(pattern('same'), 0, 4 * page);
    keep.fill(0, 4 * page, 6 * page);
    keep.fill(pattern('six'), 6 * page, 7 * page);
    keep.fill(pattern('seven'), 7 * page, 8 * page);
    const { address } = addon.viewRange(keep);
    return { ranges: BigUint64Array.of(address, address + BigInt(8 * page)), keep };
  }

  function run(ranges: BigUint64Array, hash?: 'auto' | 'scalar'): Promise<NativeEstimateResult> {
    const options = { intervalMs: 0, maxPageSharing: 256, expectedPages: 0, batchPages: 64, ...(hash ? { hash } : {}) };
    return addon.estimatePages([{ pid: process.pid, ranges, readable: Uint8Array.of(1) }], options).promise;
  }

  it('runs AVX2 exactly where /proc/cpuinfo lists it, scalar when asked, and both count the same', async () => {
    const { ranges, keep } = layout();
    const avx2 = cpuHasAvx2();
    const auto = await run(ranges, 'auto');
    const byDefault = await run(ranges);
    const scalar = await run(ranges, 'scalar');
    expect(auto.hashImplementation).toBe(avx2 ? 'avx2' : 'scalar');
    expect(byDefault.hashImplementation).toBe(auto.hashImplementation);
    expect(scalar.hashImplementation).toBe('scalar');
    if (!avx2) console.warn('this CPU has no AVX2 (/proc/cpuinfo): the dispatcher picked the scalar hash; the AVX2 hash is not tested here');
    for (const result of [auto, scalar]) {
      const stats = result.targets[0]!.stats;
      expect(stats.length).toBe(PAGE_STAT_COUNT);
      expect(stats[PAGE_STAT.candidatePages]).toBe(8);
      expect(stats[PAGE_STAT.zeroPages]).toBe(2);
      expect(stats[PAGE_STAT.duplicatePages]).toBe(4);
      expect(stats[PAGE_STAT.twinInVma]).toBe(4);
      expect(stats[PAGE_STAT.savedPages]).toBeCloseTo(3, 12);
      expect(result.classes).toBe(1);
    }
    expect(Array.from(scalar.targets[0]!.stats)).toEqual(Array.from(auto.targets[0]!.stats));
    expect(keep.length).toBe(8 * addon.pageSize());
  });

  it('refuses a hash it does not know', () => {
    const { ranges } = layout();
    expect(() => run(ranges, 'fast' as 'auto')).toThrow(RangeError);
    expect(() => run(ranges, 1 as unknown as 'auto')).toThrow(TypeError);
  });
});
