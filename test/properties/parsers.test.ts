/**
 * Property tests for every parser of kernel text: arbitrary bytes, truncated
 * files, huge numbers, unknown fields, fields in any order. A parser never
 * throws where it should degrade, never returns NaN (or an inexact number)
 * as a number, and round-trips what it understands.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';

import { ksmStat, parseKsmStat, parseSmaps, systemStat } from '../../lib/index.js';

const RUNS = Number(process.env.NODE_KSM_PROPERTY_RUNS ?? 300);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'node-ksm-props-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
let treeCount = 0;
function freshRoot(): string {
  const dir = path.join(tmp, String(treeCount++));
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

/** Kernel text: mostly printable, with the bytes files really end up holding. */
const text = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 400 }),
  fc.string({ unit: fc.constantFrom('a', 'k', 's', 'm', '_', ':', ' ', '\t', '\n', '0', '1', '9', '-', '[', ']', 'y', 'e', 'n', 'o'), maxLength: 300 }),
  fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes).toString('utf8')),
);
/** Decimal numbers as the kernel may print them, huge ones included. */
const decimal = fc.oneof(
  fc.integer({ min: -1000, max: 1_000_000 }).map(String),
  fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }).map(String),
  fc.constantFrom('9007199254740991', '9007199254740992', '18446744073709551615', '-0', '00', '1e3', '0x10', ' 12', ''),
);

function isExactNumber(value: unknown): boolean {
  return typeof value === 'number' && Number.isSafeInteger(value);
}

function truncations(s: string): fc.Arbitrary<string> {
  return fc.nat({ max: s.length }).map((n) => s.slice(0, n));
}

const KSM_STAT_NUMERIC = {
  ksm_rmap_items: 'rmapItems',
  ksm_zero_pages: 'zeroPages',
  ksm_merging_pages: 'mergingPages',
  ksm_process_profit: 'processProfit',
} as const;
const KSM_STAT_BOOLEAN = { ksm_merge_any: 'mergeAny', ksm_mergeable: 'mergeable' } as const;

