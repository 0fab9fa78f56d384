/**
 * regions() and the smaps scanner under it: kernels of several releases,
 * 10,000 VMAs, malformed input, and this process's own labelled buffers.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import {
  KsmNoSuchProcessError,
  allocMergeable,
  pageSize,
  parseSmaps,
  profit,
  regions,
  scanSmaps,
  type SmapsSummary,
} from '../lib/index.js';
import { bindingState } from '../lib/binding.js';
import { startSmapsRead } from '../lib/kernel/files.js';
import { NATIVE_SMAPS_FIELDS, fromNativeScan } from '../lib/kernel/smaps-native.js';
import { readSmaps } from '../lib/kernel/smaps-reader.js';
import { resolveTarget } from '../lib/kernel/target.js';
import { regionsOfNativeScan } from '../lib/report/regions.js';
import { FIXTURES, requireKsm } from './helpers/ksm.js';

const SMAPS = path.join(FIXTURES, 'smaps');
const ROOT_68 = path.join(SMAPS, 'root-6.8');
const KERNELS = ['linux-4.19', 'linux-5.15', 'linux-6.1', 'linux-6.8', 'linux-6.18'];

function fixture(name: string): Buffer {
  return fs.readFileSync(path.join(SMAPS, `${name}.smaps`));
}

/** The scanner's figures must be the general parser's, field for field. */
const SAME: Array<[keyof SmapsSummary, string]> = [
  ['size', 'Size'], ['rss', 'Rss'], ['pss', 'Pss'], ['sharedClean', 'Shared_Clean'],
  ['sharedDirty', 'Shared_Dirty'], ['privateClean', 'Private_Clean'], ['privateDirty', 'Private_Dirty'],
  ['anonymous', 'Anonymous'], ['ksm', 'KSM'], ['anonHugePages', 'AnonHugePages'], ['swap', 'Swap'],
];

function expectScanMatchesParse(data: Buffer): void {
  const scanned = scanSmaps(data);
  const parsed = parseSmaps(data.toString('utf8'));
  expect(scanned.vmas.length).toBe(parsed.vmas.length);
  scanned.vmas.forEach((vma, i) => {
    const full = parsed.vmas[i]!;
    expect([vma.start, vma.end, vma.perms, vma.offset, vma.dev, vma.inode]).toEqual([full.start, full.end, full.perms, full.offset, full.dev, full.inode]);
    expect(vma.pathname).toBe(full.pathname.trimEnd());
    expect(vma.vmFlags).toEqual(full.vmFlags);
    for (const [key, field] of SAME) expect(vma[key], `${key} of VMA ${i}`).toBe(full.fields[field]);
  });
}

describe('smaps of several kernels', () => {
  it.each(KERNELS)('%s: every VMA, scanner and full parser agree, nothing skipped', (kernel) => {
    const data = fixture(kernel);
    const { vmas, skippedLines } = scanSmaps(data);
    expect(skippedLines).toBe(0);
    expect(parseSmaps(data.toString()).skippedLines).toBe(0);
    expect(vmas.length).toBe(data.toString().split('\n').filter((line) => /^[0-9a-f]+-[0-9a-f]+ /.test(line)).length);
    expectScanMatchesParse(data);
  });

  it('KSM is undefined where the kernel printed no KSM line (before 6.6), a number from 6.6', () => {
    for (const kernel of ['linux-4.19', 'linux-5.15', 'linux-6.1']) {
      expect(scanSmaps(fixture(kernel)).vmas.every((vma) => vma.ksm === undefined)).toBe(true);
    }
    const v68 = scanSmaps(fixture('linux-6.8')).vmas;
    expect(v68.every((vma) => typeof vma.ksm === 'number')).toBe(true);
    expect(v68.reduce((sum, vma) => sum + vma.ksm!, 0)).toBe(480 * 1024);
  });

  it('reads the same bytes alike from a Buffer, a Uint8Array at an offset, another view or an ArrayBuffer', () => {
    const data = fixture('linux-6.8');
    const expected = scanSmaps(data);
    // The bytes at an odd offset inside a larger buffer: the scanner must honour byteOffset.
    const padded = new Uint8Array(data.length + 3);
    padded.set(data, 3);
    const copy = new ArrayBuffer(data.length);
    new Uint8Array(copy).set(data);
    expect(scanSmaps(padded.subarray(3))).toEqual(expected);
    expect(scanSmaps(new DataView(padded.buffer, 3, data.length))).toEqual(expected);
    expect(scanSmaps(copy)).toEqual(expected);
    expect(expected.vmas.length).toBeGreaterThan(0);
  });

  it('keeps THP fields and [anon:...] names', () => {
    const vmas = scanSmaps(fixture('linux-6.8')).vmas;
    const thp = vmas.find((vma) => vma.vmFlags.includes('hg'))!;
    expect(thp.anonHugePages).toBe(2048 * 1024);
    expect(parseSmaps(fixture('linux-6.8').toString()).vmas.find((vma) => vma.start === thp.start)!.fields.THPeligible).toBe(1);
    expect(vmas.find((vma) => vma.pathname === '[anon:node-ksm weights]')?.vmFlags).toContain('mg');
    expect(vmas.at(-1)!.start).toBe(0xffffffffff600000n);
  });
});

