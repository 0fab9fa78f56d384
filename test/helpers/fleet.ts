/** A fixture tree shaped like a host of pods and services, for the group attribution tests. */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { ksmStatText, makeKsmTree, smapsVma, type FixtureProcess } from './cli.js';

const KB = 1024;
export const POD_A = '/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod6553a60b_2b97_442a_b6da_a5704d81dd98.slice';
export const CONTAINER_1 = `${POD_A}/cri-containerd-${'a'.repeat(64)}.scope`;
export const CONTAINER_2 = `${POD_A}/cri-containerd-${'b'.repeat(64)}.scope`;
export const POD_B = '/kubepods/besteffort/poda36d0c1d-0b26-4451-8d80-9c195e004afa';
export const CONTAINER_3 = `${POD_B}/${'c'.repeat(64)}`;
export const UNIT = '/system.slice/api.service';

/** A process whose one VMA holds `ksmKb` of KSM pages, each mapped `mappers` times: it saves ksmKb x (1 - 1/mappers). */
function proc(pid: number, comm: string, ksmKb: number, mappers: number): FixtureProcess {
  const pages = (ksmKb * KB) / 4096;
  return {
    pid,
    comm,
    ksmStat: ksmStatText({ rmap: pages * 2, zero: 0, merging: pages, profit: pages * 4096 - pages * 2 * 64, mergeAny: false, mergeable: true }),
    smaps: smapsVma(0x7f0000000000, ksmKb * 2, ksmKb, mappers),
  };
}

/**
 * A fixture tree of five merging processes: two containers of a pod (systemd
 * driver, cgroup v2), one container of a besteffort pod (cgroupfs driver on
 * v1), a systemd service and one in the root cgroup, with memory files for
 * the first pod, the service (v2) and the second pod (v1). The caller removes it.
 */
export function makeFleetTree(): string {
  const root = makeKsmTree({}, [
    proc(101, 'api-a1', 4096, 4),
    proc(102, 'api-a2', 8192, 4),
    proc(103, 'api-b', 4096, 2),
    proc(104, 'api', 2048, 4),
    proc(105, 'loose', 1024, 2),
  ]);
  const cgroup = (pid: number, text: string): void => fs.writeFileSync(path.join(root, 'proc', String(pid), 'cgroup'), text);
  // A pure cgroup v2 machine, and a v1 one for pod B (kubelet's cgroupfs driver on v1).
  cgroup(101, `0::${CONTAINER_1}\n`);
  cgroup(102, `0::${CONTAINER_2}\n`);
  cgroup(103, `4:memory:${CONTAINER_3}\n1:name=systemd:${CONTAINER_3}\n`);
  cgroup(104, `0::${UNIT}\n`);
  cgroup(105, '0::/\n');
  const v2 = path.join(root, 'sys', 'fs', 'cgroup');
  const dir = (cgroupPath: string, files: Record<string, string>): void => {
    const where = path.join(v2, cgroupPath);
    fs.mkdirSync(where, { recursive: true });
    for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(where, name), text);
  };
  dir('/', { 'cgroup.controllers': 'cpu memory pids\n' });
  dir(POD_A, { 'memory.current': `${64 * 1024 * KB}\n`, 'memory.stat': `anon ${48 * 1024 * KB}\nfile 0\n`, 'memory.max': `${256 * 1024 * KB}\n` });
  dir(UNIT, { 'memory.current': `${32 * 1024 * KB}\n`, 'memory.stat': `file 1\nanon ${16 * 1024 * KB}\n`, 'memory.max': 'max\n' });
  const v1 = path.join(v2, 'memory', POD_B);
  fs.mkdirSync(v1, { recursive: true });
  fs.writeFileSync(path.join(v2, 'memory', 'memory.usage_in_bytes'), '1\n');
  fs.writeFileSync(path.join(v1, 'memory.usage_in_bytes'), `${20 * 1024 * KB}\n`);
  fs.writeFileSync(path.join(v1, 'memory.limit_in_bytes'), '9223372036854771712\n');
  fs.writeFileSync(path.join(v1, 'memory.stat'), `rss 1\ntotal_rss ${12 * 1024 * KB}\n`);
  return root;
}

