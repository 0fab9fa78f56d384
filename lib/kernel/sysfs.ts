/**
 * /sys/kernel/mm/ksm: every counter and knob, typed; knobs written as root.
 * Files this module does not know are kept raw, never dropped.
 */
import * as path from 'node:path';

import { KsmUnsupportedError, isSystemError, withHint, type SystemError } from '../errors.js';
import { isDirectory, listDirectory, readText, readTextOrUndefined, writeText } from './files.js';
import { ksmSysfsDir } from './paths.js';
import { checkOptions, checkNumber, checkRoot, invalidType, outOfRange, type RootOption } from '../validate.js';

type Kind = 'int' | 'bool' | 'choice';

/** sysfs file -> property, with how to read it. */
const FILES = {
  run: ['run', 'int'],
  pages_to_scan: ['pagesToScan', 'int'],
  sleep_millisecs: ['sleepMillisecs', 'int'],
  pages_shared: ['pagesShared', 'int'],
  pages_sharing: ['pagesSharing', 'int'],
  pages_unshared: ['pagesUnshared', 'int'],
  pages_volatile: ['pagesVolatile', 'int'],
  pages_scanned: ['pagesScanned', 'int'],
  pages_skipped: ['pagesSkipped', 'int'],
  full_scans: ['fullScans', 'int'],
  general_profit: ['generalProfit', 'int'],
  ksm_zero_pages: ['ksmZeroPages', 'int'],
  use_zero_pages: ['useZeroPages', 'bool'],
  smart_scan: ['smartScan', 'bool'],
  max_page_sharing: ['maxPageSharing', 'int'],
  merge_across_nodes: ['mergeAcrossNodes', 'bool'],
  stable_node_chains: ['stableNodeChains', 'int'],
  stable_node_dups: ['stableNodeDups', 'int'],
  stable_node_chains_prune_millisecs: ['stableNodeChainsPruneMillisecs', 'int'],
  advisor_mode: ['advisorMode', 'choice'],
  advisor_target_scan_time: ['advisorTargetScanTimeSec', 'int'],
  advisor_max_cpu: ['advisorMaxCpuPercent', 'int'],
  advisor_min_pages_to_scan: ['advisorMinPagesToScan', 'int'],
  advisor_max_pages_to_scan: ['advisorMaxPagesToScan', 'int'],
} as const satisfies Record<string, readonly [string, Kind]>;

type FileName = keyof typeof FILES;
type PropertyOf<F extends FileName> = (typeof FILES)[F][0];
type ValueOf<K extends Kind> = K extends 'int' ? number : K extends 'bool' ? boolean : string;

export type SystemStatValues = {
  [F in FileName as PropertyOf<F>]: ValueOf<(typeof FILES)[F][1]> | undefined;
};

export interface SystemStat extends SystemStatValues {
  /** `run` in words: 0 stopped, 1 running, 2 unmerging everything. */
  runState: 'stopped' | 'running' | 'unmerge' | 'unknown';
  /** The modes advisor_mode offers, e.g. ['none', 'scan-time']. */
  advisorModes: string[] | undefined;
  /** Known files this kernel does not have. */
  missing: string[];
  /** Files we do not know, raw text by file name. */
  unknown: Record<string, string>;
  /** Files that exist but could not be read, error code by file name. */
  unreadable: Record<string, string>;
}


/** Whether /sys/kernel/mm/ksm exists under `root` (CONFIG_KSM). */
export function ksmSysfsPresent(root = '/'): boolean {
  return isDirectory(ksmSysfsDir(root));
}

/** obj[key] = value as an own property, even for "__proto__". */
function setOwn(obj: Record<string, string>, key: string, value: string): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

function parseInt64(text: string): number | undefined {
  if (!/^-?\d+$/.test(text)) return undefined;
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : undefined;
}

/** advisor_mode reads `[none] scan-time`: the bracketed one is in force. */
export function parseChoice(text: string): { selected: string | undefined; options: string[] } {
  const options = text.split(/\s+/).filter(Boolean).map((word) => word.replace(/^\[|\]$/g, ''));
  const selected = /\[([^\]]+)\]/.exec(text)?.[1];
  return { selected, options };
}

/**
 * Every file in /sys/kernel/mm/ksm, typed. Fields a kernel lacks are
 * undefined and listed in `missing`.
 *
 * @throws KsmUnsupportedError when the directory does not exist (no CONFIG_KSM).
 */
