/**
 * Process-wide opt-in (prctl PR_SET_MEMORY_MERGE), after the kernel's own
 * selftests (tools/testing/selftests/mm/ksm_functional_tests.c: test_prctl,
 * test_prctl_fork, test_prctl_fork_exec, test_prctl_unmerge), checked against
 * /proc/PID/ksm_stat read raw.
 */
import { execFile, fork } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, inject, it } from 'vitest';

import { disableMerge, enableMerge, isMergeEnabled } from '../lib/index.js';
import { FIXTURES, PAGE, rawKsmStat, rawSmapsRange, requireKsm, startFixture, untilKsm, type Holder } from './helpers/ksm.js';

const execFileAsync = promisify(execFile);
const REPORT = path.join(FIXTURES, 'report-merge.cjs');

interface Report {
  pid: number;
  mergeEnabled: boolean;
  ksmStat: string;
}

function mergeAnyLine(ksmStat: string): string | undefined {
  return /^ksm_merge_any:\s*(\S+)$/m.exec(ksmStat)?.[1];
}

/** A child started with child_process.fork: it reports over IPC. */
function forkReport(): Promise<Report> {
  return new Promise((resolve, reject) => {
    const child = fork(REPORT, [], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let report: Report | undefined;
    child.once('message', (message) => {
      report = message as Report;
    });
    child.once('error', reject);
    child.once('exit', (code) => (report && code === 0 ? resolve(report) : reject(new Error(`report child exited ${code}`))));
  });
}

/** A fresh node started with execFile: it reports on stdout. */
async function execReport(): Promise<Report> {
  const { stdout } = await execFileAsync(process.execPath, [REPORT]);
  return JSON.parse(stdout) as Report;
}

// Whatever a test did, this worker leaves without merge-any.
afterEach(() => {
  if (inject('ksm').available && isMergeEnabled()) disableMerge();
});

describe('prctl get/set (test_prctl)', () => {
  it('isMergeEnabled() follows enableMerge()/disableMerge(), as ksm_stat prints it', (ctx) => {
    requireKsm(ctx);
    expect(isMergeEnabled()).toBe(rawKsmStat().ksm_merge_any === 'yes');
    expect(rawKsmStat().ksm_merge_any).toBe('no');

    enableMerge();
    expect(isMergeEnabled()).toBe(true);
    expect(rawKsmStat().ksm_merge_any).toBe('yes');
    // Merge-any marks every compatible VMA of the process.
    expect(rawKsmStat().ksm_mergeable).toBe('yes');

    // Idempotent both ways.
    enableMerge();
    expect(rawKsmStat().ksm_merge_any).toBe('yes');

    disableMerge();
    expect(isMergeEnabled()).toBe(false);
    expect(rawKsmStat().ksm_merge_any).toBe('no');
    disableMerge();
    expect(rawKsmStat().ksm_merge_any).toBe('no');
  });
});

describe('merge-any is inherited (test_prctl_fork, test_prctl_fork_exec)', () => {
  it('by a child started with child_process.fork', async (ctx) => {
    requireKsm(ctx);
    enableMerge();
    const report = await forkReport();
    expect(report.pid).not.toBe(process.pid);
    expect(report.mergeEnabled).toBe(true);
    expect(mergeAnyLine(report.ksmStat)).toBe('yes');
  });

  it('across exec: a fresh node started with execFile', async (ctx) => {
    requireKsm(ctx);
    enableMerge();
    const report = await execReport();
    expect(report.mergeEnabled).toBe(true);
    expect(mergeAnyLine(report.ksmStat)).toBe('yes');
  });

  it('across a fork without exec: a subshell of an exec\'d shell', async (ctx) => {
    requireKsm(ctx);
    enableMerge();
    // The subshell is a fork of sh (no exec); it reads its own pid and
    // ksm_stat with builtins only.
    const script =
      '( read -r subpid rest < /proc/self/stat; echo "pid $subpid"; ' +
      'while read -r line; do echo "$line"; done < /proc/self/ksm_stat ); echo "shell $$"';
    const { stdout } = await execFileAsync('/bin/sh', ['-c', script]);
    const subshell = /^pid (\d+)$/m.exec(stdout)?.[1];
    const shell = /^shell (\d+)$/m.exec(stdout)?.[1];
    expect(subshell).toBeDefined();
    expect(subshell).not.toBe(shell);
    expect(mergeAnyLine(stdout)).toBe('yes');
  });

  it('is not set in children of a process that never enabled it', async (ctx) => {
    requireKsm(ctx);
    expect(isMergeEnabled()).toBe(false);
    const [forked, execd] = await Promise.all([forkReport(), execReport()]);
    expect(forked.mergeEnabled).toBe(false);
    expect(mergeAnyLine(forked.ksmStat)).toBe('no');
    expect(execd.mergeEnabled).toBe(false);
    expect(mergeAnyLine(execd.ksmStat)).toBe('no');
  });
});

describe('disableMerge() unmerges (test_prctl_unmerge)', () => {
  const SIZE = 8 * 1024 * 1024;
  let holders: Array<Holder & { ready: Record<string, unknown> }> = [];

  afterEach(async () => {
    await Promise.all(holders.map((holder) => holder.kill()));
    holders = [];
  });

  it('a child that merged under merge-any drops to 0 merging pages; the others keep theirs', async (ctx) => {
    requireKsm(ctx);
    const spec = JSON.stringify({ mode: 'plain', size: SIZE, seed: 0x31, enableMerge: true });
    holders = await Promise.all([0, 1, 2].map(() => startFixture('holder.cjs', [spec])));
    for (const holder of holders) expect(rawKsmStat(holder.pid).ksm_merge_any).toBe('yes');

    const pages = SIZE / PAGE;
    const merging = (holder: Holder): number => Number(rawKsmStat(holder.pid).ksm_merging_pages);
    await untilKsm(() => holders.every((holder) => merging(holder) >= pages - 1), 'every holder merging its buffer');

    const [leaver, ...stayers] = holders as [(typeof holders)[0], ...typeof holders];
    const range = (holder: (typeof holders)[0]): { ksmBytes: number; flags: string[][] } =>
      rawSmapsRange(holder.pid, holder.ready.start as bigint, holder.ready.end as bigint);
    expect(range(leaver).ksmBytes).toBeGreaterThan(0);

    const reply = await leaver.send<{ ok: boolean; mergeEnabled: boolean }>({ cmd: 'disableMerge' });
    expect(reply.mergeEnabled).toBe(false);
    expect(rawKsmStat(leaver.pid).ksm_merge_any).toBe('no');
    // PR_SET_MEMORY_MERGE 0 breaks every KSM page of the process before it
    // returns, and takes `mg` off its VMAs: smaps shows it at once.
    expect(range(leaver).ksmBytes).toBe(0);
    expect(range(leaver).flags.some((f) => f.includes('mg'))).toBe(false);
    // ksm_merging_pages counts rmap_items that ksmd only drops on its next
    // pass over the process (as after MADV_UNMERGEABLE).
    await untilKsm(() => merging(leaver) === 0, 'ksm_merging_pages of the leaver at 0');
    expect((await leaver.send<{ ok: boolean }>({ cmd: 'verify' })).ok).toBe(true);
    for (const holder of stayers) {
      expect(rawKsmStat(holder.pid).ksm_merge_any).toBe('yes');
      expect(merging(holder)).toBeGreaterThanOrEqual(pages - 1);
    }
  });
});
