/**
 * estimate(): a dry run of KSM. Hashes every touched private anonymous page
 * of the given processes (native code, off the JS thread), confirms every
 * match byte for byte, and says per VMA what merging would save — before
 * KSM is switched on, or before a process calls enableMerge().
 */
import * as os from 'node:os';

import { mapLimit } from '../concurrency.js';
import { hashFor, pagemapScanEnabled, type NativeEstimateResult } from '../binding.js';
import { abortError } from '../errors.js';
import { READ_CONCURRENCY, allTargets, countSkipped, topLists, type AllTargets, type EstimateAll, type EstimateSkipped } from './estimate-all.js';
import { assemble, type VmaNames } from './estimate-assemble.js';
import { PTRACE_HINT, nativeError, plan, planFromMaps, readVmas, samePlan, type Plan } from './estimate-plan.js';
import type { EstimateOptions, EstimateProgress, EstimateResult } from './estimate-types.js';
import { readKsmStat } from '../kernel/ksm-stat.js';
import { distinctTargets, type ProcessTarget } from '../kernel/target.js';
import { labelsOf } from '../merge/published.js';
import { kindsOf } from './kinds.js';
import { requireKsm } from '../kernel/support.js';
import { systemStat } from '../kernel/sysfs.js';
import {
  checkBoolean,
  checkFunction,
  checkOptions,
  checkPid,
  checkSignal,
  invalidType,
  optionalNumber,
  outOfRange,
} from '../validate.js';

export type * from './estimate-types.js';
export { plan } from './estimate-plan.js';

/**
 * Pages per process_vm_readv call while sampling (256 KiB, hashed back from
 * L2). From 32 to 1024 pages a call no size was clearly faster on the
 * machine measured (the kernel's per-page pinning dominates), so the
 * smaller buffer wins.
 */
const BATCH_PAGES = 64;

/** A pid inside a list: undefined is no pid, unlike an omitted optional one. */
function listedPid(value: unknown, name: string): number {
  if (value === undefined) throw invalidType(name, 'of type number', value);
  return checkPid(value, name)!;
}

function checkTargets(targets: unknown, pids: unknown): number[] {
  const list: number[] = [];
  if (targets === undefined || targets === 'self') {
    if (targets === 'self' || pids === undefined) list.push(process.pid);
  } else if (typeof targets === 'number') {
    list.push(checkPid(targets, 'targets')!);
  } else if (Array.isArray(targets)) {
    targets.forEach((pid, i) => list.push(listedPid(pid, `targets[${i}]`)));
  } else {
    throw invalidType('targets', "a pid, an array of pids or 'self'", targets);
  }
  if (pids !== undefined) {
    if (!Array.isArray(pids)) throw invalidType('options.pids', 'an array of pids', pids);
    pids.forEach((pid, i) => list.push(listedPid(pid, `options.pids[${i}]`)));
  }
  const unique = [...new Set(list)];
  if (unique.length === 0) throw outOfRange('targets', 'at least one pid', '[]');
  if (unique.length > 65536) throw outOfRange('targets', 'at most 65536 pids', unique.length);
  return unique;
}

/**
 * Threads estimate() runs on unless told: every core of a machine with one
 * or two, all but one on bigger ones (the cores this process may use).
 */
export function defaultEstimateThreads(): number {
  const cores = os.availableParallelism();
  return Math.min(256, cores <= 2 ? cores : cores - 1);
}

/**
 * Whether estimate() may start on the plan maps allows (two threads or
 * more). Internal knob, not API: NODE_KSM_ESTIMATE_MAPS=0 reads smaps first
 * at every thread count, for bench/ to measure the two orders side by side
 * or to rule the head start out when chasing a discrepancy. Read at each call.
 */
function mapsFirstEnabled(): boolean {
  return process.env.NODE_KSM_ESTIMATE_MAPS !== '0';
}

