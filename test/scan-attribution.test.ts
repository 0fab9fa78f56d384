/**
 * Exact attribution made beside the smaps scan (native/attribution.h
 * ScanAttribution, readProcFile's `attribute`), on two processes whose
 * mergeable memory KSM merged across 48 mappings of 2 to 5 pages: the VMAs attributed
 * are the scan's with KSM pages, their figures are pageAttribution()'s of
 * the same ranges and the raw pagemap + kpageflags read's, and profit()
 * built on it gives each row what the raw read gives, rows cut at a
 * published label (read after the scan) among them.
 */
import { fork, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it, type TestContext } from 'vitest';

import { bindingState, type NativeBinding, type NativeSmapsScan } from '../lib/binding.js';
import { profit } from '../lib/index.js';
import { startSmapsRead } from '../lib/kernel/files.js';
import { labelDirs } from '../lib/kernel/label-file.js';
import { NATIVE_SMAPS_FIELDS } from '../lib/kernel/smaps-native.js';
import { FIXTURES, labelFileText, needs, rawKsmPages, rawStartTimeTicks, rawVmas, requireKsm } from './helpers/ksm.js';

const state = bindingState();
const native = state.loaded ? state.binding : (undefined as unknown as NativeBinding);
const PAGE = state.loaded ? native.pageSize() : 4096;
const VMAS = 48;
const KSM_COLUMN = NATIVE_SMAPS_FIELDS.indexOf('ksm');

interface Spread {
  child: ChildProcess;
  pid: number;
  vmas: Array<[bigint, bigint]>;
}

function startSpread(): Promise<Spread> {
  const child = fork(path.join(FIXTURES, 'spread-holder.cjs'), [JSON.stringify({ vmas: VMAS })], {
    execArgv: [],
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    child.once('message', (ready: { pid: number; vmas: Array<[bigint, bigint]> }) => resolve({ child, ...ready }));
    child.once('exit', (code) => reject(new Error(`spread-holder exited (${code})`)));
  });
}

let pair: Promise<Spread[]> | undefined;

