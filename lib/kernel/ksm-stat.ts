/**
 * Per-process KSM accounting from /proc/PID: ksm_stat (6.1+, fields added
 * through 6.x) or ksm_merging_pages (5.19+). Fields are detected by parsing,
 * never by kernel version.
 */
import * as fs from 'node:fs';

import { KsmNoSuchProcessError, KsmUnsupportedError, withHint, isSystemError } from '../errors.js';
import { procPath } from './paths.js';
import { checkOptions, checkPid, checkRoot, invalidType, type RootOption } from '../validate.js';

export interface KsmStat {
  /** The process read. */
  pid: number;
  /** ksm_rmap_items: pages KSM tracks for this process (each costs an rmap_item). */
  rmapItems: number | undefined;
  /** ksm_zero_pages: pages merged with the kernel's zero page (use_zero_pages). */
  zeroPages: number | undefined;
  /** ksm_merging_pages: pages of this process backed by a KSM page. */
  mergingPages: number | undefined;
  /** ksm_process_profit in bytes: counts the copy that had to stay, see profit(). */
  processProfit: number | undefined;
  /** ksm_merge_any: PR_SET_MEMORY_MERGE is on for this process. */
  mergeAny: boolean | undefined;
  /** ksm_mergeable: the process has at least one mergeable VMA. */
  mergeable: boolean | undefined;
  /** Which file answered; 'none' on kernels with neither. */
  source: 'ksm_stat' | 'ksm_merging_pages' | 'none';
  /** Known fields this kernel did not report. */
  missing: KsmStatField[];
  /** Lines we do not know, kept raw by the kernel's key. */
  unknown: Record<string, string>;
}

export type KsmStatField = 'rmapItems' | 'zeroPages' | 'mergingPages' | 'processProfit' | 'mergeAny' | 'mergeable';

const NUMERIC: Record<string, KsmStatField> = {
  ksm_rmap_items: 'rmapItems',
  ksm_zero_pages: 'zeroPages',
  ksm_merging_pages: 'mergingPages',
  ksm_process_profit: 'processProfit',
};
const BOOLEAN: Record<string, KsmStatField> = {
  ksm_merge_any: 'mergeAny',
  ksm_mergeable: 'mergeable',
};
const ALL_FIELDS: KsmStatField[] = ['rmapItems', 'zeroPages', 'mergingPages', 'processProfit', 'mergeAny', 'mergeable'];

export interface ParsedKsmStat {
  values: Partial<Record<KsmStatField, number | boolean>>;
  unknown: Record<string, string>;
}

/** Parses ksm_stat text: `key value` and `key: yes|no` lines, in any order. */
export function parseKsmStat(text: string): ParsedKsmStat {
  if (typeof text !== 'string') throw invalidType('text', 'of type string', text);
  const values: Partial<Record<KsmStatField, number | boolean>> = {};
  const unknown: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.length === 0) continue;
    const match = /^([A-Za-z0-9_]+):?\s+(.*)$/.exec(line);
    if (!match) {
      setOwn(unknown, line, '');
      continue;
    }
    const key = match[1]!;
    const value = match[2]!.trim();
    // Own keys only: "constructor" is a kernel-text key like any other.
    const numeric = Object.hasOwn(NUMERIC, key) ? NUMERIC[key] : undefined;
    const boolean = Object.hasOwn(BOOLEAN, key) ? BOOLEAN[key] : undefined;
    if (numeric !== undefined && /^-?\d+$/.test(value) && Number.isSafeInteger(Number(value))) {
      values[numeric] = Number(value);
    } else if (boolean !== undefined && (value === 'yes' || value === 'no')) {
      values[boolean] = value === 'yes';
    } else {
      setOwn(unknown, key, value);
    }
  }
  return { values, unknown };
}

/** obj[key] = value as an own property, even for "__proto__". */
function setOwn(obj: Record<string, string>, key: string, value: string): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

