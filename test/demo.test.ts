/**
 * `npm run demo` (package.json runs `node-ksm demo`), run as a child process
 * the way a user runs it, with small sizes. Per-process figures only: the
 * saving is the workers' own PSS, not a machine-wide delta other runs move.
 * Starting a stopped KSM for real is in demo.serial.test.ts; here it happens
 * against a private copy of /sys/kernel/mm/ksm.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

import { demoOptions } from '../lib/cli/demo/index.js';
import { demoKnobs, planKsm, type PlanContext, type PlanStat } from '../lib/cli/demo/plan.js';
import type { DemoResult } from '../lib/cli/demo/types.js';
import type { DemoJson } from '../lib/index.js';
import { KSM_DIR, alive, killDemos, npmDemo, npmDemoCommand, rawKnobs, shellStatus, start, until, workerPids, type RunningDemo } from './helpers/demo.js';
import { PAGE, needs, requireKsm } from './helpers/ksm.js';

const MiB = 1024 * 1024;

afterEach(killDemos);

describe('npm run demo', () => {
  it('shows two workers merging an 8 MiB table, saving about (N-1) x size', async (ctx) => {
    requireKsm(ctx);
    const run = await npmDemo(['--workers', '2', '--size', '8MiB', '--interval', '200ms', '--timeout', '120s']).done;
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const out = run.stdout;
    expect(out).toContain('2 workers x 8.0 MiB table');
    expect(out).toContain('perfect merging saves (N-1) x size = 8.0 MiB');
    expect(out).toMatch(/summary: settled in [\d.]+ s \(2 full scans after the last write\)/);
    expect(out).toContain('copy-on-write: every worker read back its table intact');
    // KSM ran already (the suite's knobs): used as it is, nothing put back.
    expect(out).toMatch(/^ {2}KSM: run=1 /m);
    expect(out).not.toContain('KSM knobs put back');

    // The final table: one row per worker, every table page merging.
    const pids = workerPids(out);
    expect(pids).toHaveLength(2);
    const tableStart = out.lastIndexOf('merging_pages');
    for (const pid of pids) {
      const row = new RegExp(`^\\s+${pid}\\s+(\\d+)\\s+([\\d.]+) MiB\\s+(\\d+)\\s+([\\d.]+) MiB\\s+([\\d.]+) MiB$`, 'm').exec(out.slice(tableStart));
      expect(row, `row of ${pid}`).not.toBeNull();
      // Two full scans merge all but the odd page a transient reference held back.
      expect(Number(row![1])).toBeGreaterThanOrEqual(0.98 * ((8 * MiB) / PAGE));
      expect(Number(row![4])).toBeCloseTo(8, 1); // table KSM
      expect(Number(row![5])).toBeCloseTo(4, 0); // table PSS: half of each page
    }
    const saved = /saved: ([\d.]+) MiB of ([\d.]+) MiB theoretical \(N-1\) x size \(([\d.]+)%\)/.exec(out);
    expect(saved).not.toBeNull();
    expect(Number(saved![2])).toBe(8);
    expect(Number(saved![1])).toBeGreaterThanOrEqual(0.9 * 8);
    expect(Number(saved![1])).toBeLessThanOrEqual(8);
    for (const pid of pids) expect(alive(pid)).toBe(false);
  });

  it('--json prints one DemoJson document: per-process merging and PSS add up to the saving', async (ctx) => {
    requireKsm(ctx);
    const run = await npmDemo(['-w', '3', '-s', '4MiB', '--seed', '12345', '--timeout', '120s', '--json']).done;
    expect(run.code, run.stderr).toBe(0);
    const doc = JSON.parse(run.stdout) as DemoJson & { result: DemoResult };
    expect(Object.keys(doc).sort()).toEqual(['kind', 'result', 'version']);
    expect(doc).toMatchObject({ kind: 'node-ksm/demo', version: 1 });
    const result = doc.result;
    // The live view went to stderr, the document alone to stdout.
    expect(run.stderr).toContain('3 workers x 4.0 MiB table (seed 12345)');
    expect(result).toMatchObject({ workers: 3, size: 4 * MiB, seed: 12345, theoreticalSaving: 8 * MiB, settled: true, intact: true, knobs: null });
    expect(result.processes).toHaveLength(3);
    const pages = (4 * MiB) / PAGE;
    let pss = 0;
    for (const p of result.processes) {
      expect(p.ksmStat.mergingPages).toBeGreaterThanOrEqual(0.98 * pages);
      expect(p.tableRss).toBe(4 * MiB);
      pss += p.tablePss;
    }
    expect(result.savedBytes).toBe(3 * 4 * MiB - pss);
    expect(result.savedBytes).toBeGreaterThanOrEqual(0.9 * result.theoreticalSaving);
    expect(result.savedRatio).toBeCloseTo(result.savedBytes / result.theoreticalSaving, 6);
    for (const p of result.processes) expect(alive(p.pid)).toBe(false);
  });

  it('takes the CLI\'s sizes and durations, and says what is wrong with exit code 2', async () => {
    const many = await npmDemo(['--workers', 'many']).done;
    expect(many.code).toBe(2);
    expect(many.stderr).toContain("--workers: 'many' is not an integer");
    // A bare number is bytes, as everywhere in the CLI.
    const bytes = await npmDemo(['--size', '8']).done;
    expect(bytes.code).toBe(2);
    expect(bytes.stderr).toContain(`--size: 8 bytes is less than a page (${PAGE} bytes); a size without a unit is bytes (e.g. 8MiB)`);
    const words = await npmDemo(['--size', 'lots']).done;
    expect(words.code).toBe(2);
    expect(words.stderr).toContain("--size: 'lots' is not a size");
    for (const run of [many, bytes, words]) expect(run.stdout).toBe('');
  });
});

/**
 * Runs `npm run demo` in a mount namespace where a writable copy of
 * /sys/kernel/mm/ksm (with `knobs` written over it) hides the real one: the
 * machine's knobs are never touched, and full_scans never moves, so the demo
 * waits until interrupted. Memory, /proc and smaps stay real.
 */