/** Two spread holders, every page of the first's VMAs merged (read raw). */
function mergedPair(ctx: TestContext): Promise<Spread[]> {
  requireKsm(ctx);
  needs(ctx, process.geteuid?.() === 0, 'root, for pagemap frames and /proc/kpageflags');
  pair ??= (async () => {
    const spreads = [await startSpread(), await startSpread()];
    const deadline = Date.now() + 120_000;
    while (!spreads[0]!.vmas.every(([start, end]) => rawKsmPages(spreads[0]!.pid, start, end) === Number((end - start) / BigInt(PAGE)))) {
      if (Date.now() > deadline) throw new Error('the spread holders did not merge in 120 s');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return spreads;
  })();
  return pair;
}

afterAll(async () => {
  const spreads = await pair?.catch(() => []);
  for (const spread of spreads ?? []) spread.child.kill('SIGKILL');
});

async function scanOf(pid: number, attribute: 'scan' | 'linear'): Promise<NativeSmapsScan> {
  const read = await startSmapsRead(`/proc/${pid}/smaps`, NATIVE_SMAPS_FIELDS, { attribute }).promise;
  expect(Buffer.isBuffer(read)).toBe(false);
  return read as NativeSmapsScan;
}

/** The scan's VMAs (indexes) whose KSM: figure is above 0. */
function withKsm(scan: NativeSmapsScan): number[] {
  const out: number[] = [];
  const count = scan.addresses.length / 3;
  for (let v = 0; v < count; v++) if (scan.figures[v * NATIVE_SMAPS_FIELDS.length + KSM_COLUMN]! > 0) out.push(v);
  return out;
}

/** The VMAs (read raw) that hold the holder's mappings, each once: [start, end, pages]. */
function vmasOf(spread: Spread): Array<[bigint, bigint, number]> {
  const out = new Map<bigint, [bigint, bigint, number]>();
  const raw = rawVmas(spread.pid);
  for (const [start, end] of spread.vmas) {
    const vma = raw.find((v) => v.start <= start && end <= v.end)!;
    expect(vma).toBeDefined();
    out.set(vma.start, [vma.start, vma.end, Number((vma.end - vma.start) / BigInt(PAGE))]);
  }
  return [...out.values()];
}

describe('attribution beside the smaps scan', () => {
  it.for(['scan', 'linear'] as const)(
    "attribute '%s': the VMAs with KSM pages, with pageAttribution()'s figures and the raw read's",
    { timeout: 180_000 },
    async (attribute, ctx) => {
      const [spread] = await mergedPair(ctx);
      const scan = await scanOf(spread!.pid, attribute);
      const attribution = scan.attribution!;
      expect(attribution).toBeDefined();
      expect(Array.from(attribution.vmas)).toEqual(withKsm(scan));
      const starts = Array.from(attribution.vmas, (v) => scan.addresses[3 * v]!);
      const ends = Array.from(attribution.vmas, (v) => scan.addresses[3 * v + 1]!);
      // Every VMA of the holder's mappings is among them, each page merged with its twin's (two mappings).
      const held = vmasOf(spread!);
      expect(held.length).toBeGreaterThan(VMAS / 2);
      for (const [start, end, pages] of held) {
        const k = starts.indexOf(start);
        expect(k).toBeGreaterThanOrEqual(0);
        expect(ends[k]).toBe(end);
        expect(attribution.ksmPages[k]).toBe(rawKsmPages(spread!.pid, start, end));
        expect(attribution.ksmPages[k]).toBe(pages);
        expect(attribution.presentPages[k]).toBe(pages);
        expect(attribution.zeroPages[k]).toBe(0);
        expect(Array.from(attribution.sharing[k]!)).toEqual([2, pages]);
      }
      const direct = await native.pageAttribution(spread!.pid, BigUint64Array.from(starts), BigUint64Array.from(ends), attribute === 'scan');
      expect(Array.from(attribution.presentPages)).toEqual(direct.presentPages);
      expect(Array.from(attribution.ksmPages)).toEqual(direct.ksmPages);
      expect(Array.from(attribution.zeroPages)).toEqual(direct.zeroPages);
      expect(attribution.sharing.map((pairs) => Array.from(pairs))).toEqual(direct.sharing.map((pairs) => Array.from(pairs)));
      expect(attribution.pfnHidden).toBe(false);
      expect(attribution.pagemapScan).toBe(direct.pagemapScan);
      if (attribute === 'linear') expect(attribution.pagemapScan).toBe(false);
    },
  );

  it('is refused with a bad mode, or a file that is not smaps', () => {
    const deliver = (): void => {};
    const smaps = `/proc/${process.pid}/smaps`;
    expect(() => native.readProcFile(smaps, 'smaps', deliver, undefined, undefined, 'all' as 'scan')).toThrow(TypeError);
    expect(() => native.readProcFile(`/proc/${process.pid}/maps`, 'smaps', deliver, undefined, undefined, 'scan')).toThrow(TypeError);
    expect(() => native.readProcFile(smaps, undefined, deliver, undefined, undefined, 'scan')).toThrow(TypeError);
  });
});

describe('profit() exact on memory merged across many VMAs', () => {
  it('gives every VMA of the holder what the raw read gives: its pages merged, half of them saved, each shared by 2', async (ctx) => {
    const [spread] = await mergedPair(ctx);
    const report = await profit(spread!.pid, { exact: true });
    expect(report.method).toBe('exact');
    for (const [start, end, pages] of vmasOf(spread!)) {
      const rows = report.regions.filter((row) => row.start >= start && row.end <= end);
      expect(rows.map((row) => [row.start, row.end])).toEqual([[start, end]]);
      expect(rows[0]!.mergedBytes).toBe(rawKsmPages(spread!.pid, start, end) * PAGE);
      expect(rows[0]!.mergedBytes).toBe(pages * PAGE);
      expect(rows[0]!.savedBytes).toBe((pages * PAGE) / 2);
      expect(rows[0]!.sharing).toEqual([{ mappings: 2, pages }]);
    }
  }, 180_000);

  it('a VMA cut by a label the holder published is attributed row by row, the others as the scan read them', async (ctx) => {
    const [, spread] = await mergedPair(ctx);
    // Both holders' pages are the same KSM pages once the first's are all merged.
    const held = vmasOf(spread!);
    for (const [start, end, pages] of held) expect(rawKsmPages(spread!.pid, start, end)).toBe(pages);
    const [start, end] = spread!.vmas[VMAS >> 1]!;
    const half = start + BigInt(PAGE);
    const [vmaStart, vmaEnd] = held.find(([s, e]) => s <= start && end <= e)!;
    const uid = process.geteuid!();
    const dir = labelDirs(uid).at(-1)!;
    const file = path.join(dir, `${spread!.pid}.json`);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(file, labelFileText(spread!.pid, rawStartTimeTicks(spread!.pid), [{ start: half, end, label: 'upper half' }]));
    try {
      const report = await profit(spread!.pid, { exact: true });
      expect(report.method).toBe('exact');
      const cut = report.regions.filter((row) => row.start >= vmaStart && row.end <= vmaEnd);
      expect(cut.find((row) => row.label === 'upper half')).toMatchObject({ start: half, end, mergedBytes: Number(end - half) });
      expect(cut.length).toBeGreaterThanOrEqual(2);
      expect(cut[0]!.start).toBe(vmaStart);
      expect(cut.at(-1)!.end).toBe(vmaEnd);
      for (const row of cut) expect(row.mergedBytes).toBe(rawKsmPages(spread!.pid, row.start, row.end) * PAGE);
      for (const [s, e] of held.filter(([s]) => s !== vmaStart)) {
        const rows = report.regions.filter((row) => row.start >= s && row.end <= e);
        expect(rows.map((row) => [row.start, row.end, row.mergedBytes])).toEqual([[s, e, rawKsmPages(spread!.pid, s, e) * PAGE]]);
      }
    } finally {
      fs.rmSync(file, { force: true });
    }
  }, 180_000);
});
