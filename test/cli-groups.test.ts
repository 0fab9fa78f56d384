/**
 * `node-ksm status --by` and `top --by` on a fixture tree of pods and a
 * service: the JSON shape key for key, the figures, and names from the
 * filesystem printed escaped.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import type { GroupJson, StatusJson, TopJson } from '../lib/index.js';
import { runCli } from './helpers/cli.js';
import { CONTAINER_1, makeFleetTree, POD_A } from './helpers/fleet.js';

const KB = 1024;
const trees: string[] = [];
afterAll(() => {
  for (const root of trees) fs.rmSync(root, { recursive: true, force: true });
});
function fleet(): string {
  const root = makeFleetTree();
  trees.push(root);
  return root;
}

describe('node-ksm status --by', () => {
  it('--by pod --json: one group per pod, the rest by cgroup path; the documented keys', async () => {
    const root = fleet();
    const result = await runCli(['--root', root, 'status', '--by', 'pod', '--json']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const status = JSON.parse(result.stdout) as StatusJson;
    expect(status.by).toBe('pod');
    const groups = status.groups!;
    expect(Object.keys(groups[0]!).sort()).toEqual(
      ['cgroup', 'cgroups', 'containerId', 'key', 'kind', 'memory', 'mergedBytes', 'mergingPages', 'metadataBytes', 'netBytes', 'pids', 'podUid', 'qosClass', 'runtime', 'savedBytes', 'savedShare', 'slice', 'unit', 'zeroPageBytes'],
    );
    const a = groups.find((g) => g.key === '6553a60b-2b97-442a-b6da-a5704d81dd98')!;
    expect(a).toMatchObject<Partial<GroupJson>>({ kind: 'pod', cgroup: POD_A, pids: [101, 102], savedBytes: 9216 * KB, qosClass: 'burstable', containerId: null });
    expect(a.memory).toEqual({ currentBytes: 64 * 1024 * KB, anonBytes: 48 * 1024 * KB, maxBytes: 256 * 1024 * KB, source: 'v2' });
    expect(a.savedShare).toBeCloseTo((9216 * KB) / (64 * 1024 * KB + 9216 * KB), 12);
    expect(groups.map((g) => g.kind).sort()).toEqual(['cgroup', 'cgroup', 'pod', 'pod']);
    expect(groups.reduce((sum, g) => sum + g.savedBytes!, 0)).toBe(status.processes.reduce((sum, p) => sum + p.savedBytes!, 0));

    const plain = JSON.parse((await runCli(['--root', root, 'status', '--json'])).stdout) as StatusJson;
    expect(plain.by).toBeNull();
    expect(plain.groups).toBeNull();
  });

  it('--by container, unit and cgroup; --no-fair-share keeps the ksm_stat sums and nulls the bytes', async () => {
    const root = fleet();
    const containers = JSON.parse((await runCli(['--root', root, 'status', '--by', 'container', '--json'])).stdout) as StatusJson;
    expect(containers.groups!.find((g) => g.key === 'a'.repeat(64))).toMatchObject({ kind: 'container', runtime: 'containerd', cgroup: CONTAINER_1, pids: [101] });
    const units = JSON.parse((await runCli(['--root', root, 'status', '--by', 'unit', '--json'])).stdout) as StatusJson;
    expect(units.groups!.find((g) => g.key === 'api.service')).toMatchObject({ kind: 'unit', savedBytes: 1536 * KB, memory: { currentBytes: 32 * 1024 * KB, maxBytes: null } });
    const cheap = JSON.parse((await runCli(['--root', root, 'status', '--by', 'cgroup', '--no-fair-share', '--json'])).stdout) as StatusJson;
    expect(cheap.groups!).toHaveLength(5);
    for (const g of cheap.groups!) expect(g).toMatchObject({ savedBytes: null, mergedBytes: null, savedShare: null });
    expect(cheap.groups!.reduce((sum, g) => sum + g.mergingPages, 0)).toBe((4096 + 8192 + 4096 + 2048 + 1024) / 4);
  });

  it('prints the group table with names escaped; a bad --by is a usage error', async () => {
    const root = fleet();
    // A cgroup name with an escape sequence in it: printed as \x1b, never raw.
    fs.writeFileSync(path.join(root, 'proc', '105', 'cgroup'), '0::/system.slice/evil\x1b]2;PWN\x07.service\n');
    const result = await runCli(['--root', root, 'status', '--by', 'unit']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('saving by unit');
    expect(result.stdout).toContain('api.service');
    expect(result.stdout).toContain('evil\\x1b]2;PWN\\x07.service');
    expect(result.stdout).not.toContain('\x1b');
    expect(result.stdout).toMatch(/saved, summed over the groups: 13\.0 MiB/);
    const bad = await runCli(['--root', root, 'status', '--by', 'namespace']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--by: 'namespace' is not one of cgroup, unit, pod, container/);
  });
});

describe('node-ksm top --by', () => {
  it('--json: every refresh carries the groups', async () => {
    const root = fleet();
    const result = await runCli(['--root', root, 'top', '--by', 'pod', '--iterations', '2', '--interval', '100ms', '--json']);
    expect(result.code).toBe(0);
    const lines = result.stdout.trim().split('\n').map((line) => JSON.parse(line) as TopJson);
    expect(lines).toHaveLength(2);
    for (const line of lines) {
      expect(line.by).toBe('pod');
      expect(line.groups!.find((g) => g.kind === 'pod' && g.pids.length === 2)!.savedBytes).toBe(9216 * KB);
    }
  });
});
