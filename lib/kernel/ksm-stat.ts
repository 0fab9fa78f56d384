/**
 * Per-process KSM accounting from /proc/PID: ksm_stat (6.1+, fields added
 * through 6.x) or ksm_merging_pages (5.19+). Fields are detected by parsing,
 * never by kernel version.
 */
import { KsmNoSuchProcessError, isSystemError } from '../errors.js';
import { invalidType, type RootOption } from '../validate.js';
import { procFailure, procReadError } from './errno.js';
import { exists, readTextIfPresent } from './files.js';
import { procPath } from './paths.js';
import { readProcFileIfPresent } from './proc-read.js';
import { isExiting, readProcStat } from './stat.js';
import { resolveTarget, type ProcessTarget } from './target.js';

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

/** `ksm_merging_pages`: one decimal count (Number() would also take '', '0x10' and '1e3'). */
function parseMergingPages(text: string | undefined): number | undefined {
  const trimmed = text?.trim() ?? '';
  const count = /^\d+$/.test(trimmed) ? Number(trimmed) : NaN;
  return Number.isSafeInteger(count) ? count : undefined;
}

interface Combined {
  values: Partial<Record<KsmStatField, number | boolean>>;
  unknown: Record<string, string>;
  source: KsmStat['source'];
}

/**
 * The one assembly of a KsmStat's figures from the kernel's files: ksm_stat
 * where it exists, and ksm_merging_pages for older kernels (5.19 - 6.0) and
 * for 6.1 - 6.5, whose ksm_stat lacks that field (`merging` is read only then).
 */
function combine(stat: ParsedKsmStat | undefined, merging: string | undefined): Combined {
  const values = { ...(stat?.values ?? {}) };
  let source: KsmStat['source'] = stat === undefined ? 'none' : 'ksm_stat';
  if (values.mergingPages === undefined) {
    const count = parseMergingPages(merging);
    if (count !== undefined) {
      values.mergingPages = count;
      if (source === 'none') source = 'ksm_merging_pages';
    }
  }
  return { values, unknown: stat?.unknown ?? {}, source };
}

/**
 * A process that exits while it is read: its files vanish (ENOENT, taken for
 * an older kernel's missing file), or, as a zombie, ksm_stat is empty because
 * it has no mm left. Either way it is gone, not degraded.
 */
function finish(target: ProcessTarget, { values, unknown, source }: Combined): KsmStat {
  if ((source !== 'ksm_stat' || Object.keys(values).length === 0) && vanished(target)) {
    throw new KsmNoSuchProcessError(target.pid);
  }
  return {
    pid: target.pid,
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

/** The process is gone, exiting, or a zombie / dead task: no memory left to report. */
function vanished(target: ProcessTarget): boolean {
  try {
    const stat = readProcStat(target.root, target.dir);
    return stat !== undefined && isExiting(stat);
  } catch (error) {
    if (isSystemError(error) && error.code === 'ESRCH') return true;
    // Reaped: the whole /proc/PID directory is gone (a fixture tree may simply lack `stat`).
    return procFailure(error) === 'gone' && !exists(procPath(target.root, target.dir));
  }
}

function readSync(target: ProcessTarget, file: string): string | undefined {
  try {
    return readTextIfPresent(procPath(target.root, target.dir, file));
  } catch (error) {
    throw procReadError(error, target.pid);
  }
}

/** ksm_stat of a resolved target, synchronously. */
export function readKsmStatSync(target: ProcessTarget): KsmStat {
  const text = readSync(target, 'ksm_stat');
  const parsed = text === undefined ? undefined : parseKsmStat(text);
  const merging = parsed?.values.mergingPages === undefined ? readSync(target, 'ksm_merging_pages') : undefined;
  return finish(target, combine(parsed, merging));
}

/**
 * ksm_stat of a resolved target, off the event loop and within `deadlineMs`:
 * reading ksm_mergeable takes the process's mmap lock, which it can hold for
 * seconds.
 *
 * @throws KsmTimeoutError past the deadline; as ksmStat() otherwise.
 */
export async function readKsmStat(target: ProcessTarget, deadlineMs?: number): Promise<KsmStat> {
  const text = (await readProcFileIfPresent(target, 'ksm_stat', deadlineMs))?.toString('utf8');
  const parsed = text === undefined ? undefined : parseKsmStat(text);
  const merging = parsed?.values.mergingPages === undefined
    ? (await readProcFileIfPresent(target, 'ksm_merging_pages', deadlineMs))?.toString('utf8')
    : undefined;
  if (parsed === undefined && merging === undefined && !exists(procPath(target.root, target.dir))) {
    throw new KsmNoSuchProcessError(target.pid);
  }
  return finish(target, combine(parsed, merging));
}

/**
 * `/proc/PID/ksm_stat` of a process (default: this one), parsed. Falls back
 * to `/proc/PID/ksm_merging_pages` where ksm_stat is missing. Synchronous:
 * while the process holds its mmap lock (a long mmap, munmap or merge-state
 * change), this waits for it; `node-ksm status`, `top`, the exporter and
 * doctor read other processes with a deadline instead.
 *
 * @throws KsmNoSuchProcessError when the process does not exist.
 * @throws SystemError EACCES for another user's process without root.
 */
export function ksmStat(pid?: number, options?: RootOption): KsmStat {
  const target = resolveTarget(pid, options);
  if (!exists(procPath(target.root, target.dir))) throw new KsmNoSuchProcessError(target.pid);
  return readKsmStatSync(target);
}
