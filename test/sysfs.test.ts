/**
 * /sys/kernel/mm/ksm: systemStat() against fixture trees of several kernels
 * (test/fixtures/kernels, see its README) and this machine's files read raw;
 * setKnobs() validation and write order on a scratch copy of a tree. Real
 * writes to this machine's knobs are in sysfs.serial.test.ts.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { KsmError, KsmUnsupportedError, setKnobs, systemStat, type KsmKnobs, type SystemStat } from '../lib/index.js';
import { FIXTURES, requireKsm } from './helpers/ksm.js';

const KERNELS = path.join(FIXTURES, 'kernels');
const root = (version: string): { root: string } => ({ root: path.join(KERNELS, version) });

const ADVISOR = ['advisor_mode', 'advisor_target_scan_time', 'advisor_max_cpu', 'advisor_min_pages_to_scan', 'advisor_max_pages_to_scan'];

function expectNoNaN(stat: SystemStat): void {
  for (const [key, value] of Object.entries(stat)) {
    if (typeof value === 'number') expect(Number.isSafeInteger(value), `${key} = ${value}`).toBe(true);
  }
}

describe('systemStat() on fixture kernels', () => {
  const base = {
    run: 1,
    runState: 'running',
    pagesToScan: 100,
    sleepMillisecs: 20,
    pagesUnshared: 96,
    pagesVolatile: 0,
    fullScans: 57,
    maxPageSharing: 256,
    mergeAcrossNodes: true,
    stableNodeChains: 0,
    stableNodeDups: 0,
    stableNodeChainsPruneMillisecs: 2000,
  };
  const before64 = { ...base, pagesShared: 1000, pagesSharing: 3000, useZeroPages: false, generalProfit: undefined, ksmZeroPages: undefined };
  const old = ['pages_scanned', 'pages_skipped', 'general_profit', 'ksm_zero_pages', 'smart_scan', ...ADVISOR];

  it.each([
    ['5.15', before64, old],
    ['5.19', before64, old],
    ['6.1', before64, old],
    [
      '6.4',
      { ...base, pagesShared: 0, pagesSharing: 0, pagesUnshared: 4096, generalProfit: -262144, ksmZeroPages: undefined, pagesScanned: undefined },
      old.filter((file) => file !== 'general_profit'),
    ],
    [
      '6.6',
      { ...base, generalProfit: 12025856, ksmZeroPages: 0, pagesScanned: 1234567, pagesSkipped: undefined, smartScan: undefined, advisorMode: undefined },
      ['pages_skipped', 'smart_scan', ...ADVISOR],
    ],
    [
      '6.8',
      {
        ...base,
        useZeroPages: true,
        ksmZeroPages: 16,
        pagesSkipped: 2048,
        smartScan: true,
        advisorMode: 'none',
        advisorModes: ['none', 'scan-time'],
        advisorTargetScanTimeSec: 200,
        advisorMaxCpuPercent: 70,
        advisorMinPagesToScan: 500,
        advisorMaxPagesToScan: 30000,
      },
      [],
    ],
  ] as const)('%s', (version, expected, missing) => {
    const stat = systemStat(root(version));
    expect(stat).toMatchObject(expected);
    expect(stat.missing).toEqual(missing);
    expect(stat.unknown).toEqual({});
    expect(stat.unreadable).toEqual({});
    if ((missing as readonly string[]).includes('advisor_mode')) expect(stat.advisorModes).toBeUndefined();
    expectNoNaN(stat);
  });

  it('6.18 (this machine\'s files, copied): every file known, every value typed', () => {
    const stat = systemStat(root('6.18'));
    expect(stat.missing).toEqual([]);
    expect(stat.unknown).toEqual({});
    const dir = path.join(KERNELS, '6.18', 'sys', 'kernel', 'mm', 'ksm');
    const raw = (file: string): string => fs.readFileSync(path.join(dir, file), 'utf8').trim();
    expect(stat.run).toBe(Number(raw('run')));
    expect(stat.pagesToScan).toBe(Number(raw('pages_to_scan')));
    expect(stat.fullScans).toBe(Number(raw('full_scans')));
    expect(stat.pagesScanned).toBe(Number(raw('pages_scanned')));
    expect(stat.smartScan).toBe(raw('smart_scan') === '1');
    expect(stat.advisorMode).toBe(/\[([^\]]+)\]/.exec(raw('advisor_mode'))![1]);
    expect(stat.advisorModes).toEqual(['none', 'scan-time']);
    expectNoNaN(stat);
  });

  it('garbage values: raw in unknown, never NaN, never a throw', () => {
    const stat = systemStat(root('garbage'));
    expectNoNaN(stat);
    expect(stat).toMatchObject({
      run: undefined,
      runState: 'unknown',
      pagesToScan: undefined,
      sleepMillisecs: undefined,
      fullScans: undefined,
      useZeroPages: undefined,
      smartScan: undefined,
      advisorMode: undefined,
      advisorModes: ['none', 'scan-time'],
      // What is well formed still reads: a negative profit, a padded number.
      generalProfit: -4096,
      pagesShared: 12,
      maxPageSharing: undefined,
      pagesSharing: undefined,
      pagesUnshared: undefined,
      pagesVolatile: undefined,
      stableNodeDups: undefined,
    });
    expect(stat.unknown).toEqual({
      run: 'banana',
      pages_to_scan: '',
      sleep_millisecs: '20ms',
      full_scans: '18446744073709551615',
      use_zero_pages: '2',
      smart_scan: 'yes',
      advisor_mode: 'none scan-time',
      future_knob: '42',
      max_page_sharing: '0x100',
      pages_sharing: '1.5',
      pages_unshared: 'NaN',
      pages_volatile: 'Infinity',
      stable_node_dups: '1e3',
    });
    // A directory where a file should be: listed, not thrown.
    expect(stat.unreadable).toEqual({ stats: 'EISDIR' });
  });

  it('a kernel without CONFIG_KSM (no /sys/kernel/mm/ksm): KsmUnsupportedError', () => {
    let thrown: unknown;
    try {
      systemStat(root('no-ksm'));
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(KsmUnsupportedError);
    expect(thrown).toBeInstanceOf(KsmError);
    expect(thrown).toMatchObject({ code: 'ERR_KSM_UNSUPPORTED' });
    expect((thrown as KsmUnsupportedError).reason).toMatch(/CONFIG_KSM/);
    expect(() => systemStat({ root: path.join(KERNELS, 'does-not-exist') })).toThrow(KsmUnsupportedError);
  });

  it.each([
    ['a string', 'x', 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    ['null', null, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    ['root: 5', { root: 5 }, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    ["root: ''", { root: '' }, 'RangeError', 'ERR_OUT_OF_RANGE'],
  ])('systemStat(%s): %s', (_name, options, name, code) => {
    expect(() => systemStat(options as never)).toThrow(expect.objectContaining({ name, code }));
  });
});

/** The files of /sys/kernel/mm/ksm systemStat() reads, as the kernel names them (Linux 6.18). */
const SYSFS_FILES = [
  'run', 'pages_to_scan', 'sleep_millisecs', 'pages_shared', 'pages_sharing', 'pages_unshared', 'pages_volatile',
  'pages_scanned', 'pages_skipped', 'full_scans', 'general_profit', 'ksm_zero_pages', 'use_zero_pages', 'smart_scan',
  'max_page_sharing', 'merge_across_nodes', 'stable_node_chains', 'stable_node_dups', 'stable_node_chains_prune_millisecs',
  'advisor_mode', 'advisor_target_scan_time', 'advisor_max_cpu', 'advisor_min_pages_to_scan', 'advisor_max_pages_to_scan',
];

