/**
 * doctor(): each finding from its condition made real on this machine where
 * it allows (children holding memory, a seccomp filter, another uid, a
 * read-only /sys in a private mount namespace), and from fixture trees of
 * other machines where it does not. Knob-changing cases (THP among them)
 * live in doctor.serial.test.ts.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

import { doctor, pageSize, type Finding, type FindingCode } from '../lib/index.js';
import { evidence, findingOf, problems } from './helpers/doctor.js';
import { packageForNobody } from './helpers/nobody.js';
import { FIXTURES, ROOT, firstLine, needs, rawKsmStat, rawSmapsRange, requireKsm, startFixture, sysfsNumber, untilKsm, waitFullScans, type Holder } from './helpers/ksm.js';

const TREES = path.join(FIXTURES, 'doctor');
const SERVICE = 'doctor/service.cjs';
const MiB = 1024 * 1024;

let holders: Holder[] = [];
let processes: ChildProcess[] = [];
afterEach(async () => {
  await Promise.all(holders.map((holder) => holder.kill()));
  for (const child of processes) child.kill('SIGKILL');
  holders = [];
  processes = [];
});

async function service(spec: Record<string, unknown>): Promise<Holder & { ready: Record<string, unknown> }> {
  const holder = await startFixture(SERVICE, [JSON.stringify(spec)]);
  holders.push(holder);
  return holder;
}

function find(findings: Finding[], code: FindingCode): Finding | undefined {
  return findings.find((entry) => entry.code === code);
}

/** Runs `node -e` with the built package (`dist`), returning doctor()'s findings as JSON. */
function doctorIn(argv: string[], options: { uid?: number; gid?: number; env?: NodeJS.ProcessEnv } = {}, dist = path.join(ROOT, 'dist', 'index.js')): Finding[] {
  const script =
    "require(process.argv[1]).doctor().then((f) => process.stdout.write(JSON.stringify(f)), (e) => { console.error(e); process.exit(1); })";
  const [command, ...args] = argv.length > 0 ? argv : [process.execPath];
  const output = execFileSync(command!, [...args, '-e', script, dist], {
    encoding: 'utf8',
    cwd: '/',
    ...options,
  });
  return JSON.parse(output) as Finding[];
}

