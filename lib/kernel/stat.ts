/**
 * /proc/PID/stat: the scheduler's one-line view of a task. The only parser of
 * it: "pid (comm) S ppid pgrp session tty tpgid flags minflt ... utime stime ...".
 * comm may hold spaces and parentheses; the fields follow the last ')'.
 */
import { readText, readTextOrUndefined } from './files.js';
import { procPath } from './paths.js';

export interface ProcStat {
  pid: number;
  /** The task's name as the kernel keeps it (15 bytes at most), raw: escape before printing. */
  comm: string;
  /** R, S, D, Z, X, ... */
  state: string;
  ppid: number;
  /** task->flags (PF_*). */
  flags: number;
  /** CPU time in USER_HZ ticks (100 on every Linux ABI Node supports); undefined in a shortened line. */
  utimeTicks: number | undefined;
  stimeTicks: number | undefined;
  /** Ticks after boot at which the task started: with the pid, names one process for its lifetime. */
  startTimeTicks: number | undefined;
}

/** PF_EXITING: do_exit() has begun; the mm goes next. */
export const PF_EXITING = 0x4;
/** PF_KTHREAD: a kernel thread, no user memory. */
export const PF_KTHREAD = 0x00200000;
/** USER_HZ: the unit of utime and stime. */
export const USER_HZ = 100;

/** Parses the text of /proc/PID/stat; undefined when it is not one. */
export function parseProcStat(text: string): ProcStat | undefined {
  const open = text.indexOf(' (');
  const close = text.lastIndexOf(')');
  if (open < 1 || close < open) return undefined;
  const pid = Number(text.slice(0, open));
  const fields = text.slice(close + 1).trim().split(/\s+/);
  const number = (i: number): number => Number(fields[i]);
  const optional = (i: number): number | undefined => (Number.isSafeInteger(number(i)) ? number(i) : undefined);
  const parsed: ProcStat = {
    pid,
    comm: text.slice(open + 2, close),
    state: fields[0] ?? '',
    ppid: number(1),
    flags: number(6),
    utimeTicks: optional(11),
    stimeTicks: optional(12),
    startTimeTicks: optional(19),
  };
  return parsed.state !== '' && [pid, parsed.ppid, parsed.flags].every(Number.isSafeInteger) ? parsed : undefined;
}

/** /proc/PID/stat of a process, parsed; throws the system error of the read. */
export function readProcStat(root: string, pid: number | 'self'): ProcStat | undefined {
  return parseProcStat(readText(procPath(root, pid, 'stat')));
}

/** Zombie or dead, or exiting: no memory left to report. */
export function isExiting(stat: ProcStat): boolean {
  return stat.state === 'Z' || stat.state === 'X' || stat.state === 'x' || (stat.flags & PF_EXITING) !== 0;
}

export function isKernelThread(stat: ProcStat): boolean {
  return (stat.flags & PF_KTHREAD) !== 0;
}

/**
 * CPU time of a task in nanoseconds: /proc/PID/schedstat's first field
 * (exact), else utime + stime from /proc/PID/stat in USER_HZ ticks.
 */
export function threadCpuTimeNs(pid: number, root = '/'): number | undefined {
  const first = readTextOrUndefined(procPath(root, pid, 'schedstat'))?.trim().split(/\s+/)[0];
  const ns = Number(first);
  if (first !== undefined && first !== '' && Number.isSafeInteger(ns)) return ns;
  const text = readTextOrUndefined(procPath(root, pid, 'stat'));
  const stat = text === undefined ? undefined : parseProcStat(text);
  if (stat?.utimeTicks === undefined || stat.stimeTicks === undefined) return undefined;
  return (stat.utimeTicks + stat.stimeTicks) * (1e9 / USER_HZ);
}