describe('systemStat() on this machine', () => {
  it('matches the raw files', (ctx) => {
    requireKsm(ctx);
    const stat = systemStat();
    const dir = '/sys/kernel/mm/ksm';
    const raw = (file: string): string => fs.readFileSync(`${dir}/${file}`, 'utf8').trim();
    const present = new Set(fs.readdirSync(dir));
    // Missing is exactly what this kernel lacks: merge_across_nodes without
    // CONFIG_NUMA, smart_scan before 6.7, the advisor before 6.8...
    expect(stat.missing).toEqual(SYSFS_FILES.filter((file) => !present.has(file)));
    expect(stat.unknown).toEqual({});
    expect(stat.unreadable).toEqual({});
    expect(stat.maxPageSharing).toBe(Number(raw('max_page_sharing')));
    expect(stat.stableNodeChainsPruneMillisecs).toBe(Number(raw('stable_node_chains_prune_millisecs')));
    expect(stat.mergeAcrossNodes).toBe(present.has('merge_across_nodes') ? raw('merge_across_nodes') === '1' : undefined);
    expect(stat.advisorMaxCpuPercent).toBe(present.has('advisor_max_cpu') ? Number(raw('advisor_max_cpu')) : undefined);
    // Counters only grow while we read.
    expect(stat.fullScans!).toBeLessThanOrEqual(Number(raw('full_scans')));
    expect(stat.pagesScanned!).toBeLessThanOrEqual(Number(raw('pages_scanned')));
    expectNoNaN(stat);
  });
});