describe('parseKsmStat', () => {
  it('never throws and never yields a non-exact number, on any text', () => {
    fc.assert(
      fc.property(text, (input) => {
        const { values, unknown } = parseKsmStat(input);
        for (const value of Object.values(values)) {
          expect(typeof value === 'boolean' || isExactNumber(value)).toBe(true);
        }
        for (const value of Object.values(unknown)) expect(typeof value).toBe('string');
      }),
      { numRuns: RUNS },
    );
  });

  it('round-trips every known field, in any order, among unknown ones', () => {
    const unknownKey = fc.stringMatching(/^[a-z_][a-z0-9_]{0,20}$/).filter((key) => !(key in KSM_STAT_NUMERIC) && !(key in KSM_STAT_BOOLEAN));
    fc.assert(
      fc.property(
        fc.record({
          numeric: fc.dictionary(fc.constantFrom(...Object.keys(KSM_STAT_NUMERIC)), fc.maxSafeInteger().map((n) => n)),
          booleans: fc.dictionary(fc.constantFrom(...Object.keys(KSM_STAT_BOOLEAN)), fc.boolean()),
          extra: fc.dictionary(fc.oneof(unknownKey, fc.constant('__proto__'), fc.constant('constructor')), fc.stringMatching(/^[a-z0-9]{1,10}$/)),
          seed: fc.integer(),
        }),
        ({ numeric, booleans, extra, seed }) => {
          const lines = [
            ...Object.entries(numeric).map(([key, value]) => `${key} ${value}`),
            ...Object.entries(booleans).map(([key, value]) => `${key}: ${value ? 'yes' : 'no'}`),
            ...Object.entries(extra).map(([key, value]) => `${key} ${value}`),
          ];
          // Any order: a seeded shuffle.
          const shuffled = lines.map((line, i) => ({ line, key: Math.sin(seed + i) })).sort((a, b) => a.key - b.key).map((x) => x.line);
          const { values, unknown } = parseKsmStat(`${shuffled.join('\n')}\n`);
          for (const [key, value] of Object.entries(numeric)) {
            expect(values[KSM_STAT_NUMERIC[key as keyof typeof KSM_STAT_NUMERIC]]).toBe(value);
          }
          for (const [key, value] of Object.entries(booleans)) {
            expect(values[KSM_STAT_BOOLEAN[key as keyof typeof KSM_STAT_BOOLEAN]]).toBe(value);
          }
          for (const [key, value] of Object.entries(extra)) {
            expect(Object.getOwnPropertyDescriptor(unknown, key)?.value).toBe(value);
          }
          expect(Object.getPrototypeOf(unknown)).toBe(Object.prototype);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('keeps a huge or malformed number as unknown, never as a wrong number', () => {
    fc.assert(
      fc.property(fc.constantFrom(...Object.keys(KSM_STAT_NUMERIC)), decimal, (key, raw) => {
        const { values, unknown } = parseKsmStat(`${key} ${raw}\n`);
        const field = KSM_STAT_NUMERIC[key as keyof typeof KSM_STAT_NUMERIC];
        const trimmed = raw.trim();
        const exact = /^-?\d+$/.test(trimmed) && Number.isSafeInteger(Number(trimmed));
        if (exact) {
          expect(values[field]).toBe(Number(trimmed));
        } else {
          expect(values[field]).toBeUndefined();
          if (trimmed !== '') expect(unknown[key]).toBe(trimmed);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('reads the fields of any truncation of a real file that it still holds whole', () => {
    const real = 'ksm_rmap_items 12\nksm_zero_pages 0\nksm_merging_pages 8192\nksm_process_profit 33476608\nksm_merge_any: yes\nksm_mergeable: yes\n';
    fc.assert(
      fc.property(truncations(real), (cut) => {
        const { values } = parseKsmStat(cut);
        if (cut.includes('ksm_merging_pages 8192\n')) expect(values.mergingPages).toBe(8192);
        if (cut.includes('ksm_merge_any: yes')) expect(values.mergeAny).toBe(true);
        // A cut number is a smaller number, never NaN.
        for (const value of Object.values(values)) expect(typeof value === 'boolean' || isExactNumber(value)).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });
});

describe('ksmStat over fixture trees', () => {
  it('reads ksm_merging_pages only when it holds one exact decimal number', () => {
    fc.assert(
      fc.property(fc.oneof(decimal, text), fc.boolean(), (content, withStat) => {
        const root = freshRoot();
        const dir = path.join(root, 'proc', '4242');
        fs.mkdirSync(dir, { recursive: true });
        fs.writeFileSync(path.join(dir, 'ksm_merging_pages'), content);
        if (withStat) fs.writeFileSync(path.join(dir, 'ksm_stat'), 'ksm_rmap_items 3\n');
        const stat = ksmStat(4242, { root });
        const trimmed = content.trim();
        const exact = /^\d+$/.test(trimmed) && Number.isSafeInteger(Number(trimmed));
        expect(stat.mergingPages).toBe(exact ? Number(trimmed) : undefined);
        expect(stat.missing.includes('mergingPages')).toBe(!exact);
        for (const key of ['rmapItems', 'zeroPages', 'mergingPages', 'processProfit'] as const) {
          const value = stat[key];
          if (value !== undefined) expect(isExactNumber(value)).toBe(true);
        }
      }),
      { numRuns: Math.min(RUNS, 150) },
    );
  });
});

interface GeneratedVma {
  start: bigint;
  length: bigint;
  perms: string;
  offset: bigint;
  inode: number;
  pathname: string;
  fields: Record<string, number>;
  vmFlags: string[];
}

const vmaArb: fc.Arbitrary<GeneratedVma> = fc.record({
  start: fc.bigInt({ min: 0n, max: 2n ** 47n }).map((n) => n * 4096n),
  length: fc.bigInt({ min: 1n, max: 2n ** 20n }).map((n) => n * 4096n),
  perms: fc.tuple(fc.constantFrom('r', '-'), fc.constantFrom('w', '-'), fc.constantFrom('x', '-'), fc.constantFrom('p', 's')).map((p) => p.join('')),
  offset: fc.bigInt({ min: 0n, max: 2n ** 40n }),
  inode: fc.nat({ max: 2 ** 31 }),
  pathname: fc.oneof(fc.constant(''), fc.constantFrom('[heap]', '[stack]', '[anon:node-ksm]', '/usr/lib/x86_64-linux-gnu/libc.so.6 (deleted)')),
  fields: fc.dictionary(
    fc.oneof(fc.constantFrom('Size', 'Rss', 'Pss', 'KSM', 'AnonHugePages', 'Swap', 'Locked'), fc.stringMatching(/^[A-Z][A-Za-z_]{0,15}$/)),
    // kB figures whose bytes are still exact.
    fc.nat({ max: Math.floor(Number.MAX_SAFE_INTEGER / 1024) }),
  ),
  vmFlags: fc.uniqueArray(fc.constantFrom('rd', 'wr', 'mr', 'mw', 'me', 'ac', 'sd', 'mg', 'sh', 'ht', 'nh', 'hg'), { maxLength: 8 }),
});

function renderVma(vma: GeneratedVma): string {
  const lines = [
    `${vma.start.toString(16).padStart(8, '0')}-${(vma.start + vma.length).toString(16).padStart(8, '0')} ${vma.perms} ${vma.offset.toString(16).padStart(8, '0')} 00:00 ${vma.inode}${vma.pathname ? `                          ${vma.pathname}` : ''}`,
    ...Object.entries(vma.fields).map(([key, kb]) => `${`${key}:`.padEnd(16)}${String(kb).padStart(8)} kB`),
    `VmFlags: ${vma.vmFlags.join(' ')} `,
  ];
  return lines.join('\n');
}

describe('parseSmaps', () => {
  it('never throws and never yields a non-exact number, on any text', () => {
    fc.assert(
      fc.property(text, (input) => {
        const { vmas, skippedLines } = parseSmaps(input);
        expect(isExactNumber(skippedLines)).toBe(true);
        for (const vma of vmas) {
          expect(isExactNumber(vma.inode)).toBe(true);
          for (const value of Object.values(vma.fields)) expect(isExactNumber(value)).toBe(true);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('round-trips generated VMAs: header, every field in bytes, flags', () => {
    fc.assert(
      fc.property(fc.array(vmaArb, { maxLength: 6 }), (generated) => {
        const { vmas, skippedLines } = parseSmaps(`${generated.map(renderVma).join('\n')}\n`);
        expect(skippedLines).toBe(0);
        expect(vmas).toHaveLength(generated.length);
        generated.forEach((vma, i) => {
          const parsed = vmas[i]!;
          expect(parsed.start).toBe(vma.start);
          expect(parsed.end).toBe(vma.start + vma.length);
          expect(parsed.perms).toBe(vma.perms);
          expect(parsed.offset).toBe(vma.offset);
          expect(parsed.inode).toBe(vma.inode);
          expect(parsed.pathname).toBe(vma.pathname);
          for (const [key, kb] of Object.entries(vma.fields)) {
            expect(Object.getOwnPropertyDescriptor(parsed.fields, key)?.value).toBe(kb * 1024);
          }
          expect(parsed.vmFlags).toEqual(vma.vmFlags);
        });
      }),
      { numRuns: RUNS },
    );
  });

  it('skips, never converts wrongly, a kB figure whose bytes are not exact', () => {
    fc.assert(
      fc.property(decimal, (raw) => {
        const { vmas } = parseSmaps(`7f0000000000-7f0000001000 rw-p 00000000 00:00 0\nRss: ${raw} kB\nKSM: 4 kB\n`);
        expect(vmas).toHaveLength(1);
        const rss = vmas[0]!.fields.Rss;
        const trimmed = raw.trim();
        const exact = /^-?\d+$/.test(trimmed) && Number.isSafeInteger(Number(trimmed) * 1024);
        expect(rss).toBe(exact ? Number(trimmed) * 1024 : undefined);
        expect(vmas[0]!.fields.KSM).toBe(4096);
      }),
      { numRuns: RUNS },
    );
  });

  it('keeps every whole VMA of any truncation of a generated file', () => {
    fc.assert(
      fc.property(
        fc.array(vmaArb, { minLength: 1, maxLength: 4 }).chain((generated) => {
          const full = `${generated.map(renderVma).join('\n')}\n`;
          return fc.tuple(fc.constant(generated), truncations(full));
        }),
        ([generated, cut]) => {
          const { vmas } = parseSmaps(cut);
          expect(vmas.length).toBeLessThanOrEqual(generated.length);
          // Every VMA the cut still holds whole (its flags line ended) parses as generated.
          const whole = cut.split('\n').filter((line, i, all) => line.startsWith('VmFlags:') && i < all.length - 1).length;
          for (let i = 0; i < whole; i++) {
            expect(vmas[i]!.start).toBe(generated[i]!.start);
            expect(vmas[i]!.vmFlags).toEqual(generated[i]!.vmFlags);
          }
        },
      ),
      { numRuns: RUNS },
    );
  });
});

const SYSFS_INT = ['run', 'pages_to_scan', 'sleep_millisecs', 'pages_shared', 'pages_sharing', 'pages_unshared', 'pages_volatile', 'full_scans', 'general_profit', 'max_page_sharing', 'stable_node_chains', 'stable_node_dups'];
const SYSFS_BOOL = ['use_zero_pages', 'smart_scan', 'merge_across_nodes'];
const camel = (name: string): string => name.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

describe('systemStat over generated fixture trees', () => {
  it('never throws, types every value, lists what is missing and keeps what it does not know', () => {
    const content = fc.oneof(decimal, text, fc.constantFrom('0', '1', '2', '[none] scan-time', 'none [scan-time]', '[', '[]'));
    fc.assert(
      fc.property(
        fc.dictionary(fc.constantFrom(...SYSFS_INT, ...SYSFS_BOOL, 'advisor_mode'), content),
        fc.dictionary(fc.stringMatching(/^[a-z_]{1,12}$/).filter((n) => !SYSFS_INT.includes(n) && !SYSFS_BOOL.includes(n) && n !== 'advisor_mode' && !/^(pages_|advisor_|stable_|ksm_|general_|full_|max_|merge_|use_|smart_|run|sleep_)/.test(n)), content),
        fc.boolean(),
        (known, extra, withDirectory) => {
          const root = freshRoot();
          const dir = path.join(root, 'sys', 'kernel', 'mm', 'ksm');
          fs.mkdirSync(dir, { recursive: true });
          for (const [name, value] of Object.entries({ ...known, ...extra })) fs.writeFileSync(path.join(dir, name), `${value}\n`);
          if (withDirectory) fs.mkdirSync(path.join(dir, 'zz_subdir'));
          const stat = systemStat({ root }) as unknown as Record<string, unknown> & {
            missing: string[];
            unknown: Record<string, string>;
            unreadable: Record<string, string>;
          };
          for (const name of SYSFS_INT) {
            const value = stat[camel(name)];
            const raw = known[name]?.trim();
            const exact = raw !== undefined && /^-?\d+$/.test(raw) && Number.isSafeInteger(Number(raw));
            expect(value).toBe(exact ? Number(raw) : undefined);
            expect(stat.missing.includes(name)).toBe(known[name] === undefined);
            if (raw !== undefined && !exact) expect(stat.unknown[name]).toBe(raw);
          }
          for (const name of SYSFS_BOOL) {
            const raw = known[name]?.trim();
            const value = stat[camel(name)];
            // A decimal 0 or 1, however spelled ("00", "-0").
            const number = raw !== undefined && /^-?\d+$/.test(raw) ? Number(raw) : NaN;
            expect(value).toBe(number === 1 ? true : number === 0 ? false : undefined);
          }
          for (const [name, value] of Object.entries(extra)) expect(stat.unknown[name]).toBe(value.trim());
          if (withDirectory) expect(stat.unreadable.zz_subdir).toBe('EISDIR');
          for (const value of Object.values(stat)) {
            if (typeof value === 'number') expect(Number.isSafeInteger(value)).toBe(true);
          }
        },
      ),
      { numRuns: Math.min(RUNS, 150) },
    );
  });
});