async function withPrivateSysfs(
  ctx: Parameters<typeof requireKsm>[0],
  knobs: Record<string, string>,
  body: (fake: string, startDemo: (args: string[]) => RunningDemo) => Promise<void>,
): Promise<void> {
  requireKsm(ctx);
  const probe = await start('unshare', ['-m', 'true']).done;
  needs(ctx, probe.code === 0, `a private mount namespace (unshare -m: ${probe.stderr.trim()})`);
  const fake = fs.mkdtempSync(path.join(os.tmpdir(), 'node-ksm-demo-sysfs-'));
  try {
    for (const name of fs.readdirSync(KSM_DIR)) fs.writeFileSync(path.join(fake, name), fs.readFileSync(path.join(KSM_DIR, name)));
    for (const [name, value] of Object.entries(knobs)) fs.writeFileSync(path.join(fake, name), `${value}\n`);
    const script = 'dir=$1; shift; mount --bind "$dir" /sys/kernel/mm/ksm && exec "$@"';
    const env = { ...process.env, npm_config_update_notifier: 'false' };
    await body(fake, (args) => {
      const [command, commandArgs] = npmDemoCommand(args);
      return start('unshare', ['-m', 'sh', '-c', script, 'sh', fake, command, ...commandArgs], { env });
    });
  } finally {
    fs.rmSync(fake, { recursive: true, force: true });
  }
}

/** A copy of the machine's counters would size the scan by what the rest of the suite holds. */
const NOTHING_SCANNED = { pages_shared: '0', pages_sharing: '0', pages_unshared: '0', pages_volatile: '0' };

/** Ctrl-C as a terminal sends it: to the whole job (npm, its shell, the demo). */
function interrupt(demo: RunningDemo): void {
  process.kill(-demo.child.pid!, 'SIGINT');
}