function readIfPresent(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (error) {
    if (isSystemError(error) && error.code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Turns a failed /proc read into the error a caller can act on. */
export function procReadError(error: unknown, pid: number): unknown {
  if (isSystemError(error)) {
    if (error.code === 'ESRCH' || error.code === 'ENOENT') return new KsmNoSuchProcessError(pid, { cause: error });
    if (error.code === 'EACCES' || error.code === 'EPERM') {
      return withHint(error, `reading /proc/${pid} of another user's process needs root or the same uid`);
    }
  }
  return error;
}

export function assertProcRoot(root: string): void {
  if (root === '/' && process.platform !== 'linux') {
    throw new KsmUnsupportedError(`there is no /proc with KSM accounting on ${process.platform}`);
  }
}

/**
 * `/proc/PID/ksm_stat` of a process (default: this one), parsed. Falls back
 * to `/proc/PID/ksm_merging_pages` where ksm_stat is missing.
 *
 * @throws KsmNoSuchProcessError when the process does not exist.
 * @throws SystemError EACCES for another user's process without root.
 */
export function ksmStat(pid?: number, options?: RootOption): KsmStat {
  const target = checkPid(pid);
  const root = checkRoot(checkOptions<RootOption>(options));
  assertProcRoot(root);
  const dir = target ?? 'self';
  const resolvedPid = target ?? process.pid;

  if (!fs.existsSync(procPath(root, dir))) throw new KsmNoSuchProcessError(resolvedPid);

  let values: Partial<Record<KsmStatField, number | boolean>> = {};
  let unknown: Record<string, string> = {};
  let source: KsmStat['source'] = 'none';
  try {
    const stat = readIfPresent(procPath(root, dir, 'ksm_stat'));
    if (stat !== undefined) {
      ({ values, unknown } = parseKsmStat(stat));
      source = 'ksm_stat';
    }
    // Older kernels (5.19 - 6.0), and 6.1 - 6.5 whose ksm_stat lacks the field.
    if (values.mergingPages === undefined) {
      const merging = readIfPresent(procPath(root, dir, 'ksm_merging_pages'));
      // One decimal count; Number() would also take '', '0x10' and '1e3'.
      const trimmed = merging?.trim() ?? '';
      const count = /^\d+$/.test(trimmed) ? Number(trimmed) : NaN;
      if (Number.isSafeInteger(count)) {
        values.mergingPages = count;
        if (source === 'none') source = 'ksm_merging_pages';
      }
    }
  } catch (error) {
    throw procReadError(error, resolvedPid);
  }
  // A process that exits while it is read: its files vanish (ENOENT, taken
  // above for an older kernel's missing file), or, as a zombie, ksm_stat is
  // empty because it has no mm left. Either way it is gone, not degraded.
  if ((source !== 'ksm_stat' || Object.keys(values).length === 0) && vanished(root, dir)) {
    throw new KsmNoSuchProcessError(resolvedPid);
  }

  return {
    pid: resolvedPid,
    rmapItems: values.rmapItems as number | undefined,
    zeroPages: values.zeroPages as number | undefined,
    mergingPages: values.mergingPages as number | undefined,
    processProfit: values.processProfit as number | undefined,
    mergeAny: values.mergeAny as boolean | undefined,
    mergeable: values.mergeable as boolean | undefined,
    source,
    missing: ALL_FIELDS.filter((field) => values[field] === undefined),
    unknown,
  };
}

/** PF_EXITING in /proc/PID/stat's flags: do_exit() has begun; the mm goes next. */
const PF_EXITING = 0x4;

/** The process is gone, exiting, or a zombie / dead task: no memory left to report. */
function vanished(root: string, dir: number | 'self'): boolean {
  try {
    const stat = fs.readFileSync(procPath(root, dir, 'stat'), 'utf8');
    // "pid (comm) S ppid pgrp session tty tpgid flags ...": comm may hold
    // spaces and parentheses, the fields follow the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 1).trim().split(/\s+/);
    const state = fields[0];
    const flags = Number(fields[6]);
    return state === 'Z' || state === 'X' || state === 'x' || (Number.isSafeInteger(flags) && (flags & PF_EXITING) !== 0);
  } catch (error) {
    if (isSystemError(error) && error.code === 'ESRCH') return true;
    // Reaped: the whole /proc/PID directory is gone (a fixture tree may simply lack `stat`).
    return isSystemError(error) && error.code === 'ENOENT' && !fs.existsSync(procPath(root, dir));
  }
}

/** /proc/PID/smaps text (default: this process). */
export function readSmapsText(pid?: number, root = '/'): string {
  const dir = pid ?? 'self';
  try {
    return fs.readFileSync(procPath(root, dir, 'smaps'), 'utf8');
  } catch (error) {
    throw procReadError(error, pid ?? process.pid);
  }
}