describe('doctor() options', () => {
  it('rejects bad options before reading anything', async () => {
    await expect(doctor(null as never)).rejects.toMatchObject({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    await expect(doctor({ pid: 0 })).rejects.toMatchObject({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    await expect(doctor({ pid: '1' as never })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    await expect(doctor({ root: '' })).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    await expect(doctor({ handlesSecrets: 'yes' as never })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    await expect(doctor({ targetScanTimeSec: 0 })).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    await expect(doctor({ targetScanTimeSec: 60, maxScanTimeSec: 30 })).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
  });

  it('throws KsmNoSuchProcessError for a pid that does not exist', async () => {
    await expect(doctor({ root: path.join(TREES, 'numa'), pid: 4_000_000 })).rejects.toMatchObject({
      code: 'ERR_KSM_NO_SUCH_PROCESS',
    });
  });
});

describe('doctor() on fixture trees of other machines', () => {
  it('KSM_NOT_BUILT: no /sys/kernel/mm/ksm is the one finding, with the check to run', async () => {
    const findings = await doctor({ root: path.join(TREES, 'no-ksm') });
    expect(findings).toHaveLength(1);
    const entry = findingOf(findings, 'KSM_NOT_BUILT');
    expect(entry.severity).toBe('error');
    expect(evidence(entry, 'osrelease')).toBe('6.1.0-18-cloud-amd64');
    expect(entry.fix?.commands).toEqual(['grep CONFIG_KSM= /boot/config-$(uname -r)']);
  });

  it('PRCTL_UNSUPPORTED on 6.1: enableMerge() cannot work, so the fix is allocMergeable()', async () => {
    const findings = await doctor({ root: path.join(TREES, 'kernel-6.1') });
    const prctl = findingOf(findings, 'PRCTL_UNSUPPORTED');
    // Nothing in the process is mergeable: the missing prctl leaves it with no way in.
    expect(prctl.severity).toBe('warn');
    expect(evidence(prctl, 'osrelease')).toBe('6.1.0-18-amd64');
    expect(prctl.fix?.call).toBe('allocMergeable(size)');
    const nothing = findingOf(findings, 'NOTHING_MERGEABLE');
    expect(nothing.fix?.call).toBe('allocMergeable(size)');
    expect(evidence(nothing, 'Anonymous (sum)')).toBe(50 * MiB);
    // 6.1 has no advisor and no general_profit: nothing is said about them.
    expect(find(findings, 'ADVISOR_AVAILABLE')).toBeUndefined();
    expect(findings.every((entry) => entry.severity !== 'error')).toBe(true);
  });

  it('SYSFS_READ_ONLY in a container: the stopped KSM is named and the fix is for the host', async () => {
    const findings = await doctor({ root: path.join(TREES, 'readonly-sys') });
    expect(findingOf(findings, 'KSM_STOPPED').fix?.knobs).toEqual({ run: 1 });
    const ro = findingOf(findings, 'SYSFS_READ_ONLY');
    expect(ro.severity).toBe('warn');
    expect(evidence(ro, '/sys mount options')).toBe('ro,nosuid,nodev,noexec,relatime');
    expect(ro.fix?.commands).toEqual(['echo 1 > /sys/kernel/mm/ksm/run']);
    expect(findings[0]!.code).toBe('KSM_STOPPED');
  });

  it('NUMA_CROSS_NODE on two nodes with merge_across_nodes=1, and MERGING for a process that merges', async () => {
    const findings = await doctor({ root: path.join(TREES, 'numa') });
    expect(problems(findings)).toEqual([]);
    const numa = findingOf(findings, 'NUMA_CROSS_NODE');
    expect(evidence(numa, 'nodes')).toBe(2);
    expect(evidence(numa, 'distance')).toBe('10 21');
    expect(numa.fix?.commands).toEqual([
      'echo 2 > /sys/kernel/mm/ksm/run',
      'echo 0 > /sys/kernel/mm/ksm/merge_across_nodes',
      'echo 1 > /sys/kernel/mm/ksm/run',
    ]);
    expect(evidence(findingOf(findings, 'MERGING'), 'ksm_merging_pages')).toBe(9000);
  });

  it('a big churning host: SCAN_TOO_SLOW under a capped advisor, HIGH_UNSHARED, VOLATILE_PAGES, THP, NOT_ROOT', async () => {
    const findings = await doctor({ root: path.join(TREES, 'busy') });
    // 12 GiB of mergeable heap = 3145728 pages; advisor max 2000 pages per 100 ms = 20000 pages/s.
    const scan = findingOf(findings, 'SCAN_TOO_SLOW');
    expect(evidence(scan, 'candidate pages (the larger of the two)')).toBe(3145728);
    // ceil(3145728 x 100 / (1000 x 120))
    expect(scan.fix?.knobs).toEqual({ advisorMaxPagesToScan: 2622, advisorTargetScanTimeSec: 120 });
    const unshared = findingOf(findings, 'HIGH_UNSHARED');
    expect(evidence(unshared, 'unmerged tracked pages (rmap_items - merging - zero)')).toBe(3145728 - 200000);
    expect(find(findings, 'METADATA_EXCEEDS_SAVING')).toBeUndefined();
    // The process holds every page KSM tracks there: the churn is its own, a warning.
    const volatile = findingOf(findings, 'VOLATILE_PAGES');
    expect(volatile.severity).toBe('warn');
    expect(evidence(volatile, 'pages_volatile')).toBe(2045728);
    const thp = findingOf(findings, 'THP_IN_MERGEABLE');
    expect(thp.fix?.commands).toEqual(['echo madvise > /sys/kernel/mm/transparent_hugepage/enabled']);
    // uid 1000 cannot apply the knob fix: NOT_ROOT says so, with the commands under sudo.
    const root = findingOf(findings, 'NOT_ROOT');
    expect(root.severity).toBe('warn');
    expect(root.fix?.commands).toEqual(scan.fix!.commands.map((command) => `sudo sh -c '${command}'`));
  });

  it('SCAN_TOO_SLOW under an advisor that could keep up but aims too slow: the fix lowers its target', async () => {
    // The busy host with the advisor allowed 30000 pages per 100 ms: it could
    // scan in 10.5 s, but aims at 600 s.
    const tree = fs.mkdtempSync(path.join(os.tmpdir(), 'doctor-advisor-'));
    try {
      fs.cpSync(path.join(TREES, 'busy'), tree, { recursive: true });
      fs.writeFileSync(path.join(tree, 'sys/kernel/mm/ksm/advisor_max_pages_to_scan'), '30000\n');
      fs.writeFileSync(path.join(tree, 'sys/kernel/mm/ksm/advisor_target_scan_time'), '600\n');
      const entry = findingOf(await doctor({ root: tree }), 'SCAN_TOO_SLOW');
      expect(evidence(entry, 'full scan time under the advisor')).toBe(600);
      expect(entry.fix?.knobs).toEqual({ advisorTargetScanTimeSec: 120 });
      expect(entry.fix?.commands).toEqual(['echo 120 > /sys/kernel/mm/ksm/advisor_target_scan_time']);
      // Within the options' bounds it is quiet.
      const relaxed = await doctor({ root: tree, targetScanTimeSec: 600, maxScanTimeSec: 900 });
      expect(find(relaxed, 'SCAN_TOO_SLOW')).toBeUndefined();
    } finally {
      fs.rmSync(tree, { recursive: true, force: true });
    }
  });

  it('a process whose smaps does not answer is skipped after 2 s, and said so', async () => {
    // smaps waits for the process's mmap_lock; a FIFO nobody writes stands for one held for minutes.
    const tree = fs.mkdtempSync(path.join(os.tmpdir(), 'doctor-slow-'));
    const stuck = path.join(tree, 'proc/777/smaps');
    try {
      fs.cpSync(path.join(TREES, 'numa'), tree, { recursive: true });
      fs.mkdirSync(path.dirname(stuck), { recursive: true });
      fs.writeFileSync(path.join(tree, 'proc/777/ksm_stat'), 'ksm_rmap_items 0\nksm_merge_any: yes\nksm_mergeable: yes\n');
      execFileSync('mkfifo', [stuck]);
      // Without the deadline this call would not return until the test's timeout.
      const entry = findingOf(await doctor({ root: tree, targetScanTimeSec: 0.001, maxScanTimeSec: 0.001 }), 'SCAN_TOO_SLOW');
      expect(evidence(entry, 'processes skipped (smaps did not answer in 2 s: mmap_lock held)')).toBe(1);
    } finally {
      // Release the read still waiting in the threadpool.
      const fd = fs.openSync(stuck, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
      fs.closeSync(fd);
      fs.rmSync(tree, { recursive: true, force: true });
    }
  });
});

describe('doctor() on real processes', () => {
  it('NOTHING_MERGEABLE for a process that neither advised memory nor turned merge-any on', async (ctx) => {
    requireKsm(ctx);
    expect(rawKsmStat('self').ksm_mergeable).toBe('no');
    const entry = findingOf(await doctor(), 'NOTHING_MERGEABLE');
    expect(entry.severity).toBe('warn');
    expect(entry.fix?.call).toBe('enableMerge()');
    expect(entry.fix?.persist).toEqual(['[Service] MemoryKSM=yes']);
    expect(entry.alternatives[0]?.call).toBe('allocMergeable(size)');
  });

  it('UNTOUCHED_REGION: a mergeable buffer that was never written', async (ctx) => {
    requireKsm(ctx);
    const holder = await service({ size: 32 * MiB, fill: 'none' });
    const { start, end } = holder.ready.range as { start: bigint; end: bigint };
    const raw = rawSmapsRange(holder.pid, start, end);
    expect(raw.flags.every((flags) => flags.includes('mg'))).toBe(true);
    const findings = await doctor({ pid: holder.pid });
    const entry = findingOf(findings, 'UNTOUCHED_REGION');
    // Nothing mergeable is resident anywhere in the process: nothing will merge.
    expect(entry.severity).toBe('warn');
    const size = entry.evidence.find((item) => item.key.endsWith('Size') && item.key.includes(start.toString(16)));
    expect(size?.value).toBeGreaterThanOrEqual(32 * MiB);
    expect(find(findings, 'NOTHING_MERGEABLE')).toBeUndefined();
  });

  it('METADATA_EXCEEDS_SAVING: unique data costs rmap items and merges nothing', async (ctx) => {
    requireKsm(ctx);
    const holder = await service({ size: 16 * MiB, fill: 'random' });
    // One full scan over the buffer gives every page its rmap_item.
    await untilKsm(() => Number(rawKsmStat(holder.pid).ksm_rmap_items) >= (16 * MiB) / pageSize(), 'an rmap_item for every page of the buffer');
    const raw = rawKsmStat(holder.pid);
    const rmap = Number(raw.ksm_rmap_items);
    const merging = Number(raw.ksm_merging_pages);
    expect(rmap).toBeGreaterThanOrEqual((16 * MiB) / pageSize());
    expect(rmap).toBeGreaterThan(64 * merging);
    const entry = findingOf(await doctor({ pid: holder.pid }), 'METADATA_EXCEEDS_SAVING');
    expect(entry.severity).toBe('warn');
    expect(evidence(entry, 'ksm_rmap_items')).toBeGreaterThanOrEqual((16 * MiB) / pageSize());
    expect(evidence(entry, 'metadata (ksm_rmap_items x 64)')).toBe(64 * Number(evidence(entry, 'ksm_rmap_items')));
    expect(entry.fix?.call).toBe('unmarkMergeable(view)');
  });

  it('MERGE_ANY_INHERITED: a child of a process that called enableMerge()', async (ctx) => {
    requireKsm(ctx);
    const parent = await service({ enableMerge: true });
    const { pid, findings: own } = await parent.send<{ pid: number; findings: Finding[] }>({ cmd: 'child', spec: {} });
    expect(rawKsmStat(pid).ksm_merge_any).toBe('yes');
    // In the child itself: it knows it never called enableMerge().
    const inherited = findingOf(own, 'MERGE_ANY_INHERITED');
    expect(evidence(inherited, 'enableMerge() called in this process')).toBe(false);
    expect(inherited.fix?.call).toBe('disableMerge()');
    // From outside: the parent's ksm_merge_any says where it came from.
    const outside = findingOf(await doctor({ pid }), 'MERGE_ANY_INHERITED');
    expect(outside.evidence).toContainEqual({ source: `/proc/${parent.pid}/ksm_stat`, key: 'ksm_merge_any', value: true });
    // The parent turned it on itself.
    const { findings: parentFindings } = await parent.send<{ findings: Finding[] }>({ cmd: 'doctor', options: {} });
    expect(find(parentFindings, 'MERGE_ANY_INHERITED')).toBeUndefined();
  });

  it('SIDE_CHANNEL_RISK: merge-any on in a process that declares it handles secrets', async (ctx) => {
    requireKsm(ctx);
    const holder = await service({ enableMerge: true });
    const { findings } = await holder.send<{ findings: Finding[] }>({ cmd: 'doctor', options: { handlesSecrets: true } });
    const entry = findingOf(findings, 'SIDE_CHANNEL_RISK');
    expect(entry.severity).toBe('warn');
    expect(evidence(entry, 'ksm_merge_any')).toBe(true);
    expect(entry.fix?.call).toBe('disableMerge()');
    const { findings: undeclared } = await holder.send<{ findings: Finding[] }>({ cmd: 'doctor', options: {} });
    expect(find(undeclared, 'SIDE_CHANNEL_RISK')).toBeUndefined();
  });

  it('SIDE_CHANNEL_RISK (error): a range marked sensitive became mergeable again', async (ctx) => {
    requireKsm(ctx);
    const holder = await service({ size: 4 * pageSize(), fill: 'same' });
    await holder.send({ cmd: 'sensitive', label: 'session keys', remerge: true });
    const { findings } = await holder.send<{ findings: Finding[] }>({ cmd: 'doctor', options: {} });
    const entry = findingOf(findings, 'SIDE_CHANNEL_RISK');
    expect(entry.severity).toBe('error');
    expect(entry.message).toContain('"session keys"');
    expect(entry.fix?.call).toBe('markSensitive(view)');
    // markSensitive() again puts it right: no exposed range is left.
    await holder.send({ cmd: 'sensitive', label: 'session keys', remerge: false });
    const { findings: after } = await holder.send<{ findings: Finding[] }>({ cmd: 'doctor', options: {} });
    expect(find(after, 'SIDE_CHANNEL_RISK')?.severity).not.toBe('error');
  });

  it('NOT_MERGEABLE: merge-any on, but the data sits in a shared mapping', async (ctx) => {
    requireKsm(ctx);
    const child = spawn('python3', [path.join(TREES, 'shared-anon.py'), String(8 * MiB)], { stdio: ['pipe', 'pipe', 'inherit'] });
    processes.push(child);
    const line = await firstLine(child, 'shared-anon.py');
    const [start] = line.trim().split(' ');
    expect(rawKsmStat(child.pid!).ksm_merge_any).toBe('yes');
    const entry = findingOf(await doctor({ pid: child.pid! }), 'NOT_MERGEABLE');
    expect(entry.message).toContain(`0x${start}`);
    expect(entry.message).toContain('shared mapping');
    const flags = entry.evidence.find((item) => item.key.startsWith(`0x${start}`) && item.key.endsWith('VmFlags'));
    expect(String(flags?.value).split(' ')).toContain('sh');
    expect(entry.fix?.call).toBe('allocMergeable(size)');
  });

  it('PRCTL_BLOCKED: a seccomp filter refuses PR_SET_MEMORY_MERGE with EPERM', (ctx) => {
    requireKsm(ctx);
    needs(ctx, process.arch === 'x64' || process.arch === 'arm64', `a seccomp syscall table for ${process.arch} (deny-prctl-merge.py has x64 and arm64)`);
    const findings = doctorIn([path.join(TREES, 'deny-prctl-merge.py'), process.execPath]);
    const entry = findingOf(findings, 'PRCTL_BLOCKED');
    expect(entry.severity).toBe('warn');
    expect(evidence(entry, 'result')).toBe('prctl(PR_GET_MEMORY_MERGE) failed with EPERM');
    expect(evidence(entry, 'Seccomp')).toBe(2);
    // With prctl refused, the way in is madvise.
    expect(findingOf(findings, 'NOTHING_MERGEABLE').fix?.call).toBe('allocMergeable(size)');
  });

  it('NOT_ROOT: doctor() as an unprivileged user', (ctx) => {
    requireKsm(ctx);
    const pkg = packageForNobody(ctx);
    const findings = doctorIn([], { uid: pkg.as.uid, gid: pkg.as.gid, env: pkg.env }, pkg.dist);
    const entry = findingOf(findings, 'NOT_ROOT');
    expect(evidence(entry, 'Uid (effective)')).toBe(65534);
    expect(evidence(entry, 'access(W_OK)')).toBe('EACCES');
  });

  it('SYSFS_READ_ONLY: /sys remounted read-only in a private mount namespace', (ctx) => {
    requireKsm(ctx);
    const hostMount = (): string | undefined =>
      fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((line) => line.split(' ')[4] === '/sys');
    const before = hostMount();
    // bind,remount changes only this namespace's mount, never the sysfs superblock.
    const readOnlySys = ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', 'mount -o bind,remount,ro /sys && exec "$0" "$@"'];
    const probe = spawnSync(readOnlySys[0]!, [...readOnlySys.slice(1), 'true'], { encoding: 'utf8' });
    needs(ctx, probe.status === 0, `a private mount namespace with /sys remounted read-only (unshare --mount, mount): ${probe.error?.message ?? probe.stderr.trim()}`);
    let findings: Finding[];
    try {
      findings = doctorIn([...readOnlySys, process.execPath]);
    } finally {
      expect(hostMount()).toBe(before);
    }
    const entry = findingOf(findings, 'SYSFS_READ_ONLY');
    expect(evidence(entry, '/sys mount options')).toMatch(/^ro,/);
    expect(evidence(entry, 'access(W_OK)')).toBe('EROFS');
  });

  it('a healthy, tuned machine with merging buffers: no error or warning, and MERGING', async (ctx) => {
    requireKsm(ctx);
    expect(sysfsNumber('run')).toBe(1);
    const started = await Promise.all([1, 2].map(() => startFixture('holder.cjs', [JSON.stringify({ mode: 'alloc', size: 16 * MiB, seed: 41 })])));
    holders.push(...started);
    // Two full scans merge them; another run may unmerge everything meanwhile (run=2): wait in rounds.
    const pages = (16 * MiB) / pageSize();
    const merged = (): boolean => started.every((holder) => Number(rawKsmStat(holder.pid).ksm_merging_pages) >= pages);
    for (let round = 0; round < 5 && !merged(); round++) await waitFullScans(2);
    for (const holder of started) {
      let findings = await doctor({ pid: holder.pid });
      // Another run's serial test may stop ksmd for a few seconds: that is the
      // machine, not this process. Wait for it to run again and ask once more.
      for (let tries = 0; find(findings, 'KSM_STOPPED') && tries < 300; tries++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        if (sysfsNumber('run') === 1) findings = await doctor({ pid: holder.pid });
      }
      expect(problems(findings)).toEqual([]);
      const merging = findingOf(findings, 'MERGING');
      expect(evidence(merging, 'ksm_merging_pages')).toBeGreaterThanOrEqual((16 * MiB) / pageSize());
    }
  });
});