describe('npm run demo against a private copy of /sys/kernel/mm/ksm', () => {
  it('Ctrl-C where KSM runs: workers killed, exit 130, no knob touched', async (ctx) => {
    await withPrivateSysfs(ctx, { run: '1', advisor_mode: '[none] scan-time' }, async (fake, startDemo) => {
      const before = rawKnobs(fake);
      const demo = startDemo(['--workers', '2', '--size', '2MiB', '--timeout', '300s']);
      await until(() => /built their tables/.test(demo.stdout()), 'the workers');
      const pids = workerPids(demo.stdout());
      for (const pid of pids) expect(alive(pid)).toBe(true);
      interrupt(demo);
      const run = await demo.done;
      expect(shellStatus(run)).toBe(130);
      expect(run.stdout).toContain('SIGINT: stopping the workers\n');
      expect(run.stdout).not.toContain('KSM knobs');
      expect(rawKnobs(fake)).toEqual(before);
      for (const pid of pids) expect(alive(pid)).toBe(false);
    });
  });

  it('KSM stopped, as root: starts it in one line, and Ctrl-C puts every file back as it was', async (ctx) => {
    const original = { ...NOTHING_SCANNED, run: '0', pages_to_scan: '100', sleep_millisecs: '200', smart_scan: '1', advisor_mode: 'none [scan-time]' };
    await withPrivateSysfs(ctx, original, async (fake, startDemo) => {
      const before = rawKnobs(fake);
      const demo = startDemo(['--workers', '2', '--size', '2MiB', '--timeout', '300s']);
      await until(() => /built their tables/.test(demo.stdout()), 'the workers');
      const knob = (name: string): string => fs.readFileSync(path.join(fake, name), 'utf8').trim();
      expect({ run: knob('run'), pages_to_scan: knob('pages_to_scan'), sleep_millisecs: knob('sleep_millisecs'), smart_scan: knob('smart_scan'), advisor_mode: knob('advisor_mode') })
        .toEqual({ run: '1', pages_to_scan: '1000', sleep_millisecs: '20', smart_scan: '0', advisor_mode: 'none' });
      const said = demo.stdout().split('\n').filter((line) => /KSM/.test(line) && !line.startsWith('node-ksm demo:'));
      expect(said).toEqual([
        '  KSM was stopped (run=0): started it for the demo (advisor_mode scan-time -> none, pages_to_scan 100 -> 1000, ' +
          'sleep_millisecs 200 -> 20, smart_scan 1 -> 0, run 0 -> 1); every knob goes back on exit',
      ]);
      const pids = workerPids(demo.stdout());

      interrupt(demo);
      const run = await demo.done;
      expect(shellStatus(run)).toBe(130);
      expect(run.stderr).toBe('');
      expect(run.stdout).toContain('SIGINT: stopping the workers and putting the KSM knobs back');
      expect(run.stdout).toMatch(/^KSM knobs put back: pages_to_scan=100 sleep_millisecs=200 smart_scan=1 .*run=0$/m);
      // Byte for byte, but advisor_mode: a plain file keeps the bare word the kernel takes.
      expect(rawKnobs(fake)).toEqual({ ...before, advisor_mode: 'scan-time' });
      for (const pid of pids) expect(alive(pid)).toBe(false);
    });
  });

  it('--no-enable-ksm: says once why KSM is off and what to run, starts nothing', async (ctx) => {
    await withPrivateSysfs(ctx, { ...NOTHING_SCANNED, run: '0', pages_to_scan: '100', smart_scan: '1', advisor_mode: '[none] scan-time' }, async (fake, startDemo) => {
      const before = rawKnobs(fake);
      const run = await startDemo(['--no-enable-ksm', '--workers', '2', '--size', '2MiB']).done;
      expect(run.code).toBe(1);
      expect(run.stdout).toBe('');
      expect(run.stderr).toBe(
        'node-ksm: error: KSM is stopped (run=0), so nothing can merge, and --no-enable-ksm leaves it so. Start it yourself:\n' +
          '  echo 1000 > /sys/kernel/mm/ksm/pages_to_scan\n' +
          '  echo 0 > /sys/kernel/mm/ksm/smart_scan\n' +
          '  echo 1 > /sys/kernel/mm/ksm/run\n' +
          'or run `npm run demo -- --workers 2 --size 2MiB`: it starts KSM and puts every knob back on exit.\n',
      );
      expect(rawKnobs(fake)).toEqual(before);
    });
  });
});

