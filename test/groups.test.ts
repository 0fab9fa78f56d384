/**
 * profitByGroup() on a fixture tree whose answers are known (fair shares
 * from smaps, cgroups from /proc/PID/cgroup, memory from cgroup files), and
 * the cgroup readers against this machine's own files, read raw.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { profitByGroup } from '../lib/index.js';
import { cgroupMounts, parseProcCgroup, primaryCgroup, readCgroupMemory, readProcCgroup } from '../lib/kernel/cgroup.js';
import { CONTAINER_1, CONTAINER_2, CONTAINER_3, makeFleetTree, POD_A, POD_B, UNIT } from './helpers/fleet.js';

const KB = 1024;
const trees: string[] = [];
afterAll(() => {
  for (const root of trees) fs.rmSync(root, { recursive: true, force: true });
});
function fleetTree(): string {
  const root = makeFleetTree();
  trees.push(root);
  return root;
}

describe('profitByGroup (fixture tree)', () => {
  it('by pod: two pods with their members, the rest by cgroup path; shares and memory as the files say', async () => {
    const root = fleetTree();
    const report = await profitByGroup({ by: 'pod', root });
    expect(report.by).toBe('pod');
    expect(report.method).toBe('estimated');
    const byKey = new Map(report.groups.map((g) => [g.key, g]));
    const a = byKey.get('6553a60b-2b97-442a-b6da-a5704d81dd98')!;
    expect(a).toMatchObject({ kind: 'pod', cgroup: POD_A, cgroups: [CONTAINER_1, CONTAINER_2], pids: [101, 102], qosClass: 'burstable', podUid: '6553a60b-2b97-442a-b6da-a5704d81dd98' });
    // 3/4 of each process's 4 and 8 MiB of KSM pages.
    expect(a.savedBytes).toBe((3 * (4096 + 8192) * KB) / 4);
    expect(a.mergedBytes).toBe((4096 + 8192) * KB);
    expect(a.containerId).toBeUndefined(); // two containers
    expect(a.metadataBytes).toBe(((4096 + 8192) * KB * 2 * 64) / 4096);
    expect(a.memory).toEqual({ currentBytes: 64 * 1024 * KB, anonBytes: 48 * 1024 * KB, maxBytes: 256 * 1024 * KB, source: 'v2', dir: path.join(root, 'sys', 'fs', 'cgroup', POD_A) });

    const b = byKey.get('a36d0c1d-0b26-4451-8d80-9c195e004afa')!;
    expect(b).toMatchObject({ kind: 'pod', pids: [103], cgroup: POD_B, savedBytes: 2048 * KB, qosClass: 'besteffort', containerId: 'c'.repeat(64) });
    expect(b.memory).toMatchObject({ currentBytes: 20 * 1024 * KB, anonBytes: 12 * 1024 * KB, maxBytes: undefined, source: 'v1' });

    expect(byKey.get(UNIT)).toMatchObject({ kind: 'cgroup', pids: [104], unit: 'api.service', savedBytes: 1536 * KB });
    expect(byKey.get('/')).toMatchObject({ kind: 'cgroup', pids: [105], savedBytes: 512 * KB, memory: undefined });
    expect(report.groups.map((g) => g.savedBytes)).toEqual([...report.groups.map((g) => g.savedBytes)].sort((x, y) => y - x));
    expect(report.total.savedBytes).toBe(report.groups.reduce((sum, g) => sum + g.savedBytes, 0));
    expect(report.total.processes).toBe(5);
    expect(report.systemSavedBytes).toBe(9000 * 4096);
    expect(report.unreadable).toEqual([]);
  });

  it('by unit, container and cgroup', async () => {
    const root = fleetTree();
    const units = await profitByGroup({ by: 'unit', root });
    expect(units.groups.find((g) => g.key === 'api.service')).toMatchObject({ kind: 'unit', cgroup: UNIT, memory: { currentBytes: 32 * 1024 * KB, maxBytes: undefined } });
    expect(units.groups.find((g) => g.key === `cri-containerd-${'a'.repeat(64)}.scope`)).toMatchObject({ kind: 'unit', pids: [101] });

    const containers = await profitByGroup({ by: 'container', root });
    expect(containers.groups.filter((g) => g.kind === 'container').map((g) => g.key).sort()).toEqual(['a', 'b', 'c'].map((c) => c.repeat(64)));
    expect(containers.groups.find((g) => g.key === 'a'.repeat(64))).toMatchObject({ runtime: 'containerd', cgroup: CONTAINER_1, memory: undefined });

    const cgroups = await profitByGroup({ root });
    expect(cgroups.by).toBe('cgroup');
    expect(cgroups.groups.map((g) => g.key).sort()).toEqual([CONTAINER_1, CONTAINER_2, CONTAINER_3, UNIT, '/'].sort());
    for (const report of [units, containers, cgroups]) expect(report.total.savedBytes).toBe(((3 * 12288 + 2 * 4096 + 3 * 2048 + 2 * 1024) * KB) / 4);
  });

  it('a process whose cgroup file is gone (it exited) is left out; bad options are argument errors', async () => {
    const root = fleetTree();
    fs.rmSync(path.join(root, 'proc', '105', 'cgroup'));
    const report = await profitByGroup({ root, by: 'pod' });
    expect(report.groups.flatMap((g) => g.pids)).not.toContain(105);
    await expect(profitByGroup({ by: 'node' as never })).rejects.toMatchObject({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    await expect(profitByGroup({ by: 1 as never })).rejects.toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
  });
});

describe('cgroup readers (this machine, read raw alongside)', () => {
  it('/proc/self/cgroup as the kernel prints it', async () => {
    const raw = fs.readFileSync('/proc/self/cgroup', 'utf8');
    const parsed = await readProcCgroup(process.pid, '/');
    const v2 = /^0::(.*)$/m.exec(raw)?.[1];
    expect(parsed!.v2).toBe(v2);
    const v1Lines = raw.split('\n').filter((line) => line !== '' && !line.startsWith('0::'));
    expect(parsed!.v1.map((line) => `${line.id}:${line.controllers.join(',')}:${line.path}`)).toEqual(v1Lines);
    expect(await readProcCgroup(4194304, '/')).toBeUndefined();
  });

  it('finds the mounts /proc/self/mountinfo lists, and reads memory where this process is charged', async () => {
    const mountinfo = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n');
    const v2Line = mountinfo.find((line) => / - cgroup2 /.test(line));
    const v1Line = mountinfo.find((line) => / - cgroup \S+ \S*\bmemory\b/.test(line));
    const mounts = await cgroupMounts('/');
    expect(mounts.v2?.dir).toBe(v2Line?.split(' ')[4]);
    expect(mounts.v1Memory?.dir).toBe(v1Line?.split(' ')[4]);

    const own = parseProcCgroup(fs.readFileSync('/proc/self/cgroup', 'utf8'));
    const memoryPath = own.v1.find((line) => line.controllers.includes('memory'))?.path;
    const primary = primaryCgroup(own);
    const memory = await readCgroupMemory(memoryPath ?? primary.path, mounts, memoryPath);
    const v2File = mounts.v2 === undefined ? undefined : path.join(mounts.v2.dir, primary.path, 'memory.current');
    const v1File = mounts.v1Memory === undefined || memoryPath === undefined ? undefined : path.join(mounts.v1Memory.dir, memoryPath, 'memory.usage_in_bytes');
    const file = [v2File, v1File].find((f) => f !== undefined && fs.existsSync(f));
    if (file === undefined) {
      expect(memory).toBeUndefined();
      return;
    }
    const rawBytes = Number(fs.readFileSync(file, 'utf8'));
    expect(memory).toBeDefined();
    // Charged memory moves as this test runs: within 64 MiB of a raw read.
    expect(Math.abs(memory!.currentBytes - rawBytes)).toBeLessThan(64 * 1024 * KB);
    expect(memory!.anonBytes).toBeGreaterThan(0);
  });
});
