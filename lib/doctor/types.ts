/** The shapes doctor() answers with. */
import type { KsmKnobs } from '../kernel/sysfs.js';

/** Stable identifiers: scripts may match on them. */
export type FindingCode =
  | 'KSM_NOT_BUILT'
  | 'KSM_STOPPED'
  | 'SCAN_TOO_SLOW'
  | 'ADVISOR_AVAILABLE'
  | 'PRCTL_UNSUPPORTED'
  | 'PRCTL_BLOCKED'
  | 'NOTHING_MERGEABLE'
  | 'NOT_MERGEABLE'
  | 'UNTOUCHED_REGION'
  | 'THP_IN_MERGEABLE'
  | 'VOLATILE_PAGES'
  | 'HIGH_UNSHARED'
  | 'METADATA_EXCEEDS_SAVING'
  | 'SYSFS_READ_ONLY'
  | 'NOT_ROOT'
  | 'MERGE_ANY_INHERITED'
  | 'MERGE_ANY_LOST'
  | 'KSM_CHURN'
  | 'NUMA_CROSS_NODE'
  | 'SIDE_CHANNEL_RISK'
  | 'PROCESSES_SKIPPED'
  | 'MERGING';

export type Severity = 'error' | 'warn' | 'info';

/** One number (or word) read from the kernel, or computed from such numbers. */
export interface Evidence {
  /**
   * The file it was read from, as the kernel names it (e.g. the KSM `run` knob's
   * sysfs path, or a process's smaps), or `computed` for a figure derived from the others.
   */
  source: string;
  /** The kernel's key (`pages_to_scan`, `AnonHugePages`) or the computed figure's name. */
  key: string;
  value: number | string | boolean;
  /** Where the value is not a plain count: 'bytes', 'pages', 'ms', 's', 'percent'. */
  unit?: 'bytes' | 'pages' | 'ms' | 's' | 'percent';
}

/** What to do about a finding. */
export interface Fix {
  /** One sentence for a person. */
  summary: string;
  /** Shell commands, in order, exactly as to run (as root where they write /sys). */
  commands: string[];
  /** The same sysfs writes as `setKnobs()` takes them, where the fix is a knob. */
  knobs?: KsmKnobs;
  /** The SDK call to make instead, e.g. `enableMerge()`. */
  call?: string;
  /** Lines that make the fix survive a reboot: systemd unit settings or tmpfiles.d entries. */
  persist?: string[];
}

export interface Finding {
  code: FindingCode;
  severity: Severity;
  /** What is wrong (or right), with the numbers that say so. */
  message: string;
  evidence: Evidence[];
  /** undefined for findings that need no action (MERGING, a plain report). */
  fix: Fix | undefined;
  /** Other ways to the same end, e.g. the scan-time advisor instead of a fixed pages_to_scan. */
  alternatives: Fix[];
}

/** A range of this process that must never merge (markSensitive()). */
export type { SensitiveRange } from '../merge/security.js';

export interface DoctorOptions {
  /** The process to examine (default: this one). */
  pid?: number;
  /** Directory holding `proc/` and `sys/` (default `/`): fixture trees of other machines. */
  root?: string;
  /**
   * The process holds secrets (keys, tokens, other users' data) by its own
   * declaration: merging anything in it is a side channel (SIDE_CHANNEL_RISK).
   * Ranges registered as sensitive in this process count as a declaration too.
   */
  handlesSecrets?: boolean;
  /**
   * Seconds one full scan should take; SCAN_TOO_SLOW's pages_to_scan is
   * computed for it (default 120).
   */
  targetScanTimeSec?: number;
  /**
   * SCAN_TOO_SLOW fires when one full scan takes longer than this (default
   * 180: production users aim for 2-3 minutes).
   */
  maxScanTimeSec?: number;
  /**
   * Milliseconds between the two readings of cow_ksm that KSM_CHURN is
   * measured over, on this machine (default 1000, overlapping the rest of
   * the collection; 0 skips the measure).
   */
  churnWindowMs?: number;
}
