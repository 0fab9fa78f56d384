/**
 * Unmerging copies merged pages back. The preflight (dryRun) must say how
 * much, matching the rise measured in smaps; requireHeadroom must refuse,
 * changing nothing, when the cgroup cannot hold the copies.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

import { disableMerge, pageSize, unmarkMergeable } from '../../lib/index.js';
import { needs, requireKsm } from '../helpers/ksm.js';
import { mergeAnyEnv, runFixture } from './helpers.js';

interface Preflight {
  bytes: number;
  pages: number;
  source: string;
  exact: boolean;
  headroom?: number;
  fits?: boolean;
}

/** Starts a command in a private mount namespace whose /sys/fs/cgroup is an empty tmpfs. */
const EMPTY_CGROUPFS = ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', 'mount -t tmpfs node-ksm-cgroup /sys/fs/cgroup && exec "$@"', 'sh'];

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
    // The cgroup limit is files the fixture writes into a tmpfs over
    // /sys/fs/cgroup in a mount namespace of its own, read as a real cgroup's
    // are; KSM and smaps stay real. A real limit would take a v1 memory
    // cgroup on a hybrid machine (this machine kind's belong to its own
    // tooling) or a delegated v2 memory controller: neither is the test's.
    const probe = spawnSync(EMPTY_CGROUPFS[0]!, [...EMPTY_CGROUPFS.slice(1), 'true'], { encoding: 'utf8' });
    needs(ctx, probe.status === 0, `a private mount namespace with a tmpfs on /sys/fs/cgroup (unshare --mount, mount): ${probe.error?.message ?? probe.stderr.trim()}`);
    const run = await runFixture('unmerge.cjs', ['refuse'], [], process.env, undefined, EMPTY_CGROUPFS);
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
    const r = run.result as {
      refused?: { name: string; code: string; message: string; bytes: number; headroom: number; limitedBy: string; isKsmError: boolean };
      ksmAfter: number;
      dry: Preflight;
      intact: boolean;
    };
    expect(r.refused).toMatchObject({ name: 'KsmInsufficientMemoryError', code: 'ERR_KSM_INSUFFICIENT_MEMORY', limitedBy: 'cgroup', isKsmError: true });
    expect(r.refused!.headroom).toBe(16 << 20);
    expect(r.refused!.bytes).toBeGreaterThan(r.refused!.headroom);
    expect(r.refused!.message).toMatch(/^refusing to unmerge 0x[0-9a-f]+-0x[0-9a-f]+ \(unmarkMergeable\): it would allocate \d+ bytes but only \d+ are available \(the cgroup's memory.max headroom\); nothing was changed$/);
    // Nothing was unmerged and nothing was lost.
    expect(r.ksmAfter).toBeGreaterThanOrEqual((32 << 20) - 4 * pageSize());
    expect(r.dry.fits).toBe(false);
    expect(r.intact).toBe(true);
  });

  it('rejects wrong options before doing anything', () => {
    expect(() => disableMerge({ dryRun: 'yes' as unknown as boolean })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('"options.dryRun"') }));
    expect(() => unmarkMergeable(Buffer.alloc(1), { requireHeadroom: 1 as unknown as boolean })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('"options.requireHeadroom"') }),
    );
    expect(() => unmarkMergeable(Buffer.alloc(1), [] as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
  });
});
