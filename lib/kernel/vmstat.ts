/**
 * /proc/vmstat: the kernel's event counters. KSM's costs are there: cow_ksm
 * counts write faults that broke a KSM page (a copy made because someone
 * wrote to merged memory), ksm_swpin_copy swap-ins that had to copy a KSM
 * page. Counters the kernel lacks (older releases, !CONFIG_KSM) are
 * undefined, never zero.
 */
import * as path from 'node:path';

import { readTextOrUndefined } from './files.js';

export interface VmstatKsm {
  /** Write faults that copied a KSM page (copy-on-write break). */
  cowKsm: number | undefined;
  /** Swap-ins that copied a KSM page. */
  ksmSwpinCopy: number | undefined;
}

/** Every `name value` line of a vmstat text. */
export function parseVmstat(text: string): Map<string, number> {
  const counters = new Map<string, number>();
  for (const line of text.split('\n')) {
    const space = line.indexOf(' ');
    if (space <= 0) continue;
    const value = Number(line.slice(space + 1));
    if (Number.isSafeInteger(value)) counters.set(line.slice(0, space), value);
  }
  return counters;
}

/** KSM's cost counters from `<root>/proc/vmstat`; undefined fields where this kernel has none. */
export function readVmstatKsm(root = '/'): VmstatKsm {
  const text = readTextOrUndefined(path.join(root, 'proc', 'vmstat'));
  const counters = text === undefined ? new Map<string, number>() : parseVmstat(text);
  return { cowKsm: counters.get('cow_ksm'), ksmSwpinCopy: counters.get('ksm_swpin_copy') };
}
