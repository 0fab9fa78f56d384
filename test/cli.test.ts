/**
 * The node-ksm CLI as a child process: against fixture trees (--root) with
 * exact expected figures, and against the real kernel, asserting against
 * /proc read raw.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';

import { profit, type DoctorJson, type EstimateJson, type StatusJson, type TopJson, type TuneJson } from '../lib/index.js';
import { ksmStatText, makeKsmTree, runCli, smapsVma, sysfsFile } from './helpers/cli.js';
import { DIST, PAGE, rawKsmStat, rawSmapsRange, requireKsm, startFixture, unusedPid, untilKsm, type Holder } from './helpers/ksm.js';

const trees: string[] = [];
function tree(...args: Parameters<typeof makeKsmTree>): string {
  const root = makeKsmTree(...args);
  trees.push(root);
  return root;
}
afterAll(() => {
  for (const root of trees) fs.rmSync(root, { recursive: true, force: true });
});

let holders: Array<Holder & { ready: Record<string, unknown> }> = [];
afterEach(async () => {
  await Promise.all(holders.map((holder) => holder.kill()));
  holders = [];
});

const PROCS = [
  // 1 MiB merged, each KSM page mapped twice; 2 MiB merged, mapped three times: 200 saves more.
  { pid: 100, comm: 'api-worker', ksmStat: ksmStatText({ rmap: 5000, zero: 0, merging: 3000, profit: 3000 * 4096 - 5000 * 64, mergeAny: true, mergeable: true }), smaps: smapsVma(0x7f0000000000, 4096, 1024, 2) },
  { pid: 200, comm: 'cache node', ksmStat: ksmStatText({ rmap: 9000, zero: 10, merging: 6000, profit: 6010 * 4096 - 9000 * 64, mergeAny: false, mergeable: true }), smaps: smapsVma(0x7f0000000000, 4096, 2048, 3) },
  // Scanned, nothing merged yet: listed only with --all.
  { pid: 300, comm: 'idle', ksmStat: ksmStatText({ rmap: 100, zero: 0, merging: 0, profit: -6400, mergeAny: false, mergeable: true }) },
  // A kernel thread: zeros everywhere, never listed.
  { pid: 2, comm: 'kthreadd', ksmStat: ksmStatText({ rmap: 0, zero: 0, merging: 0, profit: 0, mergeAny: false, mergeable: false }) },
  // Kernel before 6.1: no ksm_stat at all.
  { pid: 400, comm: 'old' },
];

describe('node-ksm status (fixture tree)', () => {
  it('--json costs: cow_ksm and ksm_swpin_copy from vmstat, ksmd CPU from its schedstat, averaged over its life', async () => {
    const root = tree({}, [...PROCS, { pid: 38, comm: 'ksmd' }]);
    fs.writeFileSync(path.join(root, 'proc', 'vmstat'), 'nr_free_pages 100\ncow_ksm 1200\nksm_swpin_copy 3\n');
    fs.writeFileSync(path.join(root, 'proc', 'uptime'), '1000.50 1900.00\n');
    fs.writeFileSync(path.join(root, 'proc', '38', 'schedstat'), '20000000000 5000 40\n');
    // Started 0.5 s after boot (50 ticks): 1000 s of life.
    fs.writeFileSync(path.join(root, 'proc', '38', 'stat'), `38 (ksmd) S 2 0 0 0 -1 2129984 0 0 0 0 0 1900 0 0 25 5 1 0 50 0 0 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 0 0 0 0 3 0 0 0 0 0 0 0 0 0 0 0 0 0\n`);
    const result = await runCli(['--root', root, 'status', '--json']);
    expect(result.code, result.stderr).toBe(0);
    const { costs } = JSON.parse(result.stdout) as StatusJson;
    expect(costs).toEqual({
      cowKsm: 1200,
      ksmSwpinCopy: 3,
      ksmdPid: 38,
      ksmdCpuSeconds: 20,
      sinceKsmdStart: { seconds: 1000, cowKsmPerSecond: 1.2, ksmSwpinCopyPerSecond: 0.003, ksmdCpuPercent: 2 },
    });
    const text = await runCli(['--root', root, 'status']);
    expect(text.stdout).toMatch(/costs +CoW breaks \(cow_ksm\) 1,200, 1\.20\/s; swap-in copies 3; ksmd CPU 20(\.0)? s \(2\.00% of a CPU\)/);
  });

  it('--json costs without a ksmd or vmstat counters: null, never 0', async () => {
    const root = tree({}, PROCS);
    const result = await runCli(['--root', root, 'status', '--json']);
    expect((JSON.parse(result.stdout) as StatusJson).costs).toEqual({ cowKsm: null, ksmSwpinCopy: null, ksmdPid: null, ksmdCpuSeconds: null, sinceKsmdStart: null });
  });

  it('--json: scan time computed from the knobs and the kernel ratios', async () => {
    const root = tree({}, PROCS);
    const result = await runCli(['--root', root, 'status', '--json']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const status = JSON.parse(result.stdout) as StatusJson;
    expect(status.kind).toBe('node-ksm/status');
    expect(status.version).toBe(1);
    // The documented shape, key for key: a key removed or renamed is a version bump.
    expect(Object.keys(status).sort()).toEqual(
      ['by', 'costs', 'fairShare', 'generalProfitBytes', 'groups', 'kind', 'ksm', 'pageSize', 'pages', 'processes', 'ratios', 'savedBytes', 'scan', 'stalled', 'time', 'unreadable', 'version'],
    );
    expect(Object.keys(status.ksm).sort()).toEqual(
      ['advisorMode', 'advisorTargetScanTimeSec', 'fullScans', 'maxPageSharing', 'pagesToScan', 'run', 'runState', 'sleepMillisecs', 'smartScan', 'useZeroPages'],
    );
    expect(Object.keys(status.processes[0]!).sort()).toEqual(
      ['comm', 'mergeAny', 'mergedBytes', 'mergingPages', 'pid', 'processProfitBytes', 'rmapItems', 'savedBytes', 'savedExact', 'zeroPages'],
    );
    expect(status.ksm).toMatchObject({ run: 1, runState: 'running', pagesToScan: 1000, sleepMillisecs: 20, advisorMode: 'none', fullScans: 42 });
    // 1000 + 9000 + 3000 + 2000 pages at 1000 pages / 20 ms = 50,000 pages/s.
    expect(status.scan).toEqual({ candidatePages: 15000, pagesPerSecond: 50000, fullScanSeconds: 0.3 });
    expect(status.pages).toEqual({ shared: 1000, sharing: 9000, unshared: 3000, volatile: 2000, zero: 0 });
    expect(status.ratios.sharingPerShared).toBe(9);
    expect(status.ratios.unsharedPerSharing).toBeCloseTo(3000 / 9000, 12);
    expect(status.ratios.volatileShare).toBeCloseTo(2000 / 15000, 12);
    expect(status.savedBytes).toBe(9000 * status.pageSize!);
    expect(status.generalProfitBytes).toBe(9000 * 4096 - 15000 * 64);
    // Only processes that merge, largest first; the rest are absent.
    expect(status.processes.map((p) => [p.pid, p.comm])).toEqual([
      [200, 'cache node'],
      [100, 'api-worker'],
    ]);
    expect(status.processes[0]).toMatchObject({ mergingPages: 6000, zeroPages: 10, rmapItems: 9000, mergeAny: false });
    // The fair share is profit()'s, estimated from Pss in a tree without pagemap.
    expect(status.fairShare).toBe('estimated');
    for (const p of status.processes) {
      const report = await profit(p.pid, { root });
      expect(p.savedBytes).toBe(report.total.savedBytes);
      expect(p.mergedBytes).toBe(report.total.mergedBytes);
      expect(p.savedExact).toBe(false);
    }
    expect(status.processes[0]!.mergedBytes).toBe(2 * 1024 * 1024);
    expect(status.processes[0]!.savedBytes).toBeGreaterThan(status.processes[1]!.savedBytes!);
    expect(status.unreadable).toEqual([]);
  });

  it('--all lists processes KSM scans that merged nothing yet', async () => {
    const root = tree({}, PROCS);
    const status = JSON.parse((await runCli(['--root', root, 'status', '--all', '--json'])).stdout) as StatusJson;
    expect(status.processes.map((p) => p.pid).sort()).toEqual([100, 200, 300]);
  });

  it('prints the figures for people, and labels ksm_process_profit as not a sum', async () => {
    const root = tree({ run: '0' }, PROCS);
    const result = await runCli(['--root', root, 'status']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/KSM\s+stopped \(run=0\)/);
    expect(result.stdout).toContain('1,000 pages every 20 ms = 50,000 pages/s');
    expect(result.stdout).toContain('one full scan of 15,000 pages takes 300 ms');
    expect(result.stdout).toContain('sharing/shared 9.00');
    expect(result.stdout).toMatch(/200\s+cache node/);
    expect(result.stdout).toContain('do not add these up');
    expect(result.stdout).toContain('(by fair-share saving, estimated)');
    expect(result.stdout).toMatch(/200\s+cache node\s+[\d.]+ MiB\s+2\.0 MiB/);
    expect(result.stdout).not.toContain('\x1b['); // NO_COLOR and a pipe: no escapes
  });

  it('sleep_millisecs 0: the scan time is unknown, not infinite', async () => {
    const root = tree({ sleep_millisecs: '0' });
    const status = JSON.parse((await runCli(['--root', root, 'status', '--json'])).stdout) as StatusJson;
    expect(status.scan).toEqual({ candidatePages: 15000, pagesPerSecond: null, fullScanSeconds: null });
  });

  it('a kernel without the advisor and with fields missing still reports what it has', async () => {
    const root = tree({ advisor_mode: undefined, pages_volatile: undefined, general_profit: undefined }, PROCS);
    const status = JSON.parse((await runCli(['--root', root, 'status', '--json'])).stdout) as StatusJson;
    expect(status.ksm.advisorMode).toBeNull();
    expect(status.scan.candidatePages).toBeNull();
    expect(status.generalProfitBytes).toBeNull();
    expect(status.pages.sharing).toBe(9000);
  });

  it('no CONFIG_KSM: an error on stderr and exit code 1', async () => {
    const root = tree();
    fs.rmSync(path.join(root, 'sys'), { recursive: true });
    const result = await runCli(['--root', root, 'status']);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^node-ksm: error: KSM is not supported here: .*CONFIG_KSM/);
    const json = await runCli(['--root', root, 'status', '--json']);
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stderr)).toMatchObject({ error: { code: 'ERR_KSM_UNSUPPORTED' } });
  });
});

describe('node-ksm top (no terminal)', () => {
  it('--json prints one document per refresh with measured rates from the second on', async () => {
    const root = tree({}, PROCS);
    const result = await runCli(['--root', root, 'top', '--iterations', '2', '--interval', '100ms', '--json']);
    expect(result.code).toBe(0);
    const lines = result.stdout.trim().split('\n').map((line) => JSON.parse(line) as TopJson);
    expect(lines).toHaveLength(2);
    expect(lines[0]!.kind).toBe('node-ksm/top');
    expect(lines[0]!.rates).toBeNull();
    // The fixture does not move: zero pages visited, zero scans.
    expect(lines[1]!.rates).toMatchObject({ pagesScannedPerSecond: 0, fullScans: 0, pagesSharingPerSecond: 0, ksmdCpuPercent: null, cowKsmPerSecond: null, ksmSwpinCopyPerSecond: null });
    expect(lines[1]!.rates!.intervalSec).toBeGreaterThan(0);
    expect(Object.keys(lines[1]!.rates!).sort()).toEqual(['cowKsmPerSecond', 'fullScans', 'intervalSec', 'ksmSwpinCopyPerSecond', 'ksmdCpuPercent', 'pagesScannedPerSecond', 'pagesSharingPerSecond']);
    expect(lines[1]!.processes.map((p) => p.pid)).toEqual([200, 100]);
  });
});

describe('node-ksm tune (fixture tree)', () => {
  it('writes the knobs and prints before and after', async () => {
    const root = tree();
    const result = await runCli(['--root', root, 'tune', '--pages-to-scan', '4321', '--sleep-millisecs', '15', '--use-zero-pages', 'on', '--json']);
    expect(result.stderr).toBe('');
    const tune = JSON.parse(result.stdout) as TuneJson;
    expect(tune).toMatchObject({ kind: 'node-ksm/tune', version: 1, mode: 'knobs', steps: null, restored: null });
    expect(Object.keys(tune).sort()).toEqual(['changes', 'kind', 'mode', 'restored', 'steps', 'version']);
    expect(tune.changes).toEqual(
      expect.arrayContaining([
        { knob: 'pagesToScan', file: 'pages_to_scan', before: 1000, after: 4321 },
        { knob: 'sleepMillisecs', file: 'sleep_millisecs', before: 20, after: 15 },
        { knob: 'useZeroPages', file: 'use_zero_pages', before: false, after: true },
      ]),
    );
    expect(sysfsFile(root, 'pages_to_scan')).toBe('4321');
    expect(sysfsFile(root, 'use_zero_pages')).toBe('1');

    const text = await runCli(['--root', root, 'tune', '--pages-to-scan', '100']);
    expect(text.stdout).toMatch(/pages_to_scan\s+4321\s+100/);
  });

  it('refuses bad values before writing anything (exit 2 for usage)', async () => {
    const root = tree();
    for (const args of [['--run', '5'], ['--max-page-sharing', '1'], ['--use-zero-pages', 'maybe'], ['--pages-to-scan', '-3'], ['--advisor-mode', 'fast']]) {
      const result = await runCli(['--root', root, 'tune', '--sleep-millisecs', '99', ...args]);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr).toContain('node-ksm: error:');
    }
    expect(sysfsFile(root, 'sleep_millisecs')).toBe('20');
  });

  it('--target-scan-time uses the kernel advisor where advisor_mode offers scan-time', async () => {
    const root = tree();
    const result = await runCli(['--root', root, 'tune', '--target-scan-time', '2m', '--max-cpu', '30', '--json']);
    expect(result.code).toBe(0);
    expect((JSON.parse(result.stdout) as TuneJson).mode).toBe('advisor');
    expect(sysfsFile(root, 'advisor_mode')).toBe('scan-time');
    expect(sysfsFile(root, 'advisor_target_scan_time')).toBe('120');
    expect(sysfsFile(root, 'advisor_max_cpu')).toBe('30');
  });

  it('without the advisor (before 6.8), --target-scan-time runs the userspace controller and restores', async () => {
    const root = tree({ advisor_mode: undefined, pages_to_scan: '777' });
    const result = await runCli(['--root', root, 'tune', '--target-scan-time', '60s', '--interval', '100ms', '--duration', '450ms', '--json']);
    expect(result.code).toBe(0);
    const tune = JSON.parse(result.stdout) as TuneJson;
    expect(tune.mode).toBe('userspace');
    expect(tune.steps!.length).toBeGreaterThanOrEqual(2);
    // The fixture's counters do not move: nothing observed, nothing changed.
    expect(tune.steps!.every((step) => step.decidedBy === 'hold' && step.pagesToScanAfter === 777)).toBe(true);
    expect(tune.restored).toEqual([{ knob: 'pagesToScan', file: 'pages_to_scan', before: 777, after: 777 }]);
    expect(result.stderr).toContain('userspace scan-time controller: target 1 min');
  });

  it('without options prints every knob', async () => {
    const root = tree();
    const tune = JSON.parse((await runCli(['--root', root, 'tune', '--json'])).stdout) as TuneJson;
    expect(tune.mode).toBe('show');
    expect(tune.changes.find((c) => c.file === 'pages_to_scan')).toEqual({ knob: 'pagesToScan', file: 'pages_to_scan', before: 1000, after: 1000 });
  });
});

describe('node-ksm help and usage', () => {
  it('--help names every command, and each command documents --json', async () => {
    const top = await runCli(['--help']);
    expect(top.code).toBe(0);
    for (const command of ['status', 'top', 'regions', 'doctor', 'estimate', 'tune', 'exporter', 'demo']) {
      expect(top.stdout).toContain(command);
      const help = await runCli([command, '--help']);
      expect(help.code, command).toBe(0);
      expect(help.stdout, command).toContain('--json');
      expect(help.stdout, command).toContain(`Usage: node-ksm ${command}`);
    }
    expect((await runCli(['--version'])).stdout.trim()).toBe(JSON.parse(fs.readFileSync(path.join(DIST, '..', '..', 'package.json'), 'utf8')).version);
  });

  it('unknown commands and options exit 2 with the error on stderr', async () => {
    const unknown = await runCli(['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("unknown command 'frobnicate'");
    const option = await runCli(['status', '--bogus']);
    expect(option.code).toBe(2);
    expect(option.stderr).toContain("unknown option '--bogus'");
    const pid = await runCli(['regions', 'abc']);
    expect(pid.code).toBe(2);
    expect(pid.stderr).toContain('pid');
  });
});

describe('node-ksm status (real kernel)', () => {
  it('lists processes that merge with the kernel\'s ksm_stat figures', async (ctx) => {
    requireKsm(ctx);
    const spec = JSON.stringify({ mode: 'alloc', size: 8 * 1024 * 1024, seed: 77 });
    holders = await Promise.all([startFixture('holder.cjs', [spec]), startFixture('holder.cjs', [spec])]);
    await untilKsm(() => holders.every((h) => Number(rawKsmStat(h.pid).ksm_merging_pages) >= (8 * 1024 * 1024) / PAGE), 'both holders merging their buffers');
    const result = await runCli(['status', '--json']);
    expect(result.code).toBe(0);
    const status = JSON.parse(result.stdout) as StatusJson;
    expect(status.ksm.runState).toBe('running');
    expect(status.scan.candidatePages).toBeGreaterThan(0);
    for (const holder of holders) {
      const listed = status.processes.find((p) => p.pid === holder.pid);
      expect(listed, `pid ${holder.pid} listed`).toBeDefined();
      const raw = rawKsmStat(holder.pid);
      // Both holders' buffers merged fully before the read and stay merged.
      expect(listed!.mergingPages).toBe(Number(raw.ksm_merging_pages));
      expect(listed!.mergingPages).toBeGreaterThanOrEqual((8 * 1024 * 1024) / status.pageSize!);
      expect(listed!.comm).toBe(fs.readFileSync(`/proc/${holder.pid}/comm`, 'utf8').trim());
      // Two mappers of each KSM page: each holder's fair share is half its buffer, page-exact as root.
      expect(listed!.savedExact).toBe(true);
      expect(listed!.savedBytes).toBeGreaterThanOrEqual((8 * 1024 * 1024) / 2);
    }
    expect(status.fairShare).toBe('exact');
    const text = await runCli(['status']);
    expect(text.stdout).toMatch(new RegExp(`${holders[0]!.pid}\\s+node`));

    // top measures ksmd at work: it visits the holders' pages and uses CPU.
    const top = await runCli(['top', '-n', '2', '-i', '300ms', '--json']);
    const second = JSON.parse(top.stdout.trim().split('\n')[1]!) as TopJson;
    expect(second.rates!.pagesScannedPerSecond).toBeGreaterThan(0);
    expect(second.rates!.ksmdCpuPercent).not.toBeNull();
    // This machine's vmstat has cow_ksm: a measured rate, never null.
    expect(second.rates!.cowKsmPerSecond).not.toBeNull();
    expect(second.rates!.cowKsmPerSecond).toBeGreaterThanOrEqual(0);
    expect(second.processes.some((p) => p.pid === holders[0]!.pid)).toBe(true);
  });
});

// node-ksm demo: test/demo.test.ts runs it through its front door, `npm run demo`.

const FIXTURES_DIR = path.join(__dirname, 'fixtures');

describe('node-ksm doctor', () => {
  it('a kernel without CONFIG_KSM: the error finding with its fix, exit code 1', async () => {
    const root = path.join(FIXTURES_DIR, 'doctor', 'no-ksm');
    const json = await runCli(['--root', root, 'doctor', '--json']);
    expect(json.code).toBe(1);
    const doc = JSON.parse(json.stdout) as DoctorJson;
    expect(doc).toMatchObject({ kind: 'node-ksm/doctor', version: 1, pid: null, counts: { error: 1, warn: 0, info: 0 } });
    expect(doc.findings[0]).toMatchObject({ code: 'KSM_NOT_BUILT', severity: 'error' });
    const text = await runCli(['--root', root, 'doctor']);
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(/^ERROR KSM_NOT_BUILT {2}/);
    expect(text.stdout).toContain('fix: ');
    expect(text.stdout).toContain('1 error, 0 warning, 0 info');
  });

  it('warnings only (a busy host): exit code 0, evidence with the file it came from', async () => {
    const root = path.join(FIXTURES_DIR, 'doctor', 'busy');
    const text = await runCli(['--root', root, 'doctor']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^WARN {2}SCAN_TOO_SLOW/m);
    expect(text.stdout).toMatch(/evidence: .*\(\/sys\/kernel\/mm\/ksm\//);
    const doc = JSON.parse((await runCli(['--root', root, 'doctor', '--json'])).stdout) as DoctorJson;
    expect(doc.counts.error).toBe(0);
    expect(doc.findings.map((f) => f.code)).toContain('SCAN_TOO_SLOW');
  });

  it('KSM stopped in a container: errors first, read-only /sys named', async () => {
    const root = path.join(FIXTURES_DIR, 'doctor', 'readonly-sys');
    const doc = JSON.parse((await runCli(['--root', root, 'doctor', '--json'])).stdout) as DoctorJson;
    expect(doc.findings.map((f) => f.code)).toEqual(expect.arrayContaining(['KSM_STOPPED', 'SYSFS_READ_ONLY']));
    expect(doc.findings[0]!.severity).toBe('error');
  });

  it('examines a real merging process (--pid)', async (ctx) => {
    requireKsm(ctx);
    const spec = JSON.stringify({ mode: 'alloc', size: 4 * 1024 * 1024, seed: 31 });
    holders = await Promise.all([startFixture('holder.cjs', [spec]), startFixture('holder.cjs', [spec])]);
    await untilKsm(() => holders.every((h) => Number(rawKsmStat(h.pid).ksm_merging_pages) >= (4 * 1024 * 1024) / PAGE), 'both holders merging their buffers');
    const result = await runCli(['doctor', '--pid', String(holders[0]!.pid), '--json']);
    const doc = JSON.parse(result.stdout) as DoctorJson;
    expect(doc.pid).toBe(holders[0]!.pid);
    expect(result.code).toBe(doc.counts.error > 0 ? 1 : 0);
    const merging = doc.findings.find((f) => f.code === 'MERGING');
    expect(merging, JSON.stringify(doc.findings.map((f) => f.code))).toBeDefined();
    expect(merging!.evidence).toEqual(
      expect.arrayContaining([expect.objectContaining({ key: 'ksm_merging_pages', source: `/proc/${holders[0]!.pid}/ksm_stat` })]),
    );
  });
});

describe('node-ksm estimate (real kernel)', () => {
  it('predicts the saving of two processes holding the same bytes, per VMA', async (ctx) => {
    requireKsm(ctx);
    const size = 4 * 1024 * 1024;
    const spec = JSON.stringify({ mode: 'alloc', size, seed: 47 });
    holders = await Promise.all([startFixture('holder.cjs', [spec]), startFixture('holder.cjs', [spec])]);
    const pids = holders.map((h) => h.pid);
    const result = await runCli(['estimate', ...pids.map(String), '--json']);
    expect(result.code, result.stderr).toBe(0);
    const doc = JSON.parse(result.stdout) as EstimateJson & { report: { processes: Array<{ pid: number; vmas: Array<{ start: string; end: string; twinInOtherProcess: number; mergeable: boolean }> }> } };
    expect(doc).toMatchObject({ kind: 'node-ksm/estimate', version: 1, pids });
    // Every page of each buffer has its twin in the other process: at least size saved.
    expect(doc.report.predictedSavedBytes).toBeGreaterThanOrEqual(size);
    for (const holder of holders) {
      const p = doc.report.processes.find((q) => q.pid === holder.pid)!;
      const start = holder.ready.start as bigint;
      const vma = p.vmas.find((v) => BigInt(v.start) <= start && BigInt(v.end) > start)!;
      expect(vma.mergeable).toBe(true);
      expect(vma.twinInOtherProcess).toBeGreaterThanOrEqual(size / PAGE);
    }
    // For people: the holder's buffer row and the total.
    const text = await runCli(['estimate', ...pids.map(String), '--no-progress']);
    expect(text.stdout).toContain(`pid ${pids[0]}`);
    expect(text.stdout).toMatch(/predicted saving \d/);
  });

  it('a pid that does not exist: error on stderr, exit 1', async () => {
    const pid = unusedPid();
    const result = await runCli(['estimate', String(pid)]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(new RegExp(`node-ksm: error: .*${pid}`));
  });
});

describe('node-ksm regions', () => {
  it('a fixture process: its regions with the fair share, and the JSON shape', async () => {
    const root = tree({}, PROCS);
    const json = await runCli(['--root', root, 'regions', '200', '--json']);
    expect(json.code, json.stderr).toBe(0);
    const doc = JSON.parse(json.stdout) as { kind: string; version: number; pid: number; report: { method: string; regions: Array<{ start: string; mergedBytes: number }>; total: { mergedBytes: number } } };
    expect(doc).toMatchObject({ kind: 'node-ksm/regions', version: 1, pid: 200 });
    expect(doc.report.method).toBe('estimated');
    expect(doc.report.regions[0]!.start).toBe('0x7f0000000000');
    expect(doc.report.total.mergedBytes).toBe(2 * 1024 * 1024);
    const text = await runCli(['--root', root, 'regions', '200']);
    expect(text.stdout).toMatch(/7f0000000000-7f0000400000\s+anonymous/);
    expect(text.stdout).toMatch(/total {2}merged 2\.0 MiB {2}saved/);
  });

  it('a real process holding a labelled buffer: the label, merged and saved per region', async (ctx) => {
    requireKsm(ctx);
    const size = 4 * 1024 * 1024;
    const spec = JSON.stringify({ mode: 'alloc', size, seed: 63 });
    holders = await Promise.all([startFixture('holder.cjs', [spec]), startFixture('holder.cjs', [spec])]);
    // Both buffers merged, read raw (slow processes, e.g. under test:asan, may need more than two scans).
    await untilKsm(
      () => holders.every((h) => rawSmapsRange(h.pid, h.ready.start as bigint, h.ready.end as bigint).ksmBytes >= size),
      'the two buffers to merge',
    );
    const pid = holders[0]!.pid;
    const doc = JSON.parse((await runCli(['regions', String(pid), '--json'])).stdout) as { report: { method: string; regions: Array<{ start: string; end: string; mergedBytes: number; savedBytes: number }> } };
    expect(doc.report.method).toBe('exact');
    const start = holders[0]!.ready.start as bigint;
    const region = doc.report.regions.find((r) => BigInt(r.start) <= start && BigInt(r.end) > start)!;
    expect(region.mergedBytes).toBe(size);
    expect(region.savedBytes).toBe(size / 2);
    const text = await runCli(['regions', String(pid)]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`${start.toString(16)}-`);
    expect(text.stdout).toContain('(exact)');
  });

  it('a pid that does not exist: exit 1, error on stderr', async () => {
    const pid = unusedPid();
    const result = await runCli(['regions', String(pid)]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`no such process: ${pid}`);
  });
});