describe('planKsm', () => {
  const stat: PlanStat = {
    run: 0, pagesToScan: 100, sleepMillisecs: 20, advisorMode: 'none', advisorTargetScanTimeSec: 200, smartScan: true,
    pagesShared: 0, pagesSharing: 0, pagesUnshared: 0, pagesVolatile: 0,
  };
  const context: PlanContext = { enableKsm: true, access: 'writable', demoPages: 4 * 16384, command: 'npm run demo' };

  it('runs on KSM as it is, with one note and the fix when settling would be slow', () => {
    expect(planKsm({ ...stat, run: 1, pagesToScan: 5000 }, { ...context, access: 'not-permitted' })).toEqual({ action: 'run', notes: [] });
    // 65,536 pages at 100 per 20 ms: 13 s a scan, three scans to settle.
    expect(planKsm({ ...stat, run: 1 }, { ...context, access: 'not-permitted' })).toEqual({
      action: 'run',
      notes: [
        'pages_to_scan=100 sleep_millisecs=20: a full scan takes ~13 s and settling ~39 s; faster, as root: ' +
          "sudo sh -c 'echo 1000 > /sys/kernel/mm/ksm/pages_to_scan && echo 0 > /sys/kernel/mm/ksm/smart_scan'",
      ],
    });
    // Other mergeable memory is scanned too.
    const busy = planKsm({ ...stat, run: 1, pagesToScan: 1000, smartScan: false, pagesUnshared: 1_000_000 }, context);
    expect(busy).toEqual({
      action: 'run',
      notes: ['pages_to_scan=1000 sleep_millisecs=20: a full scan takes ~21 s and settling ~64 s; faster, as root: echo 10656 > /sys/kernel/mm/ksm/pages_to_scan'],
    });
    const advisor = planKsm({ ...stat, run: 1, advisorMode: 'scan-time' }, context);
    expect(advisor.action === 'run' && advisor.notes).toEqual([
      'the scan-time advisor sets pages_to_scan for a 200 s full scan: settling may take ~600 s; faster, as root: ' +
        'echo none > /sys/kernel/mm/ksm/advisor_mode; echo 1000 > /sys/kernel/mm/ksm/pages_to_scan; echo 0 > /sys/kernel/mm/ksm/smart_scan',
    ]);
  });

  it('starts KSM where it may, writing only what differs and remembering what was', () => {
    expect(planKsm(stat, context)).toEqual({
      action: 'enable',
      knobs: { pagesToScan: 1000, smartScan: false, run: 1 },
      before: { pagesToScan: 100, smartScan: true, run: 0 },
    });
    expect(planKsm({ ...stat, advisorMode: 'scan-time', sleepMillisecs: 500, smartScan: false, pagesToScan: 4000 }, context)).toEqual({
      action: 'enable',
      knobs: { advisorMode: 'none', pagesToScan: 1000, sleepMillisecs: 20, run: 1 },
      before: { advisorMode: 'scan-time', pagesToScan: 4000, sleepMillisecs: 500, run: 0 },
    });
    // Faster than the demo needs already: only run changes.
    expect(demoKnobs({ ...stat, pagesToScan: 5000, smartScan: false }, context.demoPages)).toEqual({ knobs: { run: 1 }, before: { run: 0 } });
    // Bigger demos scan more per batch, up to 20,000.
    expect(demoKnobs(stat, 64 * 262144).knobs.pagesToScan).toBe(20_000);
  });

  it('otherwise says why and the exact commands, once', () => {
    const refused = (plan: ReturnType<typeof planKsm>): string => (plan.action === 'refuse' ? plan.message : `not refused: ${plan.action}`);
    expect(refused(planKsm(stat, { ...context, access: 'not-permitted', command: 'npm run demo -- -s 8MiB' }))).toBe(
      'KSM is stopped (run=0), so nothing can merge, and starting it needs root. Either run the demo as root ' +
        '(it starts KSM and puts every knob back on exit):\n' +
        '  sudo npm run demo -- -s 8MiB\n' +
        'or start KSM yourself:\n' +
        "  sudo sh -c 'echo 1000 > /sys/kernel/mm/ksm/pages_to_scan && echo 0 > /sys/kernel/mm/ksm/smart_scan && echo 1 > /sys/kernel/mm/ksm/run'",
    );
    // Not root and --no-enable-ksm: the same message (root is what is missing).
    expect(refused(planKsm(stat, { ...context, enableKsm: false, access: 'not-permitted' }))).toContain('starting it needs root');
    expect(refused(planKsm({ ...stat, run: 2 }, { ...context, access: 'read-only' }))).toBe(
      'KSM is unmerging (run=2), so nothing can merge, and /sys is read-only here (a container?). Start KSM on the host, as root:\n' +
        '  echo 1000 > /sys/kernel/mm/ksm/pages_to_scan\n  echo 0 > /sys/kernel/mm/ksm/smart_scan\n  echo 1 > /sys/kernel/mm/ksm/run',
    );
  });
});

describe('demo flags', () => {
  it('are the CLI\'s: sizes in bytes unless a unit says otherwise, durations, and KSM started unless --no-enable-ksm', () => {
    const argv = ['node', 'node-ksm', 'demo', '-s', '8MiB'];
    expect(demoOptions({ workers: '3', size: '8MiB', interval: '500ms', timeout: '1m', seed: '7' }, argv)).toEqual({
      enableKsm: true, command: 'node-ksm demo -s 8MiB', workers: 3, size: 8 * MiB, intervalMs: 500, timeoutMs: 60_000, seed: 7,
    });
    expect(demoOptions({ size: '16384' }, argv).size).toBe(16384);
    expect(demoOptions({ size: '1g' }, argv).size).toBe(1024 * MiB);
    expect(demoOptions({ enableKsm: false }, ['node', 'node-ksm', 'demo', '--no-enable-ksm', '--seed', "it's"]))
      .toMatchObject({ enableKsm: false, command: "node-ksm demo --seed 'it'\\''s'" });
    expect(() => demoOptions({ size: '8' }, argv)).toThrow(/less than a page/);
    expect(() => demoOptions({ size: '5GiB' }, argv)).toThrow(/more than 4GiB/);
    expect(() => demoOptions({ workers: '1' }, argv)).toThrow(/--workers: 1 is out of range \(2 to 64\)/);
    expect(() => demoOptions({ root: '/tmp' }, argv)).toThrow(/--root does not apply/);
  });
});
