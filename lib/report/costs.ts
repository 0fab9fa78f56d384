/**
 * What merging costs, as the kernel counts it: copy-on-write faults that
 * broke a KSM page (cow_ksm), swap-ins that had to copy one
 * (ksm_swpin_copy), both in vmstat, and the CPU time of ksmd, the
 * kernel thread that scans (its schedstat, or stat's utime + stime).
 * Counters since boot; rates are differences between two readings.
 */
import { findByComm } from '../kernel/processes.js';
import { readProcStat, threadCpuTimeNs, USER_HZ } from '../kernel/stat.js';
import { readUptimeSeconds } from '../kernel/uptime.js';
import { readVmstatKsm } from '../kernel/vmstat.js';

export interface KsmCosts {
  /** When it was read (performance.now(), ms): for rates between readings. */
  atMs: number;
  /** Write faults that copied a KSM page, since boot (cow_ksm); undefined where the kernel has no such counter. */
  cowKsm: number | undefined;
  /** Swap-ins that copied a KSM page, since boot (ksm_swpin_copy). */
  ksmSwpinCopy: number | undefined;
  /** ksmd's pid; undefined where there is no ksmd (no CONFIG_KSM). */
  ksmdPid: number | undefined;
  /** ksmd's CPU time since it started, in seconds. */
  ksmdCpuSeconds: number | undefined;
  /** Seconds since ksmd started (uptime - its start time). */
  ksmdAgeSeconds: number | undefined;
}

export interface KsmCostRates {
  intervalSec: number;
  cowKsmPerSecond: number | undefined;
  ksmSwpinCopyPerSecond: number | undefined;
  /** ksmd's CPU use, percent of one CPU. */
  ksmdCpuPercent: number | undefined;
}

/** ksmd's pid, found once per root (a kernel thread lives as long as the machine). */
const ksmdPids = new Map<string, number | undefined>();

export function readKsmCosts(root = '/'): KsmCosts {
  const atMs = performance.now();
  const { cowKsm, ksmSwpinCopy } = readVmstatKsm(root);
  if (!ksmdPids.has(root) || ksmdPids.get(root) === undefined) ksmdPids.set(root, findByComm(root, 'ksmd'));
  const ksmdPid = ksmdPids.get(root);
  let ksmdCpuSeconds: number | undefined;
  let ksmdAgeSeconds: number | undefined;
  if (ksmdPid !== undefined) {
    const ns = threadCpuTimeNs(ksmdPid, root);
    ksmdCpuSeconds = ns === undefined ? undefined : ns / 1e9;
    let started: number | undefined;
    try {
      started = readProcStat(root, ksmdPid)?.startTimeTicks;
    } catch {
      started = undefined;
    }
    const uptime = readUptimeSeconds(root);
    ksmdAgeSeconds = started === undefined || uptime === undefined ? undefined : Math.max(0, uptime - started / USER_HZ);
  }
  return { atMs, cowKsm, ksmSwpinCopy, ksmdPid, ksmdCpuSeconds, ksmdAgeSeconds };
}

const perSecond = (a: number | undefined, b: number | undefined, seconds: number): number | undefined =>
  a === undefined || b === undefined ? undefined : Math.max(0, b - a) / seconds;

/** Rates between two readings; undefined when they are not apart in time. */
export function costRates(previous: KsmCosts, now: KsmCosts): KsmCostRates | undefined {
  const intervalSec = (now.atMs - previous.atMs) / 1000;
  if (intervalSec <= 0) return undefined;
  const cpu = perSecond(previous.ksmdCpuSeconds, now.ksmdCpuSeconds, intervalSec);
  return {
    intervalSec,
    cowKsmPerSecond: perSecond(previous.cowKsm, now.cowKsm, intervalSec),
    ksmSwpinCopyPerSecond: perSecond(previous.ksmSwpinCopy, now.ksmSwpinCopy, intervalSec),
    ksmdCpuPercent: cpu === undefined ? undefined : cpu * 100,
  };
}

/** Rates averaged over ksmd's life (status has one reading): CPU since it started, CoW breaks per second over the same time. */
export function lifetimeRates(costs: KsmCosts): KsmCostRates | undefined {
  const age = costs.ksmdAgeSeconds;
  if (age === undefined || age <= 0) return undefined;
  return {
    intervalSec: age,
    cowKsmPerSecond: costs.cowKsm === undefined ? undefined : costs.cowKsm / age,
    ksmSwpinCopyPerSecond: costs.ksmSwpinCopy === undefined ? undefined : costs.ksmSwpinCopy / age,
    ksmdCpuPercent: costs.ksmdCpuSeconds === undefined ? undefined : (costs.ksmdCpuSeconds / age) * 100,
  };
}