describe('setKnobs() on a scratch copy of a 6.8 tree', () => {
  let scratch: string;
  let dir: string;
  const read = (file: string): string => fs.readFileSync(path.join(dir, file), 'utf8').trim();

  beforeEach(() => {
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'node-ksm-sysfs-'));
    fs.cpSync(path.join(KERNELS, '6.8'), scratch, { recursive: true });
    dir = path.join(scratch, 'sys', 'kernel', 'mm', 'ksm');
  });
  afterEach(() => fs.rmSync(scratch, { recursive: true, force: true }));

  it('writes the named knobs and reads them back', () => {
    const change = setKnobs({ pagesToScan: 5000, sleepMillisecs: 10, useZeroPages: false, smartScan: false, run: 2 }, { root: scratch });
    expect(change.before).toEqual({ pagesToScan: 100, sleepMillisecs: 20, useZeroPages: true, smartScan: true, run: 1 });
    expect(change.after).toEqual({ pagesToScan: 5000, sleepMillisecs: 10, useZeroPages: false, smartScan: false, run: 2 });
    expect([read('pages_to_scan'), read('sleep_millisecs'), read('use_zero_pages'), read('smart_scan'), read('run')]).toEqual(['5000', '10', '0', '0', '2']);
    // Knobs not named are left alone; undefined ones are skipped.
    expect(setKnobs({ maxPageSharing: undefined } as unknown as KsmKnobs, { root: scratch })).toEqual({ before: {}, after: {} });
    expect(read('max_page_sharing')).toBe('256');
  });

  const bad: Array<[string, unknown, string, string]> = [
    ['knobs null', null, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    ['knobs a string', 'run=1', 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    ['knobs an array', [1], 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    ['an unknown knob', { sleepMillisecs: 5, pagesToSkan: 10 }, 'RangeError', 'ERR_OUT_OF_RANGE'],
    ['a read-only counter', { sleepMillisecs: 5, fullScans: 0 }, 'RangeError', 'ERR_OUT_OF_RANGE'],
    ['run 3', { sleepMillisecs: 5, run: 3 }, 'RangeError', 'ERR_OUT_OF_RANGE'],
    ["run '1'", { sleepMillisecs: 5, run: '1' }, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    ['pagesToScan 0', { sleepMillisecs: 5, pagesToScan: 0 }, 'RangeError', 'ERR_OUT_OF_RANGE'],
    ['pagesToScan -1', { sleepMillisecs: 5, pagesToScan: -1 }, 'RangeError', 'ERR_OUT_OF_RANGE'],
    ['pagesToScan 1.5', { sleepMillisecs: 5, pagesToScan: 1.5 }, 'RangeError', 'ERR_OUT_OF_RANGE'],
    ['pagesToScan NaN', { sleepMillisecs: 5, pagesToScan: NaN }, 'RangeError', 'ERR_OUT_OF_RANGE'],
    ['pagesToScan Infinity', { sleepMillisecs: 5, pagesToScan: Infinity }, 'RangeError', 'ERR_OUT_OF_RANGE'],
    ['pagesToScan 2^32', { sleepMillisecs: 5, pagesToScan: 2 ** 32 }, 'RangeError', 'ERR_OUT_OF_RANGE'],
    ["pagesToScan '100'", { sleepMillisecs: 5, pagesToScan: '100' }, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    ['maxPageSharing 1', { sleepMillisecs: 5, maxPageSharing: 1 }, 'RangeError', 'ERR_OUT_OF_RANGE'],
    ['useZeroPages 1', { sleepMillisecs: 5, useZeroPages: 1 }, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    ["advisorMode 'auto'", { sleepMillisecs: 5, advisorMode: 'auto' }, 'RangeError', 'ERR_OUT_OF_RANGE'],
    ['advisorMode 1', { sleepMillisecs: 5, advisorMode: 1 }, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    ['advisorMaxCpuPercent 101', { sleepMillisecs: 5, advisorMaxCpuPercent: 101 }, 'RangeError', 'ERR_OUT_OF_RANGE'],
    ['advisorMaxCpuPercent 0', { sleepMillisecs: 5, advisorMaxCpuPercent: 0 }, 'RangeError', 'ERR_OUT_OF_RANGE'],
  ];

  it.each(bad)('%s: %s before anything is written', (_name, knobs, name, code) => {
    expect(() => setKnobs(knobs as KsmKnobs, { root: scratch })).toThrow(expect.objectContaining({ name, code }));
    // sleepMillisecs came first and was valid: it was not written either.
    expect(read('sleep_millisecs')).toBe('20');
  });

  it.each([
    ['options a string', 'x', 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    ['root: 5', { root: 5 }, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
  ])('%s: %s', (_name, options, name, code) => {
    expect(() => setKnobs({ sleepMillisecs: 5 }, options as never)).toThrow(expect.objectContaining({ name, code }));
  });

  it('a failed write names the knobs already written', () => {
    // A directory where pages_to_scan should be: writing it fails (EISDIR).
    fs.rmSync(path.join(dir, 'pages_to_scan'));
    fs.mkdirSync(path.join(dir, 'pages_to_scan'));
    let thrown: unknown;
    try {
      setKnobs({ sleepMillisecs: 30, pagesToScan: 200, run: 0 }, { root: scratch });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toMatchObject({ code: 'EISDIR', written: ['sleepMillisecs'] });
    expect(read('sleep_millisecs')).toBe('30');
    // run goes last: it was never reached.
    expect(read('run')).toBe('1');
  });
});
