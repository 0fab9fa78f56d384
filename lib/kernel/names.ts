/**
 * The kernel's files by the names the kernel gives them, for messages,
 * evidence and the shell commands of fixes. Nothing here is opened: the
 * readers beside this file take a root (paths.ts) so tests can use fixtures.
 */

/** /sys/kernel/mm/ksm: every KSM knob and counter. */
export const KSM_DIR = '/sys/kernel/mm/ksm';
export const THP_ENABLED_FILE = '/sys/kernel/mm/transparent_hugepage/enabled';
export const NUMA_NODE_DIR = '/sys/devices/system/node';
export const OSRELEASE_FILE = '/proc/sys/kernel/osrelease';
/** The kernel's event counters: cow_ksm, ksm_swpin_copy. */
export const VMSTAT_FILE = '/proc/vmstat';
/** What doctor() reads about itself: its mounts and its own uid. */
export const SELF_MOUNTINFO_FILE = '/proc/self/mountinfo';
export const SELF_STATUS_FILE = '/proc/self/status';
/** Every process's smaps, as one figure summed over them is cited. */
export const EVERY_SMAPS = '/proc/*/smaps';

export function ksmFile(file: string): string {
  return `${KSM_DIR}/${file}`;
}

/** `/proc/1234/smaps`, or `/proc/self/smaps` for a fixture tree's own process. */
export function procFile(pid: number | string, file: string): string {
  return `/proc/${pid}/${file}`;
}
