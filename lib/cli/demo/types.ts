/** The demo's options and results: `node-ksm demo --json` prints a DemoResult as DemoJson's `result`. */
import type { KsmStat } from '../../kernel/ksm-stat.js';
import type { KsmKnobs, SystemStat } from '../../kernel/sysfs.js';

export interface DemoOptions {
  /** Worker processes, each holding the table (default 4; 2 to 64). */
  workers?: number;
  /** Bytes of table per worker (default 64 MiB; at least one page, at most 4 GiB). */
  size?: number;
  /**
   * Salt of the table's contents (default: random per run, so concurrent
   * demos do not merge with each other). An unsigned 32-bit integer.
   */
  seed?: number;
  /**
   * Where KSM is not running and we may write its knobs: start it with scan
   * settings that settle the demo in seconds, and put every knob it changed
   * back on exit (default true). false: explain what to run, and stop.
   */
  enableKsm?: boolean;
  /** Refresh period of the live view (default 1000 ms). */
  intervalMs?: number;
  /** Full scans after the last write that count as settled (default 2, the kernel's rule). */
  fullScans?: number;
  /** Give up waiting for KSM to settle after this long (default 600000 ms). */
  timeoutMs?: number;
  /** Stops the demo early: workers killed, knobs restored, the promise rejects with AbortError. */
  signal?: AbortSignal;
  /** Stop on SIGINT / SIGTERM / SIGHUP as on `signal` (default true). */
  handleSignals?: boolean;
  /** The command that reruns this demo, for the messages (default `node-ksm demo`). */
  command?: string;
}

/** Where the demo prints: process.stdout fits. On a TTY the live view redraws in place. */
export interface DemoOutput {
  write(text: string): unknown;
  isTTY?: boolean;
}

/** One worker as the kernel reported it at the last refresh. */
export interface DemoProcess {
  pid: number;
  /** The worker's ksm_stat, parsed. */
  ksmStat: KsmStat;
  /** The table mapping's smaps: bytes backed by KSM pages (`KSM:`, 6.6+). */
  tableKsm: number | undefined;
  /** The table mapping's resident bytes. */
  tableRss: number;
  /** The table mapping's proportional share (a page mapped k times counts 1/k). */
  tablePss: number;
}

export interface DemoSnapshot {
  elapsedMs: number;
  processes: DemoProcess[];
  system: SystemStat;
  /** Full scans completed since the workers finished writing. */
  scansSinceWrite: number;
  /** pages_sharing now minus at the start, in pages (machine-wide: includes other merging). */
  pagesSharingDelta: number;
  /** general_profit now minus at the start, bytes (machine-wide). */
  generalProfitDelta: number;
  /** N x mapped table bytes - sum of the table mappings' PSS: what merging saved. */
  savedBytes: number;
  /** savedBytes / theoreticalSaving. */
  savedRatio: number;
}

export interface DemoResult extends DemoSnapshot {
  workers: number;
  /** Table bytes per worker. */
  size: number;
  seed: number;
  /** (N - 1) x size: what perfect merging saves. */
  theoreticalSaving: number;
  /** `fullScans` full scans passed after the last write. */
  settled: boolean;
  /** Knobs the demo wrote to start KSM, and the values read back once it put them back. */
  knobs: { set: KsmKnobs; restored: KsmKnobs } | undefined;
  /** Every worker read its table back intact after merging (copy-on-write held). */
  intact: boolean;
}