/** An object literal (not an array, view, signal...): estimate({ all: true }). */
function isPlainObject(value: unknown): value is EstimateOptions {
  if (typeof value !== 'object' || value === null) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

function checkNonNegative(name: string, value: unknown, max: number): number | undefined {
  return optionalNumber(name, value, { min: 0, max });
}

interface Planned {
  plans: Plan[];
  names: Promise<VmaNames[]>;
  resolved: ProcessTarget[];
  machine: AllTargets | undefined;
}

/**
 * The plans maps allows (planFromMaps()), to start hashing on before smaps
 * is read; undefined where a target's plan changed between two reads of its
 * maps (a process mapping and unmapping all the time: V8's heap as it
 * allocates), since smaps' would then seldom be the same: those are read
 * smaps first.
 */
async function plansFromMaps(listed: ProcessTarget[], config: { minRegionBytes: number; page: number }): Promise<Plan[] | undefined> {
  const planOf = async (target: ProcessTarget): Promise<Plan> => planFromMaps(target.pid, await readVmas(target, 'maps'), config.minRegionBytes, config.page);
  const plans = await mapLimit(listed, READ_CONCURRENCY, async (target) => {
    const first = await planOf(target);
    const second = await planOf(target);
    return samePlan(first, second) ? second : undefined;
  });
  return plans.every((p) => p !== undefined) ? plans : undefined;
}

/** A run of the estimator stopped, and its end awaited (its result is not wanted). */
async function stopped(handle: { cancel(): void; promise: Promise<unknown> } | undefined): Promise<void> {
  if (handle === undefined) return;
  handle.cancel();
  await handle.promise.catch(() => {});
}

/** The targets' plans and names: every process of the machine (`listed` undefined), or those listed. */
async function planTargets(
  listed: ProcessTarget[] | undefined,
  config: { onlyMergeable: boolean; minRegionBytes: number; page: number },
  signal: AbortSignal | undefined,
): Promise<Planned> {
  const { onlyMergeable, minRegionBytes, page } = config;
  if (listed === undefined) {
    const machine = await allTargets('/');
    if (signal?.aborted) throw abortError(signal);
    const targets = machine.targets;
    const plans = targets.map((t) => plan(t.target.pid, t.vmas, onlyMergeable, minRegionBytes, page));
    // Every process of the machine: its kinds from the layout alone, no thread or memory reads.
    const names = Promise.all(targets.map(async (t) => ({ kinds: await kindsOf(t.target, t.vmas, undefined, false), labels: labelsOf(t.target) })));
    names.catch(() => {}); // awaited after the estimate; failing meanwhile is not unhandled
    return { plans, names, resolved: targets.map((t) => t.target), machine };
  }
  // Each smaps read is the kernel walking that process's page tables on one
  // thread: several targets are read side by side (on the reader threads).
  const vmasOf = await mapLimit(listed, READ_CONCURRENCY, (target) => readVmas(target));
  const plans = vmasOf.map((vmas, i) => plan(listed[i]!.pid, vmas, onlyMergeable, minRegionBytes, page));
  // Node's kinds (thread stacks, malloc headers) are read while the pages are hashed.
  const names = mapLimit(listed, READ_CONCURRENCY, async (target, i) => ({ kinds: await kindsOf(target, vmasOf[i]!), labels: labelsOf(target) }));
  names.catch(() => {});
  return { plans, names, resolved: listed, machine: undefined };
}

/**
 * What KSM would merge in the given processes (default: this one), per VMA,
 * per process and in total. Exact: every pair of pages found by hash is
 * compared byte for byte. Runs off the event loop; memory used is about 16
 * bytes per candidate page (reported as `memoryBytes`).
 *
 * Reads other processes with process_vm_readv, and itself the same way (so
 * memory freed meanwhile is skipped, never a crash). Pages never touched are
 * found through the process's pagemap and never read, so nothing is faulted in.
 * Twins are looked for among the targets only; KSM merges machine-wide.
 *
 * @throws TypeError / RangeError for bad arguments.
 * @throws KsmNoSuchProcessError when a target does not exist at the start
 *   (one that exits later is reported with `exited: true`).
 * @throws SystemError EACCES/EPERM (with a hint) without ptrace rights over a target.
 * @throws AbortError (code ABORT_ERR) when `signal` aborts.
 */
export async function estimate(options: EstimateOptions & { all: true }): Promise<EstimateResult & { all: EstimateAll }>;
export async function estimate(targets?: number | number[] | 'self', options?: EstimateOptions): Promise<EstimateResult>;
export async function estimate(
  targetsOrOptions?: number | number[] | 'self' | EstimateOptions,
  options?: EstimateOptions,
): Promise<EstimateResult> {
  // estimate({ all: true }): the options come first when there are no targets.
  const optionsFirst = isPlainObject(targetsOrOptions);
  if (optionsFirst && options !== undefined) throw invalidType('targets', "a pid, an array of pids or 'self'", targetsOrOptions);
  const targets = optionsFirst ? undefined : (targetsOrOptions as number | number[] | 'self' | undefined);
  const opts = checkOptions<EstimateOptions>(optionsFirst ? targetsOrOptions : options);
  const all = checkBoolean('options.all', opts.all) ?? false;
  if (all && (targets !== undefined || opts.pids !== undefined)) {
    throw invalidType('targets', 'absent with options.all (every process is a target)', targets ?? opts.pids);
  }
  const top = optionalNumber('options.top', opts.top, { integer: true, min: 0, max: 1e6 }) ?? 20;
  const pids = all ? [] : checkTargets(targets, opts.pids);
  const intervalMs = checkNonNegative('options.intervalMs', opts.intervalMs, 86_400_000) ?? 0;
  const onlyMergeable = checkBoolean('options.onlyMergeable', opts.onlyMergeable) ?? false;
  const minRegionBytes = checkNonNegative('options.minRegionBytes', opts.minRegionBytes, Number.MAX_SAFE_INTEGER) ?? 0;
  const useZeroOption = checkBoolean('options.useZeroPages', opts.useZeroPages);
  const maxSharingOption = optionalNumber('options.maxPageSharing', opts.maxPageSharing, { integer: true, min: 2, max: 1e9 });
  const threads = optionalNumber('options.threads', opts.threads, { integer: true, min: 1, max: 256 }) ?? defaultEstimateThreads();
  const signal = checkSignal(opts.signal);
  const onProgress = checkFunction('options.onProgress', opts.onProgress);
  const native = requireKsm();
  if (signal?.aborted) throw abortError(signal);

  const started = performance.now();
  const stat = useZeroOption === undefined || maxSharingOption === undefined ? systemStat() : undefined;
  const useZeroPages = useZeroOption ?? stat?.useZeroPages ?? false;
  const maxPageSharing = maxSharingOption ?? stat?.maxPageSharing ?? 256;
  const page = native.pageSize();

  let progressError: unknown;
  let handle: ReturnType<typeof native.estimatePages> | undefined;
  // Hashes by `plans`; its promise is awaited, or cancelled and awaited, on every way out.
  const start = (plans: Plan[]): NonNullable<typeof handle> => {
    const run = native.estimatePages(
      plans.map((p) => ({ pid: p.pid, ranges: p.ranges, readable: p.readable, expectedPages: p.expectedPages })),
      {
        intervalMs,
        maxPageSharing,
        expectedPages: plans.reduce((sum, p) => sum + p.expectedPages, 0),
        batchPages: BATCH_PAGES,
        pagemapScan: pagemapScanEnabled(),
        hash: hashFor(),
        threads,
        skipRefused: all,
      },
      onProgress === undefined
        ? undefined
        : (phase, done, total) => {
            if (progressError !== undefined) return;
            try {
              onProgress({ phase: phase as EstimateProgress['phase'], done, total });
            } catch (error) {
              progressError = error;
              handle?.cancel();
            }
          },
    );
    run.promise.catch(() => {}); // may settle while smaps is read: awaited below, never unhandled
    return run;
  };
  const onAbort = (): void => handle?.cancel();
  signal?.addEventListener('abort', onAbort, { once: true });
  let raw: NativeEstimateResult;
  let planned: Planned;
  let mergeAnyRead: Promise<Array<boolean | undefined>>;
  let plannedFrom: EstimateResult['plannedFrom'] = 'smaps';
  try {
    // A thread id names its process: each process is estimated once.
    const listed = all ? undefined : distinctTargets('/', pids);
    // With two threads or more the pages are read by the plan maps allows
    // while smaps (a walk of each target's page tables, on one thread) is
    // read beside them; smaps' plan decides when it comes. Not for this
    // process: its own reads map and unmap memory in between.
    const speculate = listed !== undefined && !onlyMergeable && threads >= 2 && listed.every((t) => t.pid !== process.pid) && mapsFirstEnabled();
    const fromMaps = speculate ? await plansFromMaps(listed, { minRegionBytes, page }) : undefined;
    if (signal?.aborted) throw abortError(signal);
    if (fromMaps !== undefined) {
      try {
        handle = start(fromMaps);
      } catch {
        // A plan the addon refuses (it checks the ranges): smaps' alone decides, as with one thread.
      }
    }
    try {
      planned = await planTargets(listed, { onlyMergeable, minRegionBytes, page }, signal);
      if (signal?.aborted) throw abortError(signal);
    } catch (error) {
      await stopped(handle);
      throw error;
    }
    // Only the result needs them: read while the pages are hashed.
    mergeAnyRead = Promise.all(planned.resolved.map((target) => readKsmStat(target).then((stat) => stat.mergeAny, () => undefined)));
    if (handle === undefined) {
      handle = start(planned.plans);
    } else if (progressError === undefined) {
      if (planned.plans.every((p, i) => samePlan(p, fromMaps![i]!))) {
        plannedFrom = 'maps';
      } else {
        // A flag maps does not show (hugetlb, PFN, I/O, droppable), or a layout that changed in between.
        await stopped(handle);
        plannedFrom = 'restarted';
        handle = start(planned.plans);
      }
    }
    raw = await handle.promise;
  } catch (error) {
    throw nativeError(error);
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  const { plans, names: naming, machine } = planned;
  if (progressError !== undefined) throw progressError;
  if (raw.cancelled) throw abortError(signal!);

  const [names, mergeAny] = await Promise.all([naming, mergeAnyRead]);
  const result = await assemble(raw, plans, names, mergeAny, {
    page,
    useZeroPages,
    maxPageSharing,
    intervalMs,
    elapsedMs: performance.now() - started,
    plannedFrom,
  });
  if (machine === undefined) return result;
  // Those that refused process_vm_readv (ptrace rights) join the skipped list.
  const skipped: EstimateSkipped[] = [...machine.skipped];
  const refused = new Set(raw.targets.filter((t) => t.refused).map((t) => t.pid));
  for (const pid of refused) {
    skipped.push({ pid, comm: machine.comms.get(pid), reason: 'not allowed', detail: `EPERM: process_vm_readv or pagemap refused (${PTRACE_HINT})` });
  }
  skipped.sort((a, b) => a.pid - b.pid);
  result.processes = result.processes.filter((p) => !refused.has(p.pid));
  result.all = {
    listed: machine.listed,
    estimated: result.processes.length,
    skippedCounts: countSkipped(skipped),
    skipped,
    ...topLists(result.processes, machine.comms, top),
  };
  return result;
}
