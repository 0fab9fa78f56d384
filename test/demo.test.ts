/**
 * `npm run demo` (scripts/demo.mjs over lib/demo.ts), run as a child process
 * the way a user runs it, with small sizes. Per-process figures only: the
 * saving is the workers' own PSS, not a machine-wide delta other runs move.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

import { parseDemoArgs, parseSize, planKsm, type DemoResult } from '../lib/cli/demo/run.js';
import { PAGE, ROOT, needs, requireKsm } from './helpers/ksm.js';

const DEMO = path.join(ROOT, 'scripts', 'demo.mjs');
const MiB = 1024 * 1024;
const running: ChildProcess[] = [];

afterEach(() => {
  for (const child of running.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function start(command: string, args: string[]): { child: ChildProcess; done: Promise<Run>; output: () => string } {
  const child = spawn(command, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  running.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const done = new Promise<Run>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  return { child, done, output: () => stdout };
}

/**
 * Runs the demo on the real KSM. Other suites on this machine may stop KSM
 * for a moment (their serial tests of run=0); a run that failed for exactly
 * that reason, and no other, is run again once KSM is back.
 */
async function runOnRealKsm(args: string[]): Promise<Run> {
  for (let attempt = 1; ; attempt++) {
    const run = await start(process.execPath, [DEMO, ...args]).done;
    const stopped = run.code === 1 && /KSM is (not running|stopped)|KSM stopped while the demo ran/.test(run.stdout + run.stderr);
    if (!stopped || attempt === 3) return run;
    console.warn(`demo attempt ${attempt}: KSM was stopped by another run; retrying`);
    await until(() => fs.readFileSync('/sys/kernel/mm/ksm/run', 'utf8').trim() === '1', 'KSM to run again', 60_000);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(check: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function workerPids(stdout: string): number[] {
  const match = /workers ([\d, ]+) built their tables/.exec(stdout);
  if (!match) throw new Error(`no worker pids in:\n${stdout}`);
  return match[1]!.split(',').map((pid) => Number(pid.trim()));
}

describe('npm run demo', () => {
  it('shows two workers merging an 8 MiB table, saving about (N-1) x size', async (ctx) => {
    requireKsm(ctx);
    const run = await runOnRealKsm(['--workers', '2', '--size', '8', '--interval', '0.2', '--timeout', '120']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const out = run.stdout;
    expect(out).toContain('2 workers x 8.0 MiB table');
    expect(out).toContain('perfect merging saves (N-1) x size = 8.0 MiB');
    expect(out).toMatch(/summary: settled \(2 full scans after the last write\)/);
    expect(out).toContain('copy-on-write: every worker read back its table intact');

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

    // Workers are gone once the demo is.
    for (const pid of pids) expect(alive(pid)).toBe(false);
  });

  it('--json gives the result: per-process merging and PSS add up to the saving', async (ctx) => {
    requireKsm(ctx);
    const run = await runOnRealKsm(['-w', '3', '-s', '4M', '--seed', '12345', '--timeout', '120', '--json']);
    expect(run.code).toBe(0);
    const result = JSON.parse(run.stdout) as DemoResult;
    // Progress went to stderr, the JSON alone to stdout.
    expect(run.stderr).toContain('3 workers x 4.0 MiB table (seed 12345)');
    expect(result).toMatchObject({ workers: 3, size: 4 * MiB, seed: 12345, theoreticalSaving: 8 * MiB, settled: true, intact: true });
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

  it('rejects bad flags with the usage', async () => {
    const run = await start(process.execPath, [DEMO, '--workers', 'many']).done;
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('--workers');
    expect(run.stderr).toContain('Usage: npm run demo');
    const sizes = await start(process.execPath, [DEMO, '--size', '0']).done;
    expect(sizes.code).toBe(1);
    expect(sizes.stderr).toMatch(/options\.size.*out of range/);
  });
});

/**
 * Runs the demo in a mount namespace where a writable copy of
 * /sys/kernel/mm/ksm (with `knobs` written over it) hides the real one: the
 * machine's knobs are never touched, and full_scans never moves, so the demo
 * waits until interrupted. Memory, /proc and smaps stay real.
 */
async function withPrivateSysfs(
  ctx: Parameters<typeof requireKsm>[0],
  knobs: Record<string, string>,
  body: (fake: string, startDemo: (args: string[]) => ReturnType<typeof start>) => Promise<void>,
): Promise<void> {
  requireKsm(ctx);
  const probe = await start('unshare', ['-m', 'true']).done;
  needs(ctx, probe.code === 0, `a private mount namespace (unshare -m: ${probe.stderr.trim()})`);
  const fake = fs.mkdtempSync(path.join(os.tmpdir(), 'node-ksm-demo-sysfs-'));
  try {
    for (const name of fs.readdirSync('/sys/kernel/mm/ksm')) {
      fs.writeFileSync(path.join(fake, name), fs.readFileSync(path.join('/sys/kernel/mm/ksm', name)));
    }
    for (const [name, value] of Object.entries(knobs)) fs.writeFileSync(path.join(fake, name), `${value}\n`);
    const script = 'dir=$1; shift; mount --bind "$dir" /sys/kernel/mm/ksm && exec "$@"';
    await body(fake, (args) => start('unshare', ['-m', 'sh', '-c', script, 'sh', fake, process.execPath, DEMO, ...args]));
  } finally {
    fs.rmSync(fake, { recursive: true, force: true });
  }
}

describe('stopping, against a private copy of /sys/kernel/mm/ksm', () => {
  it('Ctrl-C kills the workers and exits 130', async (ctx) => {
    await withPrivateSysfs(ctx, { run: '1', advisor_mode: '[none] scan-time' }, async (fake, startDemo) => {
      const demo = startDemo(['--workers', '2', '--size', '2', '--timeout', '300']);
      await until(() => /built their tables/.test(demo.output()), 'the workers');
      const pids = workerPids(demo.output());
      for (const pid of pids) expect(alive(pid)).toBe(true);
      demo.child.kill('SIGINT');
      const run = await demo.done;
      expect(run.code).toBe(130);
      expect(run.stdout).toContain('SIGINT: stopping the workers');
      expect(run.stdout).not.toContain('restoring the KSM knobs');
      expect(fs.readFileSync(path.join(fake, 'run'), 'utf8').trim()).toBe('1');
      for (const pid of pids) expect(alive(pid)).toBe(false);
    });
  });

  it('--enable-ksm starts KSM where it is off, and restores every knob on Ctrl-C', async (ctx) => {
    const original = { run: '0', pages_to_scan: '100', sleep_millisecs: '200', advisor_mode: 'none [scan-time]' };
    await withPrivateSysfs(ctx, original, async (fake, startDemo) => {
      const knob = (name: string): string => fs.readFileSync(path.join(fake, name), 'utf8').trim();
      const demo = startDemo(['--enable-ksm', '--workers', '2', '--size', '2', '--timeout', '300']);
      await until(() => /built their tables/.test(demo.output()), 'the workers');
      // The fake's full_scans never moves, so the demo waits until interrupted.
      expect(demo.output()).toContain('KSM was not running: starting it for the demo');
      expect(knob('run')).toBe('1');
      expect(knob('advisor_mode')).toBe('none');
      expect(Number(knob('pages_to_scan'))).toBeGreaterThanOrEqual(1000);
      expect(knob('sleep_millisecs')).toBe('20');
      const pids = workerPids(demo.output());

      demo.child.kill('SIGINT');
      const run = await demo.done;
      expect(run.code).toBe(130);
      expect(run.stdout).toContain('KSM knobs restored');
      // The advisor file is written back as its bare mode name.
      expect({ run: knob('run'), pages_to_scan: knob('pages_to_scan'), sleep_millisecs: knob('sleep_millisecs'), advisor_mode: knob('advisor_mode') })
        .toEqual({ ...original, advisor_mode: 'scan-time' });
      for (const pid of pids) expect(alive(pid)).toBe(false);
    });
  });

  it('without --enable-ksm, says why KSM is off and what to run, and starts nothing', async (ctx) => {
    await withPrivateSysfs(ctx, { run: '0' }, async (fake, startDemo) => {
      const run = await startDemo(['--workers', '2', '--size', '2']).done;
      expect(run.code).toBe(1);
      expect(run.stdout).toContain('KSM is stopped (run=0)');
      expect(run.stdout).toContain('npm run demo -- --enable-ksm');
      expect(run.stdout).toContain('echo 1 > /sys/kernel/mm/ksm/run');
      expect(run.stdout).not.toContain('built their tables');
      expect(fs.readFileSync(path.join(fake, 'run'), 'utf8').trim()).toBe('0');
    });
  });
});

describe('planKsm', () => {
  const stat = { run: 0, pagesToScan: 100, sleepMillisecs: 20, advisorMode: 'none' } as const;
  const demoPages = 4 * 16384;

  it('runs as is where KSM runs, with a note when scans are slow', () => {
    expect(planKsm({ ...stat, run: 1, pagesToScan: 5000 }, { enableKsm: false, root: false, writable: false, demoPages })).toEqual({ action: 'run', notes: [] });
    const slow = planKsm({ ...stat, run: 1 }, { enableKsm: false, root: false, writable: false, demoPages });
    expect(slow.action).toBe('run');
    expect(slow.action === 'run' && slow.notes[0]).toMatch(/pages_to_scan=100.*~13 s/);
  });

  it('enables only when asked, as root, with /sys writable', () => {
    const plan = planKsm(stat, { enableKsm: true, root: true, writable: true, demoPages });
    expect(plan).toMatchObject({ action: 'enable', knobs: { run: 1, sleepMillisecs: 20, pagesToScan: 1000 } });
    expect(planKsm({ ...stat, advisorMode: 'scan-time' }, { enableKsm: true, root: true, writable: true, demoPages }))
      .toMatchObject({ action: 'enable', knobs: { advisorMode: 'none' } });
  });

  it('says why not and what to run otherwise', () => {
    const asked = planKsm(stat, { enableKsm: false, root: true, writable: true, demoPages });
    expect(asked).toMatchObject({ action: 'refuse', why: expect.stringContaining('stopped (run=0)') });
    expect(asked.action === 'refuse' && asked.fix.join('\n')).toContain('npm run demo -- --enable-ksm');

    const user = planKsm(stat, { enableKsm: true, root: false, writable: false, demoPages });
    expect(user).toMatchObject({ action: 'refuse', why: expect.stringContaining('needs root') });
    expect(user.action === 'refuse' && user.fix.join('\n')).toContain("sudo sh -c 'echo 1 > /sys/kernel/mm/ksm/run'");

    const container = planKsm({ ...stat, run: 2 }, { enableKsm: true, root: true, writable: false, demoPages });
    expect(container).toMatchObject({ action: 'refuse', why: expect.stringMatching(/unmerging \(run=2\).*read-only/) });
  });
});

describe('parseDemoArgs', () => {
  it('reads MiB by default and K/M/G suffixes', () => {
    expect(parseSize('64')).toBe(64 * MiB);
    expect(parseSize('512K')).toBe(512 * 1024);
    expect(parseSize('1GiB')).toBe(1024 * MiB);
    expect(() => parseSize('lots')).toThrow(RangeError);
    expect(parseDemoArgs(['-w', '3', '--size', '8', '--enable-ksm', '--interval', '0.5', '--timeout', '60'])).toEqual({
      options: { workers: 3, size: 8 * MiB, enableKsm: true, intervalMs: 500, timeoutMs: 60_000 },
      json: false,
      help: false,
    });
  });
});
