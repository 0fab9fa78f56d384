/**
 * Fault paths with real conditions: a process exiting while it is read, a
 * sysfs write without root, madvise over a mapping with a hole in it. Each
 * gives a clear error, and nothing is lost or corrupted.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { KsmNoSuchProcessError, ksmStat } from '../../lib/index.js';
import { requireKsm, sysfsNumber } from '../helpers/ksm.js';
import { buildNativeFixture } from '../helpers/native.js';
import { packageForNobody } from '../helpers/nobody.js';
import { requireTool } from '../helpers/tools.js';
import { HARDENING_FIXTURES, runFixture } from './helpers.js';

/** The environment for programs that must not run under the sanitizers (sleep). */
function plainEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.LD_PRELOAD;
  delete env.ASAN_OPTIONS;
  delete env.LSAN_OPTIONS;
  delete env.UBSAN_OPTIONS;
  return env;
}

describe('/proc read racing with process exit', () => {
  it('ksmStat(pid) of a process that exits mid-read gives a whole stat or KsmNoSuchProcessError, never a half-empty one', async (ctx) => {
    requireKsm(ctx);
    const outcomes = new Map<string, number>();
    for (let i = 0; i < 25; i++) {
      const child = spawn('sleep', ['0.02'], { stdio: 'ignore', env: plainEnv() });
      const exited = new Promise((resolve) => child.once('exit', resolve));
      const pid = child.pid!;
      for (;;) {
        let key: string;
        try {
          const stat = ksmStat(pid);
          key = `stat missing=[${stat.missing.join(',')}]`;
        } catch (error) {
          key = `${(error as Error).name} ${(error as { code?: string }).code}`;
          if (error instanceof KsmNoSuchProcessError) {
            expect(error.pid).toBe(pid);
            outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
            break;
          }
        }
        outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
        await new Promise((resolve) => setImmediate(resolve));
      }
      await exited;
    }
    // This kernel has every ksm_stat field: a live process misses none; the
    // zombie (empty ksm_stat) and the reaped one are "no such process".
    expect([...outcomes.keys()].sort()).toEqual(['KsmNoSuchProcessError ERR_KSM_NO_SUCH_PROCESS', 'stat missing=[]']);
    expect(outcomes.get('KsmNoSuchProcessError ERR_KSM_NO_SUCH_PROCESS')).toBe(25);
  });

  it('fixture trees: a zombie (state Z) or exiting (PF_EXITING) process with an empty ksm_stat is KsmNoSuchProcessError; a live process with neither file degrades', () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'node-ksm-race-'));
    try {
      const zombie = path.join(root, 'proc', '300');
      fs.mkdirSync(zombie, { recursive: true });
      fs.writeFileSync(path.join(zombie, 'stat'), '300 (a (b) c) Z 1 300 300 0 -1 4194564 0 0 0 0 0 0\n');
      fs.writeFileSync(path.join(zombie, 'ksm_stat'), '');
      expect(() => ksmStat(300, { root })).toThrow(KsmNoSuchProcessError);

      // Exiting: ksm_stat already empty (exit_mm done), still state R but PF_EXITING (0x4) in flags.
      const exiting = path.join(root, 'proc', '301');
      fs.mkdirSync(exiting, { recursive: true });
      fs.writeFileSync(path.join(exiting, 'stat'), '301 (node) R 1 301 301 0 -1 4194564 0 0 0 0 0 0\n');
      fs.writeFileSync(path.join(exiting, 'ksm_stat'), '');
      expect(() => ksmStat(301, { root })).toThrow(expect.objectContaining({ code: 'ERR_KSM_NO_SUCH_PROCESS', message: 'no such process: 301' }));

      // An old kernel: a live process (state S) without ksm_stat or ksm_merging_pages.
      const old = path.join(root, 'proc', '302');
      fs.mkdirSync(old, { recursive: true });
      fs.writeFileSync(path.join(old, 'stat'), '302 (node) S 1 302 302 0 -1 4194560 0 0 0 0 0 0\n');
      expect(ksmStat(302, { root })).toMatchObject({ source: 'none', mergingPages: undefined });
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('sysfs write refused', () => {
  it('EACCES for a non-root process (uid nobody): clear hint, nothing written; root\'s ksm_stat is EACCES too', async (ctx) => {
    requireKsm(ctx);
    const pkg = packageForNobody(ctx);
    const before = { sleep: sysfsNumber('sleep_millisecs'), pages: sysfsNumber('pages_to_scan') };
    const run = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [path.join(pkg.hardeningFixtures, 'nobody.cjs'), String(process.pid)], { ...pkg.as, env: pkg.env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
      child.once('error', reject);
      child.once('close', (code) => resolve({ code, stdout, stderr }));
    });
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
    const result = JSON.parse(run.stdout) as Record<string, Record<string, unknown>>;
    expect(result.uid).toBe(65534);
    // Reading works without root.
    expect(result.read).toEqual({ run: 1, pagesToScan: before.pages });
    expect(result.write).toMatchObject({
      name: 'Error',
      code: 'EACCES',
      errno: -13,
      syscall: 'open',
      hint: 'writing /sys/kernel/mm/ksm needs root',
      written: [],
    });
    expect(result.write!.message).toMatch(/^EACCES: permission denied, open '\/sys\/kernel\/mm\/ksm\/(pages_to_scan|sleep_millisecs)' \(writing \/sys\/kernel\/mm\/ksm needs root\)$/);
    expect(result.rootProcess).toMatchObject({ code: 'EACCES', hint: `reading /proc/${process.pid} of another user's process needs root or the same uid` });
    expect({ sleep: sysfsNumber('sleep_millisecs'), pages: sysfsNumber('pages_to_scan') }).toEqual(before);
  });
});

describe('madvise over a mapping with a hole', () => {
  it('ENOMEM with a hint; the mapped parts are still advised and every byte around the hole is intact', async (ctx) => {
    requireKsm(ctx);
    // The hole is real: the child munmaps one page of its buffer through a
    // test-only addon built here (JavaScript cannot make one, and the
    // package's addon has no test-only code).
    requireTool(ctx, 'cc', 'gcc');
    const helper = buildNativeFixture(path.join(HARDENING_FIXTURES, 'unmap-range.c'), { addon: true });
    const run = await runFixture('hole.cjs', [helper.file]).finally(() => helper.remove());
    expect({ code: run.code, signal: run.signal, stderr: run.stderr }).toEqual({ code: 0, signal: null, stderr: '' });
    const r = run.result!;
    expect(r.unmapError).toBe(0);
    // Two VMAs left, 8 and 7 pages, around the hole.
    expect(r.before).toEqual([{ pages: 8, mg: true }, { pages: 7, mg: true }]);
    const enomem = {
      code: 'ENOMEM',
      errno: -12,
      syscall: 'madvise',
      hint: 'part of the range is not mapped, or the kernel is out of memory',
      message: 'ENOMEM: cannot allocate memory, madvise (part of the range is not mapped, or the kernel is out of memory)',
    };
    expect(r.unmark).toEqual({ name: 'Error', ...enomem });
    // The kernel still advised the mapped parts: both sides lost `mg`...
    expect(r.afterUnmark).toEqual([{ pages: 8, mg: false }, { pages: 7, mg: false }]);
    expect(r.mark).toEqual({ name: 'Error', ...enomem });
    // ...and got it back.
    expect(r.afterMark).toEqual([{ pages: 8, mg: true }, { pages: 7, mg: true }]);
    expect(r.sensitive).toEqual({ name: 'Error', ...enomem });
    expect(r.intact).toBe(true);
  });
});

// EAGAIN (kernel ENOMEM inside madvise while unmerging) needs the kernel to fail an
// allocation; a memory cgroup at its limit OOM-kills instead of failing the
// fault. unmarkMergeable({ requireHeadroom: true }) is the guard against
// that: see unmerge.test.ts.