describe('regions()', () => {
  it('names each kind of mapping, from a 6.8 fixture', async () => {
    const { regions: list, pid, skippedLines } = await regions(4242, { root: ROOT_68 });
    expect(pid).toBe(4242);
    expect(skippedLines).toBe(0);
    const kinds = Object.fromEntries(list.map((region) => [region.start.toString(16), region.kind]));
    expect(kinds).toEqual({
      '55d0c0a00000': 'file',
      '55d0c2000000': 'heap',
      '7f3a00000000': 'named-anonymous',
      '7f3a10000000': 'anonymous',
      '7f3a20000000': 'jit-code',
      '7f3a30000000': 'reserved',
      '7f3a40000000': 'anonymous',
      '7f3a50000000': 'shared-memory',
      '7f3a60000000': 'shared-memory',
      '7ffd4eeab000': 'stack',
      '7ffd4ef7c000': 'vvar',
      '7ffd4ef80000': 'vdso',
      ffffffffff600000: 'vsyscall',
    });
    const named = list.find((region) => region.kind === 'named-anonymous')!;
    expect(named.anonName).toBe('node-ksm weights');
    expect(named).toMatchObject({ mergeable: true, ksm: 400 * 1024, rss: 600 * 1024, pss: 300 * 1024, anonymous: 600 * 1024, size: 4 * 1024 * 1024 });
    expect(list.filter((region) => region.mergeable).map((region) => region.start.toString(16))).toEqual(['7f3a00000000', '7f3a10000000', '7f3a40000000']);
    expect(list.find((region) => region.kind === 'anonymous' && region.anonHugePages! > 0)?.anonHugePages).toBe(2 * 1024 * 1024);
    // Labels are this process's own: never on another pid's regions.
    expect(list.every((region) => region.label === undefined && region.labels.length === 0)).toBe(true);
  });

  it("labels this process's buffers, mergeable, by address range", async (ctx) => {
    requireKsm(ctx);
    const page = pageSize();
    const weights = allocMergeable(64 * page, { label: 'weights' });
    const cache = allocMergeable(16 * page, { label: 'cache' });
    weights.fill(1);
    cache.fill(2);
    const { regions: list } = await regions();
    for (const [label, buffer] of [['weights', weights], ['cache', cache]] as const) {
      const holders = list.filter((region) => region.labels.some((l) => l.label === label));
      expect(holders.length, label).toBeGreaterThanOrEqual(1);
      for (const region of holders) {
        expect(region.mergeable).toBe(true);
        expect(region.kind).toBe('anonymous');
        expect(region.label).toContain(label);
      }
      const clipped = holders.flatMap((region) => region.labels.filter((l) => l.label === label));
      expect(clipped.reduce((sum, l) => sum + Number(l.end - l.start), 0)).toBe(buffer.length);
    }
    // Regions are in address order and do not overlap.
    for (let i = 1; i < list.length; i++) expect(list[i]!.start >= list[i - 1]!.end).toBe(true);
  });

  it('throws TypeError / RangeError for bad arguments and KsmNoSuchProcessError for a missing pid', async () => {
    await expect(regions('1' as unknown as number)).rejects.toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    await expect(regions(0)).rejects.toMatchObject({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    await expect(regions(1.5)).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    await expect(regions(undefined, { root: 5 } as unknown as { root: string })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    await expect(regions(4243, { root: ROOT_68 })).rejects.toBeInstanceOf(KsmNoSuchProcessError);
  });

  it('leaves out a VMA a torn smaps read printed twice, in regions() and profit()', async () => {
    // What the kernel prints when a VMA grows between two of its one-page
    // reads: the grown VMA again, overlapping what came before. A fixture
    // is torn on every read, so the last attempt's fallback shows.
    const vma = (range: string, ksmKb: number): string =>
      `${range} rw-p 00000000 00:00 0 \nSize: 16 kB\nRss: 16 kB\nPss: 16 kB\nAnonymous: 16 kB\nKSM: ${ksmKb} kB\nVmFlags: rd wr mr mw me ac mg \n`;
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'node-ksm-torn-'));
    try {
      fs.mkdirSync(path.join(root, 'proc', '4242'), { recursive: true });
      const smaps = vma('7f0000000000-7f0000004000', 8) + vma('7f0000002000-7f0000008000', 8) + vma('7f0000008000-7f000000c000', 4);
      fs.writeFileSync(path.join(root, 'proc', '4242', 'smaps'), smaps);
      fs.writeFileSync(path.join(root, 'proc', '4242', 'smaps_rollup'), vma('7f0000000000-7f000000c000', 12).replace(/^\S+/, '00400000-ffffffffff601000'));
      const { regions: list } = await regions(4242, { root });
      expect(list.map((r) => [r.start, r.end])).toEqual([
        [0x7f0000000000n, 0x7f0000004000n],
        [0x7f0000008000n, 0x7f000000c000n],
      ]);
      const report = await profit(4242, { root });
      expect(report.total.mergedBytes).toBe(12 * 1024);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});

/** A 10,000-VMA smaps in 6.18's layout, every VMA different. */
function synthetic(count: number): Buffer {
  const lines: string[] = [];
  let address = 0x7f0000000000n;
  for (let i = 0; i < count; i++) {
    const start = address;
    const end = start + BigInt((1 + (i % 7)) * 4096);
    address = end + 4096n;
    const rss = (i % 7) * 4;
    const ksm = i % 3 === 0 ? rss : 0;
    lines.push(
      `${start.toString(16)}-${end.toString(16)} ${i % 2 ? 'rw-p' : 'r--p'} ${(i * 4096).toString(16).padStart(8, '0')} 00:00 0 ${i % 5 === 0 ? `[anon:buf ${i}]` : ''}`,
      `Size:           ${String((1 + (i % 7)) * 4).padStart(8)} kB`,
      'KernelPageSize:        4 kB',
      'MMUPageSize:           4 kB',
      `Rss:            ${String(rss).padStart(8)} kB`,
      `Pss:            ${String(rss / 2).padStart(8)} kB`,
      `Shared_Dirty:   ${String(ksm).padStart(8)} kB`,
      `Private_Dirty:  ${String(rss - ksm).padStart(8)} kB`,
      `Anonymous:      ${String(rss).padStart(8)} kB`,
      `KSM:            ${String(ksm).padStart(8)} kB`,
      `AnonHugePages:         0 kB`,
      `Swap:           ${String(i).padStart(8)} kB`,
      'THPeligible:           0',
      `VmFlags: rd ${i % 2 ? 'wr ' : ''}mr mw me ac${i % 3 === 0 ? ' mg' : ''} `,
    );
  }
  return Buffer.from(`${lines.join('\n')}\n`);
}

describe.runIf(bindingState().loaded)("a torn read the addon scans", () => {
  it('is told out of order by regionsOfNativeScan() and fromNativeScan(), and regions() and readSmaps() leave the overlapping VMA out; sizes are end - start', async () => {
    const whole = synthetic(6).toString('latin1');
    const headers = whole.split('\n').filter((line) => /^[0-9a-f]+-[0-9a-f]+ /.test(line));
    const range = (line: string): [bigint, bigint] => line.split(' ')[0]!.split('-').map((hex) => BigInt(`0x${hex}`)) as [bigint, bigint];
    // VMA 2 printed again as grown down into VMA 1 (the kernel's view changed between two reads).
    const [start1] = range(headers[1]!);
    const [, end2] = range(headers[2]!);
    const torn = whole.replace(headers[2]!, headers[2]!.replace(/^\S+/, `${(start1 + 4096n).toString(16)}-${end2.toString(16)}`));
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'node-ksm-torn-native-'));
    try {
      fs.mkdirSync(path.join(root, 'proc', '4343'), { recursive: true });
      const file = path.join(root, 'proc', '4343', 'smaps');
      for (const [text, inOrder] of [[whole, true], [torn, false]] as const) {
        fs.writeFileSync(file, text, 'latin1');
        const scan = await startSmapsRead(file, NATIVE_SMAPS_FIELDS).promise;
        if (Buffer.isBuffer(scan)) throw new Error('the fixture was not scanned by the addon');
        const made = regionsOfNativeScan(scan);
        expect(made.inOrder).toBe(inOrder);
        expect(made.vmas.map((r) => r.size)).toEqual(made.vmas.map((r) => Number(r.end - r.start)));
        // The VMAs profit() and the other readers take of the same scan tell the same order.
        expect(fromNativeScan(scan).inOrder).toBe(inOrder);
      }
      const { regions: list } = await regions(4343, { root, layoutReads: false });
      const expected = headers.filter((_, i) => i !== 2).map(range);
      expect(list.map((r) => [r.start, r.end])).toEqual(expected);
      const read = await readSmaps(resolveTarget(4343, { root }));
      expect(read.vmas.map((vma) => [vma.start, vma.end])).toEqual(expected);
      expect(read).toMatchObject({ torn: true, attempts: 3 });
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('smaps at scale and under damage', () => {
  it('scans 10,000 VMAs, every figure in place', () => {
    const data = synthetic(10_000);
    const { vmas, skippedLines } = scanSmaps(data);
    expect(skippedLines).toBe(0);
    expect(vmas).toHaveLength(10_000);
    vmas.forEach((vma, i) => {
      const rss = (i % 7) * 4 * 1024;
      if (vma.rss !== rss || vma.swap !== i * 1024 || vma.ksm !== (i % 3 === 0 ? rss : 0) ||
        vma.vmFlags.includes('mg') !== (i % 3 === 0) || vma.pathname !== (i % 5 === 0 ? `[anon:buf ${i}]` : '')) {
        throw new Error(`VMA ${i} misread: ${JSON.stringify(vma, (_, v) => (typeof v === 'bigint' ? v.toString(16) : v))}`);
      }
    });
    expectScanMatchesParse(data);
  });

  it('never throws on malformed input, and counts what it could not read', () => {
    const samples: Array<string | Buffer> = [
      '',
      '\n\n\n',
      'garbage',
      'Rss: 12 kB\n',                       // a field before any header
      '7f00-7f01 rw-p 0 00:00 0\nRss: x kB\nKSM: -1 kB\nPss: 99999999999999999999 kB\nVmFlags:\n',
      '7f00-7f01 rw-p',                     // truncated header
      'zzzz-7f01 rw-p 00000000 00:00 0\n',
      '7f00-7f01 rw-p 00000000 00:00 0 /path with spaces (deleted)\nRss:   4 kB\n',
      Buffer.from([0xff, 0xfe, 0x00, 0x0a, 0x52, 0x73, 0x73, 0x3a]),
      fixture('linux-6.8').subarray(0, 1234),    // cut mid-line
    ];
    for (const sample of samples) {
      const data = typeof sample === 'string' ? Buffer.from(sample) : sample;
      expect(() => scanSmaps(data)).not.toThrow();
      expect(() => parseSmaps(data.toString('utf8'))).not.toThrow();
    }
    const odd = scanSmaps(Buffer.from(samples[4] as string));
    expect(odd.vmas).toHaveLength(1);
    expect(odd.vmas[0]!.rss).toBeUndefined();
    expect(odd.vmas[0]!.pss).toBeUndefined();
    expect(odd.skippedLines).toBe(3);
    expect(scanSmaps(Buffer.from(samples[7] as string)).vmas[0]!.pathname).toBe('/path with spaces (deleted)');
    expect(scanSmaps(Buffer.from('Rss: 12 kB\n')).skippedLines).toBe(1);

    // Random damage: cuts, flipped bytes, spliced lines.
    const base = fixture('linux-6.18');
    let seed = 12345;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let round = 0; round < 300; round++) {
      const damaged = Buffer.from(base.subarray(random(base.length), base.length - random(200)));
      for (let flips = random(40); flips > 0; flips--) damaged[random(damaged.length)] = random(256);
      expect(() => scanSmaps(damaged)).not.toThrow();
      expect(() => parseSmaps(damaged.toString('latin1'))).not.toThrow();
    }
  });
});
