/**
 * Unmerging copies merged pages back. The preflight (dryRun) must say how
 * much, matching the rise measured in smaps; requireHeadroom must refuse,
 * changing nothing, when the cgroup cannot hold the copies.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { disableMerge, pageSize, unmarkMergeable } from '../../lib/index.js';
import { requireKsm, withAsanOptions } from '../helpers/ksm.js';
import { mergeAnyEnv, runFixture } from './helpers.js';

interface Preflight {
  bytes: number;
  pages: number;
  source: string;
  exact: boolean;
  headroom?: number;
  fits?: boolean;
}

/** A fresh memory cgroup below this process's own, v1 or v2; undefined with the reason when it cannot be made. */
function makeMemoryCgroup(): { dir: string } | { reason: string } {
  const lines = fs.readFileSync('/proc/self/cgroup', 'utf8').split('\n');
  const v1 = lines.map((line) => /^\d+:([^:]*):(.*)$/.exec(line)).find((m) => m && m[1]!.split(',').includes('memory'));
  const v2 = lines.map((line) => /^0::(.*)$/.exec(line)).find(Boolean);
  let parent: string | undefined;
  if (v1) parent = path.join('/sys/fs/cgroup/memory', v1[2]!);
  else if (v2 && fs.existsSync(path.join('/sys/fs/cgroup', v2[1]!, 'cgroup.subtree_control'))) {
    parent = path.join('/sys/fs/cgroup', v2[1]!);
    if (!fs.readFileSync(path.join(parent, 'cgroup.subtree_control'), 'utf8').includes('memory')) {
      return { reason: `the memory controller is not enabled below ${parent}` };
    }
  }
  if (parent === undefined || !fs.existsSync(parent)) return { reason: 'no memory cgroup of this process is mounted' };
  const dir = path.join(parent, `node-ksm-test-${process.pid}-${Date.now()}`);
  try {
    fs.mkdirSync(dir);
  } catch (error) {
    return { reason: `cannot create a memory cgroup in ${parent}: ${(error as Error).message}` };
  }
  return { dir };
}

describe('unmerge preflight', () => {
  it('unmarkMergeable({ dryRun }) reports exactly the rise in private memory that unmerging then causes, and changes nothing', async (ctx) => {
    requireKsm(ctx);
    const run = await runFixture('unmerge.cjs', ['range']);
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
    const r = run.result as { preflight: Preflight; dryLength: number; realLength: number; ksmAfterDry: number; rise: number; ksmAfter: number; intact: boolean };
    const size = 8 << 20;
    // Dry run: the range it would cover, and the merged pages still merged.
    expect(r.dryLength).toBe(size);
    expect(r.ksmAfterDry).toBeGreaterThanOrEqual(size - 4 * pageSize());
    expect(r.preflight.exact).toBe(true);
    expect(r.preflight.bytes).toBe(r.preflight.pages * pageSize());
    expect(r.preflight.bytes).toBeGreaterThanOrEqual(size - 4 * pageSize());
    // The figure is the measured rise of Private_Clean + Private_Dirty over the buffer.
    expect(r.rise).toBe(r.preflight.bytes);
    expect(r.realLength).toBe(size);
    expect(r.ksmAfter).toBe(0);
    expect(r.intact).toBe(true);
  });

  it('disableMerge({ dryRun }) reports what PR_SET_MEMORY_MERGE 0 then allocates, within 1% and 1 MiB', async (ctx) => {
    requireKsm(ctx);
    const run = await runFixture('unmerge.cjs', ['process'], [], mergeAnyEnv());
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
    const r = run.result as { preflight: Preflight; stillOn: boolean; real: Preflight; rise: number; ksmLeft: number; on: boolean };
    expect(r.stillOn).toBe(true); // the dry run changed nothing
    expect(r.preflight.source).toBe('ksm_stat');
    expect(r.preflight.bytes).toBeGreaterThanOrEqual(8 << 20);
    expect(r.on).toBe(false);
    expect(r.ksmLeft).toBe(0);
    // ksmd keeps merging between the two: compare with the preflight taken at
    // the call. ksm_merging_pages is as of ksmd's last pass over the process,
    // and node's own heap (merged too, under merge-any) takes writes while
    // smaps is read: allow 1% and 256 pages (1 MiB) beside the 8 MiB.
    expect(Math.abs(r.rise - r.real.bytes)).toBeLessThanOrEqual(0.01 * r.real.bytes + 256 * pageSize());
  });

  it('requireHeadroom refuses with ERR_KSM_INSUFFICIENT_MEMORY when the cgroup cannot hold the copies, and nothing changes', async (ctx) => {
    requireKsm(ctx);
    const cgroup = makeMemoryCgroup();
    if ('reason' in cgroup) {
      console.warn(`skipped: ${cgroup.reason}`);
      ctx.skip(cgroup.reason);
      return;
    }
    try {
      // Under test:asan, freed memory waits in ASan's quarantine and is still
      // charged to the cgroup: keep it small so the 16 MiB of room holds.
      const env = withAsanOptions('quarantine_size_mb=1');
      const run = await runFixture('unmerge.cjs', ['refuse', cgroup.dir], [], env);
      expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
      const r = run.result as {
        refused?: { name: string; code: string; message: string; bytes: number; headroom: number; limitedBy: string; isKsmError: boolean };
        ksmAfter: number;
        dry: Preflight;
        intact: boolean;
      };
      expect(r.refused).toMatchObject({ name: 'KsmInsufficientMemoryError', code: 'ERR_KSM_INSUFFICIENT_MEMORY', limitedBy: 'cgroup', isKsmError: true });
      expect(r.refused!.bytes).toBeGreaterThan(r.refused!.headroom);
      expect(r.refused!.message).toMatch(/^refusing to unmerge 0x[0-9a-f]+-0x[0-9a-f]+ \(unmarkMergeable\): it would allocate \d+ bytes but only \d+ are available \(the cgroup's memory.max headroom\); nothing was changed$/);
      // Nothing was unmerged and nothing was lost.
      expect(r.ksmAfter).toBeGreaterThanOrEqual((32 << 20) - 4 * pageSize());
      expect(r.dry.fits).toBe(false);
      expect(r.intact).toBe(true);
    } finally {
      for (let i = 0; i < 50; i++) {
        try {
          fs.rmdirSync(cgroup.dir);
          break;
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
    }
  });

  it('rejects wrong options before doing anything', () => {
    expect(() => disableMerge({ dryRun: 'yes' as unknown as boolean })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('"options.dryRun"') }));
    expect(() => unmarkMergeable(Buffer.alloc(1), { requireHeadroom: 1 as unknown as boolean })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('"options.requireHeadroom"') }),
    );
    expect(() => unmarkMergeable(Buffer.alloc(1), [] as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
  });
});
