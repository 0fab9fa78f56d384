/**
 * What doctor() reads: every file and probe it judges from, gathered once,
 * so the rules (rules/) are plain functions of these facts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { bindingState } from '../binding.js';
import { KsmNoSuchProcessError, KsmUnsupportedError, isSystemError } from '../errors.js';
import { liveLabels, type LabelledRange } from '../merge/labels.js';
import { ksmSysfsDir, procPath, thpSysfsDir } from '../kernel/paths.js';
import { enableMergeCalled } from '../merge/opt-in.js';
import { ksmStat, parseKsmStat, procReadError, type KsmStat } from '../kernel/ksm-stat.js';
import { parseSmaps, type SmapsVma } from '../kernel/smaps.js';
import { systemStat, type SystemStat } from '../kernel/sysfs.js';
import { sensitiveRanges } from './sensitive.js';
import type { SensitiveRange } from './types.js';

export type PrctlState =
  /** PR_GET_MEMORY_MERGE answered. */
  | { state: 'available'; source: 'probe' }
  /** EINVAL from the probe, or a kernel release before 6.4 in a fixture tree. */
  | { state: 'unsupported'; source: 'probe' | 'osrelease'; detail: string }
  /** EPERM from the probe: seccomp or an LSM refuses it. */
  | { state: 'blocked'; source: 'probe'; detail: string }
  /** Not probed: another root than `/`, or no addon. */
  | { state: 'unknown'; source: 'none'; detail: string };

export interface MountFacts {
  /** The mount point that holds /sys/kernel/mm/ksm. */
  mountPoint: string;
  /** Per-mount options, e.g. `ro,nosuid,nodev,noexec,relatime`. */
  mountOptions: string;
  /** Superblock options after the ` - ` separator. */
  superOptions: string;
  readOnly: boolean;
}

export interface CandidateFacts {
  /** Resident anonymous pages in the target's mergeable VMAs. */
  processPages: number;
  /** Sum over every process whose smaps could be read (the target included). */
  readablePages: number;
  processesRead: number;
  /** Processes that may hold mergeable memory but whose smaps could not be read (other users', without root). */
  processesUnreadable: number;
  /** Processes whose smaps did not answer in time (mmap_lock held); the pass stops after a few. */
  processesSlow: number;
  /** What the kernel tracks: pages_shared + pages_sharing + pages_unshared + pages_volatile. */
  kernelTracked: number | undefined;
  /** What the scan estimate uses: the larger of readablePages and kernelTracked. */
  pages: number;
}

export interface Facts {
  root: string;
  /** The directory name under /proc: a number, or 'self' in a fixture tree. */
  procName: string;
  /** The target is the process running doctor() (its flags and registries are known). */
  self: boolean;
  pageSize: number;
  kernelRelease: string | undefined;
  /** undefined: /sys/kernel/mm/ksm does not exist. */
  ksm: SystemStat | undefined;
  /** Error code from access(run, W_OK), undefined when writable. */
  ksmWriteError: string | undefined;
  mount: MountFacts | undefined;
  /** Effective uid of the process running doctor(), from /proc/self/status. */
  euid: number | undefined;
  numaNodes: number | undefined;
  /** node0's distance row, e.g. [10, 21]. */
  numaDistances: number[] | undefined;
  /** The bracketed THP mode, e.g. 'madvise'. */
  thpEnabled: string | undefined;
  prctl: PrctlState;
  stat: KsmStat;
  vmas: SmapsVma[];
  /** Fields of the target's /proc/PID/status that matter here. */
  status: { ppid: number | undefined; seccomp: number | undefined; seccompFilters: number | undefined; noNewPrivs: number | undefined };
  /** The parent's ksm_merge_any, where readable. */
  parentMergeAny: boolean | undefined;
  /** Whether this process called enableMerge(): only known for self. */
  enableMergeCalled: boolean | undefined;
  /** Labelled mergeable ranges of this process (self only). */
  labels: LabelledRange[];
  /** Ranges of this process declared sensitive (self only). */
  sensitive: SensitiveRange[];
  candidates: CandidateFacts;
}

function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

const TIMED_OUT = Symbol('timed out');
const SMAPS_DEADLINE_MS = 2000;
const MAX_SLOW_PROCESSES = 2;