export function systemStat(options?: RootOption): SystemStat {
  const root = checkRoot(checkOptions<RootOption>(options));
  const dir = ksmSysfsDir(root);
  let entries: string[];
  try {
    entries = listDirectory(dir);
  } catch (error) {
    if (isSystemError(error) && (error.code === 'ENOENT' || error.code === 'ENOTDIR')) {
      throw new KsmUnsupportedError(`${dir} does not exist: the kernel was built without CONFIG_KSM`);
    }
    throw error;
  }

  const values: Record<string, number | boolean | string | undefined> = {};
  const unknown: Record<string, string> = {};
  const unreadable: Record<string, string> = {};
  let advisorModes: string[] | undefined;

  for (const entry of entries.sort()) {
    let text: string;
    try {
      text = readText(path.join(dir, entry)).trim();
    } catch (error) {
      setOwn(unreadable, entry, isSystemError(error) ? error.code : String(error));
      continue;
    }
    // Own keys only: a file named "constructor" is unknown, not Object.
    const known = Object.hasOwn(FILES, entry) ? (FILES as Record<string, readonly [string, Kind]>)[entry] : undefined;
    if (known === undefined) {
      setOwn(unknown, entry, text);
      continue;
    }
    const [property, kind] = known;
    if (kind === 'choice') {
      const choice = parseChoice(text);
      values[property] = choice.selected;
      advisorModes = choice.options;
      if (choice.selected === undefined) setOwn(unknown, entry, text);
      continue;
    }
    const number = parseInt64(text);
    if (number === undefined || (kind === 'bool' && number !== 0 && number !== 1)) {
      setOwn(unknown, entry, text);
      continue;
    }
    values[property] = kind === 'bool' ? number === 1 : number;
  }

  const stat = {} as Record<string, unknown>;
  const missing: string[] = [];
  for (const file of Object.keys(FILES) as FileName[]) {
    const property = FILES[file][0];
    stat[property] = values[property];
    if (!entries.includes(file)) missing.push(file);
  }
  const run = values.run as number | undefined;
  return {
    ...(stat as SystemStatValues),
    runState: run === 0 ? 'stopped' : run === 1 ? 'running' : run === 2 ? 'unmerge' : 'unknown',
    advisorModes,
    missing,
    unknown,
    unreadable,
  };
}

/** The knobs root can set. */
export interface KsmKnobs {
  /** 0 stop, 1 run, 2 stop and unmerge every merged page. */
  run?: 0 | 1 | 2;
  pagesToScan?: number;
  sleepMillisecs?: number;
  useZeroPages?: boolean;
  smartScan?: boolean;
  maxPageSharing?: number;
  mergeAcrossNodes?: boolean;
  stableNodeChainsPruneMillisecs?: number;
  /** 'scan-time' lets the kernel (6.8+) set pages_to_scan itself. */
  advisorMode?: 'none' | 'scan-time';
  advisorTargetScanTimeSec?: number;
  advisorMaxCpuPercent?: number;
  advisorMinPagesToScan?: number;
  advisorMaxPagesToScan?: number;
}

/** Each knob's file in /sys/kernel/mm/ksm, for messages and shell fixes. */
export const KNOB_FILES: Readonly<Record<keyof KsmKnobs, string>> = {
  run: 'run',
  pagesToScan: 'pages_to_scan',
  sleepMillisecs: 'sleep_millisecs',
  useZeroPages: 'use_zero_pages',
  smartScan: 'smart_scan',
  maxPageSharing: 'max_page_sharing',
  mergeAcrossNodes: 'merge_across_nodes',
  stableNodeChainsPruneMillisecs: 'stable_node_chains_prune_millisecs',
  advisorMode: 'advisor_mode',
  advisorTargetScanTimeSec: 'advisor_target_scan_time',
  advisorMaxCpuPercent: 'advisor_max_cpu',
  advisorMinPagesToScan: 'advisor_min_pages_to_scan',
  advisorMaxPagesToScan: 'advisor_max_pages_to_scan',
};

/**
 * Sorts [knob, value] pairs, in place, into the order the kernel accepts:
 * advisor off before pages_to_scan (the advisor owns it while on), advisor
 * on after it, `run` last so ksmd (re)starts with the rest in place. Stable:
 * other knobs keep their order. setKnobs() writes in this order and doctor's
 * shell fixes print in it.
 */
export function knobWriteOrder<T extends readonly [keyof KsmKnobs, unknown]>(writes: T[]): T[] {
  const rank = ([name, value]: T): number => (name === 'advisorMode' ? (value === 'none' ? 0 : 2) : name === 'run' ? 3 : 1);
  return writes.sort((a, b) => rank(a) - rank(b));
}

export interface KnobChange {
  /** Values before the writes, of the knobs named. */
  before: KsmKnobs;
  /** Values read back after the writes. */
  after: KsmKnobs;
}

const UINT_MAX = 4294967295;

