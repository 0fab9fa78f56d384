/**
 * /proc/PID/ksm_stat and ksm_merging_pages: parsed from fixture trees of
 * several kernels (test/fixtures/kernels, see its README), and from this
 * machine against the raw file.
 */
import { fork } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { KsmError, KsmNoSuchProcessError, ksmStat, parseKsmStat, type KsmStat } from '../lib/index.js';
import { FIXTURES, PAGE, rawKsmStat, requireKsm } from './helpers/ksm.js';

const KERNELS = path.join(FIXTURES, 'kernels');
const PID = 4242;
const root = (version: string): { root: string } => ({ root: path.join(KERNELS, version) });

function expectNoNaN(stat: KsmStat): void {
  for (const key of ['rmapItems', 'zeroPages', 'mergingPages', 'processProfit'] as const) {
    const value = stat[key];
    if (value !== undefined) expect(Number.isSafeInteger(value), `${key} = ${value}`).toBe(true);
  }
}

describe('ksmStat() on fixture kernels', () => {
  it.each([
    [
      '5.15',
      { source: 'none', rmapItems: undefined, zeroPages: undefined, mergingPages: undefined, processProfit: undefined, mergeAny: undefined, mergeable: undefined },
      ['rmapItems', 'zeroPages', 'mergingPages', 'processProfit', 'mergeAny', 'mergeable'],
    ],
    [
      '5.19',
      { source: 'ksm_merging_pages', rmapItems: undefined, mergingPages: 123, processProfit: undefined },
      ['rmapItems', 'zeroPages', 'processProfit', 'mergeAny', 'mergeable'],
    ],
    [
      '6.1',
      // ksm_stat has rmap items only; merging pages come from the older file.
      { source: 'ksm_stat', rmapItems: 512, mergingPages: 300, processProfit: undefined, zeroPages: undefined },
      ['zeroPages', 'processProfit', 'mergeAny', 'mergeable'],
    ],
    [
      '6.4',
      { source: 'ksm_stat', rmapItems: 4096, mergingPages: 0, processProfit: -262144, zeroPages: undefined },
      ['zeroPages', 'mergeAny', 'mergeable'],
    ],
    [
      '6.6',
      { source: 'ksm_stat', rmapItems: 4096, zeroPages: 0, mergingPages: 4000, processProfit: 16121856, mergeAny: undefined },
      ['mergeAny', 'mergeable'],
    ],
    [
      '6.8',
      { source: 'ksm_stat', rmapItems: 4096, zeroPages: 16, mergingPages: 3984, processProfit: 16121856, mergeAny: undefined },
      ['mergeAny', 'mergeable'],
    ],
    [
      '6.18',
      { source: 'ksm_stat', rmapItems: 0, zeroPages: 0, mergingPages: 0, processProfit: 0, mergeAny: true, mergeable: true },
      [],
    ],
  ] as const)('%s', (version, expected, missing) => {
    const stat = ksmStat(PID, root(version));
    expect(stat).toMatchObject({ pid: PID, ...expected });
    expect(stat.missing).toEqual(missing);
    expect(stat.unknown).toEqual({});
    expectNoNaN(stat);
  });

  it('garbage values: kept raw in unknown, never NaN, never a throw', () => {
    const stat = ksmStat(PID, root('garbage'));
    expectNoNaN(stat);
    expect(stat).toMatchObject({
      source: 'ksm_stat',
      rmapItems: undefined,
      // 2^64 - 1: a %lu counter that went below zero is not a count.
      zeroPages: undefined,
      mergingPages: 12,
      processProfit: undefined,
      mergeAny: undefined,
      mergeable: true,
    });
    expect(stat.unknown).toMatchObject({
      ksm_rmap_items: 'abc',
      ksm_zero_pages: '18446744073709551615',
      ksm_merge_any: 'maybe',
      ksm_pages_sharing: '7',
    });
    expect(Object.keys(stat.unknown)).toContain('ksm_process_profit');
    expect(stat.missing).toEqual(['rmapItems', 'zeroPages', 'processProfit', 'mergeAny']);
  });

  it('without pid it reads <root>/proc/self and answers with this pid', () => {
    expect(ksmStat(undefined, root('6.18'))).toMatchObject({ pid: process.pid, source: 'ksm_stat', mergeAny: true });
    // A root without proc/self: this process is not there.
    expect(() => ksmStat(undefined, root('6.8'))).toThrow(expect.objectContaining({ code: 'ERR_KSM_NO_SUCH_PROCESS', pid: process.pid }));
  });

  it('a pid the fixture does not have: KsmNoSuchProcessError', () => {
    let thrown: unknown;
    try {
      ksmStat(4243, root('6.8'));
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(KsmNoSuchProcessError);
    expect(thrown).toBeInstanceOf(KsmError);
    expect(thrown).toMatchObject({ code: 'ERR_KSM_NO_SUCH_PROCESS', pid: 4243 });
  });
});

describe('parseKsmStat()', () => {
  it('reads `key value` and `key: yes|no` lines in any order, with any spacing', () => {
    const parsed = parseKsmStat('ksm_mergeable: no\n  ksm_process_profit   -64\r\nksm_merge_any:yes\nksm_rmap_items\t1\n');
    expect(parsed.values).toEqual({ mergeable: false, processProfit: -64, rmapItems: 1 });
    // "ksm_merge_any:yes" has no space after the colon: not the kernel's format.
    expect(Object.keys(parsed.unknown)).toEqual(['ksm_merge_any:yes']);
  });

  it('empty text: nothing known, nothing unknown', () => {
    expect(parseKsmStat('')).toEqual({ values: {}, unknown: {} });
  });

  it.each([[undefined], [null], [5], [Buffer.from('ksm_rmap_items 1')]])('%s: TypeError ERR_INVALID_ARG_TYPE', (text) => {
    expect(() => parseKsmStat(text as unknown as string)).toThrow(expect.objectContaining({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }));
  });
});

describe('ksmStat() on this machine', () => {
  it('this process: every field, as the raw file has it', (ctx) => {
    requireKsm(ctx);
    const stat = ksmStat();
    const raw = rawKsmStat();
    expect(stat.pid).toBe(process.pid);
    expect(stat.source).toBe('ksm_stat');
    expect(stat.missing).toEqual([]);
    expect(stat.unknown).toEqual({});
    expect(stat.rmapItems).toBeTypeOf('number');
    expect(stat.mergeAny).toBe(raw.ksm_merge_any === 'yes');
    expect(stat.mergeable).toBe(raw.ksm_mergeable === 'yes');
    expect(ksmStat(process.pid)).toMatchObject({ pid: process.pid, source: 'ksm_stat' });
  });

  it('another process, and the same process once it has gone', async (ctx) => {
    requireKsm(ctx);
    const sleeper = fork(path.join(FIXTURES, 'holder.cjs'), [JSON.stringify({ mode: 'alloc', size: 4 * PAGE, seed: 1 })], {
      execArgv: [],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'advanced',
    });
    await new Promise((resolve) => sleeper.once('message', resolve));
    const pid = sleeper.pid!;
    const stat = ksmStat(pid);
    expect(stat.pid).toBe(pid);
    expect(stat.mergeable).toBe(true);
    expect(stat.mergeAny).toBe(rawKsmStat(pid).ksm_merge_any === 'yes');
    await new Promise((resolve) => {
      sleeper.once('exit', resolve);
      sleeper.kill('SIGKILL');
    });
    expect(() => ksmStat(pid)).toThrow(KsmNoSuchProcessError);
  });

  it.each([['1'], [null], [true], [10n]])('ksmStat(%s): TypeError', (pid) => {
    expect(() => ksmStat(pid as unknown as number)).toThrow(expect.objectContaining({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }));
  });

  it.each([[0], [-1], [1.5], [NaN], [Infinity], [4194305]])('ksmStat(%d): RangeError', (pid) => {
    expect(() => ksmStat(pid)).toThrow(expect.objectContaining({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }));
  });

  it.each([
    ['a string', 'x', 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    ['null', null, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    ['root: 5', { root: 5 }, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    ["root: ''", { root: '' }, 'RangeError', 'ERR_OUT_OF_RANGE'],
  ])('ksmStat(pid, %s): %s', (_name, options, name, code) => {
    expect(() => ksmStat(PID, options as never)).toThrow(expect.objectContaining({ name, code }));
  });
});