async function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T | typeof TIMED_OUT> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(() => resolve(TIMED_OUT), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

async function readTextAsync(file: string): Promise<string | undefined> {
  try {
    return await fs.promises.readFile(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** 6.18.44-fc-v595 -> [6, 18]. */
export function parseRelease(release: string | undefined): [number, number] | undefined {
  const match = /^(\d+)\.(\d+)/.exec(release ?? '');
  return match ? [Number(match[1]), Number(match[2])] : undefined;
}

function probePrctl(root: string, kernelRelease: string | undefined, ksmPresent: boolean): PrctlState {
  if (root !== '/') {
    // A fixture tree stands for another machine: its release is all there is.
    const version = parseRelease(kernelRelease);
    if (version && (version[0] < 6 || (version[0] === 6 && version[1] < 4))) {
      return { state: 'unsupported', source: 'osrelease', detail: `kernel ${kernelRelease} is older than 6.4` };
    }
    return { state: 'unknown', source: 'none', detail: 'prctl is probed only on this machine (root /)' };
  }
  const state = bindingState();
  if (!state.loaded) return { state: 'unknown', source: 'none', detail: state.reason };
  if (!ksmPresent) return { state: 'unknown', source: 'none', detail: 'no CONFIG_KSM' };
  try {
    state.binding.getMemoryMerge();
    return { state: 'available', source: 'probe' };
  } catch (error) {
    if (isSystemError(error) && error.code === 'EINVAL') {
      return { state: 'unsupported', source: 'probe', detail: 'prctl(PR_GET_MEMORY_MERGE) failed with EINVAL' };
    }
    if (isSystemError(error) && (error.code === 'EPERM' || error.code === 'EACCES')) {
      return { state: 'blocked', source: 'probe', detail: `prctl(PR_GET_MEMORY_MERGE) failed with ${error.code}` };
    }
    return { state: 'unknown', source: 'none', detail: error instanceof Error ? error.message : String(error) };
  }
}

/** The mount that holds /sys/kernel/mm/ksm, from a mountinfo text. */
export function parseMountinfo(text: string, target = '/sys/kernel/mm/ksm'): MountFacts | undefined {
  let best: MountFacts | undefined;
  for (const line of text.split('\n')) {
    const [left, right] = line.split(' - ');
    if (left === undefined || right === undefined) continue;
    const fields = left.trim().split(/\s+/);
    const mountPoint = fields[4];
    const mountOptions = fields[5];
    if (mountPoint === undefined || mountOptions === undefined) continue;
    const covers = mountPoint === '/' || target === mountPoint || target.startsWith(`${mountPoint}/`);
    // Later lines stack over earlier ones at the same point.
    if (!covers || (best && mountPoint.length < best.mountPoint.length)) continue;
    const superOptions = right.trim().split(/\s+/)[2] ?? '';
    const readOnly = mountOptions.split(',').includes('ro') || superOptions.split(',').includes('ro');
    best = { mountPoint, mountOptions, superOptions, readOnly };
  }
  return best;
}

function statusField(text: string | undefined, key: string): string | undefined {
  if (text === undefined) return undefined;
  const match = new RegExp(`^${key}:\\s*(.*)$`, 'm').exec(text);
  return match?.[1]?.trim();
}

function statusNumber(text: string | undefined, key: string): number | undefined {
  const value = Number(statusField(text, key)?.split(/\s+/)[0]);
  return Number.isSafeInteger(value) ? value : undefined;
}

/** Resident anonymous pages in VMAs marked mergeable: what ksmd visits each full scan. */
export function candidateBytes(vmas: readonly SmapsVma[]): number {
  let bytes = 0;
  for (const vma of vmas) {
    if (!vma.vmFlags.includes('mg')) continue;
    bytes += vma.fields.Anonymous ?? vma.fields.Rss ?? 0;
  }
  return bytes;
}

/**
 * The machine-wide part: every process's smaps, read asynchronously one at a
 * time (the kernel walks page tables to produce each), so a service calling
 * doctor() keeps serving meanwhile.
 */
async function countCandidates(
  root: string,
  target: string,
  targetPages: number,
  pageSize: number,
  ksm: SystemStat | undefined,
): Promise<CandidateFacts> {
  let readablePages = targetPages;
  let processesRead = 1;
  let processesUnreadable = 0;
  let processesSlow = 0;
  let entries: string[] = [];
  try {
    entries = (await fs.promises.readdir(path.join(root, 'proc'))).filter((name) => /^\d+$/.test(name));
  } catch {
    entries = [];
  }
  const targetPid = target === 'self' ? undefined : target;
  for (const name of entries) {
    if (name === targetPid) continue;
    // ksm_stat says cheaply whether a process has any mergeable VMA.
    const stat = await readTextAsync(procPath(root, Number(name), 'ksm_stat'));
    if (stat !== undefined) {
      const { values } = parseKsmStat(stat);
      if (values.mergeable === false) continue;
      if (values.mergeable === undefined && values.mergeAny === false && values.rmapItems === 0) continue;
    }
    // smaps waits for the process's mmap_lock: a process inside a long
    // madvise/prctl/munmap holds it for as long as that takes. Give up on it
    // rather than hang, and stop the pass after a few (each stuck read holds
    // a libuv threadpool thread until the lock is released).
    const smaps = await withDeadline(readTextAsync(procPath(root, Number(name), 'smaps')), SMAPS_DEADLINE_MS);
    if (smaps === TIMED_OUT) {
      processesSlow++;
      if (processesSlow >= MAX_SLOW_PROCESSES) break;
      continue;
    }
    if (smaps === undefined) {
      // Gone, or another user's process without root.
      if (fs.existsSync(procPath(root, Number(name)))) processesUnreadable++;
      continue;
    }
    processesRead++;
    readablePages += Math.floor(candidateBytes(parseSmaps(smaps).vmas) / pageSize);
  }
  const parts = [ksm?.pagesShared, ksm?.pagesSharing, ksm?.pagesUnshared, ksm?.pagesVolatile];
  const kernelTracked = parts.every((part) => part !== undefined)
    ? parts.reduce<number>((sum, part) => sum + part!, 0)
    : undefined;
  return {
    processPages: targetPages,
    readablePages,
    processesRead,
    processesUnreadable,
    processesSlow,
    kernelTracked,
    pages: Math.max(readablePages, kernelTracked ?? 0),
  };
}

function countNumaNodes(root: string): { nodes: number | undefined; distances: number[] | undefined } {
  const dir = path.join(root, 'sys', 'devices', 'system', 'node');
  let nodes: number | undefined;
  try {
    nodes = fs.readdirSync(dir).filter((name) => /^node\d+$/.test(name)).length;
  } catch {
    return { nodes: undefined, distances: undefined };
  }
  const distance = readText(path.join(dir, 'node0', 'distance'));
  const distances = distance?.trim().split(/\s+/).map(Number).filter(Number.isFinite);
  return { nodes, distances: distances && distances.length > 0 ? distances : undefined };
}

export interface CollectOptions {
  root: string;
  pid: number | undefined;
}

export async function collect({ root, pid }: CollectOptions): Promise<Facts> {
  const self = root === '/' && (pid === undefined || pid === process.pid);
  const procName = pid !== undefined ? String(pid) : root === '/' ? String(process.pid) : 'self';
  const procDir = path.join(root, 'proc', procName);
  if (!fs.existsSync(procDir)) throw new KsmNoSuchProcessError(pid ?? process.pid);

  const kernelRelease = readText(path.join(root, 'proc', 'sys', 'kernel', 'osrelease'))?.trim();
  let ksm: SystemStat | undefined;
  try {
    ksm = systemStat({ root });
  } catch (error) {
    if (!(error instanceof KsmUnsupportedError)) throw error;
  }
  let ksmWriteError: string | undefined;
  if (ksm !== undefined) {
    try {
      fs.accessSync(path.join(ksmSysfsDir(root), 'run'), fs.constants.W_OK);
    } catch (error) {
      ksmWriteError = isSystemError(error) ? error.code : String(error);
    }
  }
  const mountinfo = readText(path.join(root, 'proc', 'self', 'mountinfo'));
  const selfStatus = readText(path.join(root, 'proc', 'self', 'status'));
  const euid = Number(statusField(selfStatus, 'Uid')?.split(/\s+/)[1]);
  const numa = countNumaNodes(root);
  const thp = readText(path.join(thpSysfsDir(root), 'enabled'));

  const numericPid = pid ?? (root === '/' ? process.pid : undefined);
  const stat = ksmStat(numericPid, { root });
  let smapsText: string;
  try {
    smapsText = fs.readFileSync(path.join(procDir, 'smaps'), 'utf8');
  } catch (error) {
    throw procReadError(error, pid ?? process.pid);
  }
  const vmas = parseSmaps(smapsText).vmas;
  const status = readText(path.join(procDir, 'status'));
  const ppid = statusNumber(status, 'PPid');
  let parentMergeAny: boolean | undefined;
  if (ppid !== undefined && ppid > 0) {
    const parentStat = readText(procPath(root, ppid, 'ksm_stat'));
    if (parentStat !== undefined) parentMergeAny = parseKsmStat(parentStat).values.mergeAny as boolean | undefined;
  }

  const state = bindingState();
  const pageSize =
    root === '/' && state.loaded
      ? state.binding.pageSize()
      : vmas.find((vma) => vma.fields.KernelPageSize !== undefined)?.fields.KernelPageSize ?? 4096;

  const processPages = Math.floor(candidateBytes(vmas) / pageSize);
  return {
    root,
    procName,
    self,
    pageSize,
    kernelRelease,
    ksm,
    ksmWriteError,
    mount: mountinfo === undefined ? undefined : parseMountinfo(mountinfo),
    euid: Number.isSafeInteger(euid) ? euid : undefined,
    numaNodes: numa.nodes,
    numaDistances: numa.distances,
    thpEnabled: thp === undefined ? undefined : /\[([^\]]+)\]/.exec(thp)?.[1],
    prctl: probePrctl(root, kernelRelease, ksm !== undefined),
    stat,
    vmas,
    status: {
      ppid,
      seccomp: statusNumber(status, 'Seccomp'),
      seccompFilters: statusNumber(status, 'Seccomp_filters'),
      noNewPrivs: statusNumber(status, 'NoNewPrivs'),
    },
    parentMergeAny,
    enableMergeCalled: self ? enableMergeCalled() : undefined,
    labels: self ? liveLabels() : [],
    sensitive: self ? sensitiveRanges() : [],
    candidates: await countCandidates(root, procName, processPages, pageSize, ksm),
  };
}