const KNOB_RULES: Record<keyof KsmKnobs, (value: unknown, name: string) => string> = {
  run: (value, name) => {
    if (typeof value !== 'number') throw invalidType(name, 'of type number', value);
    if (value !== 0 && value !== 1 && value !== 2) throw outOfRange(name, '0, 1 or 2', value);
    return String(value);
  },
  pagesToScan: uint(1),
  sleepMillisecs: uint(0),
  useZeroPages: bool,
  smartScan: bool,
  maxPageSharing: uint(2),
  mergeAcrossNodes: bool,
  stableNodeChainsPruneMillisecs: uint(0),
  advisorMode: (value, name) => {
    if (typeof value !== 'string') throw invalidType(name, 'of type string', value);
    if (value !== 'none' && value !== 'scan-time') throw outOfRange(name, "'none' or 'scan-time'", value);
    return value;
  },
  advisorTargetScanTimeSec: uint(1),
  advisorMaxCpuPercent: (value, name) => {
    const text = uint(1)(value, name);
    if (Number(text) > 100) throw outOfRange(name, 'a percentage from 1 to 100', value);
    return text;
  },
  advisorMinPagesToScan: uint(1),
  advisorMaxPagesToScan: uint(1),
};

function uint(min: number) {
  return (value: unknown, name: string): string => String(checkNumber(name, value, { integer: true, min, max: UINT_MAX }));
}

function bool(value: unknown, name: string): string {
  if (typeof value !== 'boolean') throw invalidType(name, 'of type boolean', value);
  return value ? '1' : '0';
}

function writeHint(error: SystemError, file: string): string | undefined {
  switch (error.code) {
    case 'EACCES':
    case 'EPERM':
      return 'writing /sys/kernel/mm/ksm needs root';
    case 'EROFS':
      return '/sys is mounted read-only (a container?): set KSM knobs on the host';
    case 'EBUSY':
      return file === 'merge_across_nodes'
        ? 'merge_across_nodes can only change while no pages are merged: write 2 to run first'
        : undefined;
    case 'EINVAL':
      return file === 'pages_to_scan'
        ? 'the scan-time advisor sets pages_to_scan itself: set advisor_mode to none first'
        : 'the kernel rejected the value';
    default:
      return undefined;
  }
}

/**
 * Writes KSM knobs as root, in an order the kernel accepts (advisor off
 * before pages_to_scan, advisor on and `run` last), and reads them back.
 * Every value is validated before anything is written.
 *
 * @throws TypeError / RangeError for bad values, before any write.
 * @throws SystemError EACCES without root, EROFS on read-only /sys, EBUSY,
 *   EINVAL from the kernel; knobs written before the failure stay written,
 *   and `error.written` lists them.
 */
export function setKnobs(knobs: KsmKnobs, options?: RootOption): KnobChange {
  if (typeof knobs !== 'object' || knobs === null || Array.isArray(knobs)) {
    throw invalidType('knobs', 'an object', knobs);
  }
  const root = checkRoot(checkOptions<RootOption>(options));
  const writes: Array<[keyof KsmKnobs, string]> = [];
  for (const [name, value] of Object.entries(knobs)) {
    if (value === undefined) continue;
    const rule = Object.hasOwn(KNOB_RULES, name) ? KNOB_RULES[name as keyof KsmKnobs] : undefined;
    if (rule === undefined) throw outOfRange('knobs', `an object of known knobs (${Object.keys(KNOB_RULES).join(', ')})`, name);
    writes.push([name as keyof KsmKnobs, rule(value, `knobs.${name}`)]);
  }
  knobWriteOrder(writes);

  const before = pick(systemStat({ root }), writes.map(([name]) => name));
  const dir = ksmSysfsDir(root);
  const written: Array<keyof KsmKnobs> = [];
  for (const [name, text] of writes) {
    const file = KNOB_FILES[name];
    try {
      writeText(path.join(dir, file), text);
    } catch (error) {
      if (isSystemError(error)) {
        const hint = writeHint(error, file);
        if (hint !== undefined) withHint(error, hint);
        (error as SystemError & { written?: string[] }).written = written;
      }
      throw error;
    }
    written.push(name);
  }
  const after = pick(systemStat({ root }), writes.map(([name]) => name));
  return { before, after };
}

function pick(stat: SystemStat, names: Array<keyof KsmKnobs>): KsmKnobs {
  const out: Record<string, unknown> = {};
  for (const name of names) out[name] = stat[name];
  return out as KsmKnobs;
}

/** One counter of /sys/kernel/mm/ksm (`run`, `full_scans`, ...) as a number; undefined when unreadable. */
export function readKsmCounter(name: string, root = '/'): number | undefined {
  const text = readTextOrUndefined(path.join(ksmSysfsDir(root), name))?.trim();
  return text === undefined ? undefined : parseInt64(text);
}
