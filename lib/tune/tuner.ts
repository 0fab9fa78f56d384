/**
 * Scan speed: how long one full scan takes, and a userspace controller that
 * steers `pages_to_scan` toward a target scan time for kernels without the
 * scan-time advisor (6.8+), the ksmtuned idea done with measured figures.
 */
import { EventEmitter } from 'node:events';

import { findByComm } from '../kernel/processes.js';
import { threadCpuTimeNs } from '../kernel/stat.js';
import { setKnobs, systemStat, type KnobChange, type KsmKnobs, type SystemStat } from '../kernel/sysfs.js';
import { checkFunction, checkOptions, checkRoot, invalidType, optionalNumber, outOfRange, type RootOption } from '../validate.js';

export interface ScanTime {
  /**
   * Pages KSM tracks: pages_shared + pages_sharing + pages_unshared +
   * pages_volatile. The kernel derives pages_volatile as ksm_rmap_items
   * minus the other three, so the sum is its count of rmap items: one per
   * page of mergeable memory it has visited (ksm.rst, "Monitoring KSM
   * profit"). Pages not yet visited in the first scan are not counted.
   */
  candidatePages: number | undefined;
  /** The knobs' scan rate: pages_to_scan x 1000 / sleep_millisecs. */
  pagesPerSecond: number | undefined;
  /**
   * candidatePages / pagesPerSecond: a lower bound, since ksmd's own work
   * between sleeps adds to it. Undefined when sleep_millisecs is 0 (no
   * sleep: the rate is bound by the CPU, not the knobs) or figures are missing.
   */
  fullScanSeconds: number | undefined;
}

/** How long one full scan takes at the current knobs, from a systemStat(). */
export function scanTime(stat: SystemStat): ScanTime {
  if (typeof stat !== 'object' || stat === null || Array.isArray(stat)) throw invalidType('stat', 'an object', stat);
  const parts = [stat.pagesShared, stat.pagesSharing, stat.pagesUnshared, stat.pagesVolatile];
  const candidatePages = parts.every((part) => part !== undefined)
    ? parts.reduce<number>((sum, part) => sum + part!, 0)
    : undefined;
  const pagesPerSecond =
    stat.pagesToScan !== undefined && stat.sleepMillisecs !== undefined && stat.sleepMillisecs > 0
      ? (stat.pagesToScan * 1000) / stat.sleepMillisecs
      : undefined;
  const fullScanSeconds =
    candidatePages !== undefined && pagesPerSecond !== undefined && pagesPerSecond > 0
      ? candidatePages / pagesPerSecond
      : undefined;
  return { candidatePages, pagesPerSecond, fullScanSeconds };
}

export interface ScanTimeTunerOptions extends RootOption {
  /** The time one full scan should take, in seconds. */
  targetScanTimeSec: number;
  /** ksmd may use at most this share of one CPU (default 70, the kernel advisor's default). */
  maxCpuPercent?: number;
  /** Lower bound for pages_to_scan (default 500, as the kernel advisor). */
  minPagesToScan?: number;
  /** Upper bound for pages_to_scan (default 30000, as the kernel advisor). */
  maxPagesToScan?: number;
  /** Time between adjustments (default 5000 ms). */
  intervalMs?: number;
  /** Clock in milliseconds (tests); default performance.now. */
  now?: () => number;
}

export interface TunerStep {
  /** Pages KSM tracks (see {@link ScanTime.candidatePages}). */
  candidatePages: number;
  /** Pages ksmd visited per second since the last step (pages_scanned + pages_skipped). */
  observedPagesPerSecond: number | undefined;
  /** candidatePages / observedPagesPerSecond. */
  estimatedScanTimeSec: number | undefined;
  /** ksmd's CPU use since the last step, percent of one CPU; undefined when ksmd was not found. */
  ksmdCpuPercent: number | undefined;
  pagesToScanBefore: number;
  pagesToScanAfter: number;
  /** What decided the new value. `hold`: too little was observed to act on. */
  decidedBy: 'target' | 'cpu' | 'min' | 'max' | 'hold';
}

interface Sample {
  at: number;
  visited: number;
  cpuNs: number | undefined;
}

/** Changes per step are damped (a power below 1) and bounded, so a noisy sample cannot swing the knob. */
const DAMPING = 0.7;
const MAX_STEP_FACTOR = 4;

function positiveInt(name: string, value: unknown, fallback: number, max = 4294967295): number {
  return optionalNumber(name, value, { integer: true, min: 1, max }) ?? fallback;
}

/** ksmd's pid under `root`, found by its comm. */
export function findKsmd(root = '/'): number | undefined {
  return findByComm(root, 'ksmd');
}

export interface ScanTimeTunerEvents {
  step: [TunerStep];
  error: [Error];
}

/**
 * Steers pages_to_scan so that one full scan takes about the target time,
 * measuring what ksmd actually does rather than trusting the knobs: the
 * pages it visited per second (pages_scanned + pages_skipped) and its CPU
 * time. Each step moves pages_to_scan toward
 * `pagesToScan x observedScanTime / target` (damped), then caps it so that
 * ksmd's projected CPU stays under `maxCpuPercent`, then within min/max.
 *
 * `start()` saves pages_to_scan (and turns the kernel advisor off, which
 * would refuse the writes); `stop()` restores what it saved. The caller
 * wires signals to `stop()` (the CLI does).
 */
export class ScanTimeTuner extends EventEmitter<ScanTimeTunerEvents> {
  readonly targetScanTimeSec: number;
  readonly maxCpuPercent: number;
  readonly minPagesToScan: number;
  readonly maxPagesToScan: number;
  readonly intervalMs: number;
  readonly #root: string;
  readonly #now: () => number;
  #saved: KsmKnobs | undefined;
  #last: Sample | undefined;
  #timer: NodeJS.Timeout | undefined;
  #ksmd: number | undefined;
  readonly #steps: TunerStep[] = [];

  constructor(options: ScanTimeTunerOptions) {
    super();
    if (options === undefined) throw invalidType('options', 'an object', options);
    const opts = checkOptions<ScanTimeTunerOptions>(options);
    this.#root = checkRoot(opts);
    if (opts.targetScanTimeSec === undefined) throw invalidType('options.targetScanTimeSec', 'of type number', undefined);
    this.targetScanTimeSec = positiveInt('options.targetScanTimeSec', opts.targetScanTimeSec, 0, 7 * 86400);
    this.maxCpuPercent = positiveInt('options.maxCpuPercent', opts.maxCpuPercent, 70, 100);
    this.minPagesToScan = positiveInt('options.minPagesToScan', opts.minPagesToScan, 500);
    this.maxPagesToScan = positiveInt('options.maxPagesToScan', opts.maxPagesToScan, 30000);
    if (this.minPagesToScan > this.maxPagesToScan) {
      throw outOfRange('options.minPagesToScan', `at most maxPagesToScan (${this.maxPagesToScan})`, this.minPagesToScan);
    }
    this.intervalMs = positiveInt('options.intervalMs', opts.intervalMs, 5000, 3_600_000);
    this.#now = checkFunction('options.now', opts.now) ?? (() => performance.now());
  }

  get running(): boolean {
    return this.#saved !== undefined;
  }

  /** The steps taken so far, oldest first. */
  get steps(): readonly TunerStep[] {
    return this.#steps;
  }

  /**
   * Saves the knobs it will change, hands pages_to_scan to this controller
   * and takes the first sample. With `timer: false` nothing runs on its own:
   * the caller calls step() (tests, or its own scheduling).
   *
   * @throws SystemError EACCES without root, EROFS on read-only /sys.
   */
  start(options: { timer?: boolean } = {}): this {
    if (this.#saved !== undefined) return this;
    const stat = systemStat({ root: this.#root });
    const saved: KsmKnobs = { pagesToScan: stat.pagesToScan! };
    if (stat.advisorMode === 'scan-time') {
      saved.advisorMode = 'scan-time';
      setKnobs({ advisorMode: 'none', pagesToScan: stat.pagesToScan! }, { root: this.#root });
    }
    this.#saved = saved;
    this.#ksmd = findKsmd(this.#root);
    this.#last = this.#sample(stat);
    if (options.timer !== false) {
      this.#timer = setInterval(() => {
        try {
          this.step();
        } catch (error) {
          this.emit('error', error as Error);
        }
      }, this.intervalMs);
    }
    return this;
  }

  #sample(stat: SystemStat): Sample {
    return {
      at: this.#now(),
      visited: (stat.pagesScanned ?? 0) + (stat.pagesSkipped ?? 0),
      cpuNs: this.#ksmd === undefined ? undefined : threadCpuTimeNs(this.#ksmd, this.#root),
    };
  }

  /** Measures since the last step and writes the new pages_to_scan. */
  step(): TunerStep {
    if (this.#saved === undefined || this.#last === undefined) throw new Error('ScanTimeTuner.step() before start()');
    const stat = systemStat({ root: this.#root });
    const sample = this.#sample(stat);
    const last = this.#last;
    this.#last = sample;
    const before = stat.pagesToScan!;
    const candidatePages = scanTime(stat).candidatePages ?? 0;
    const seconds = (sample.at - last.at) / 1000;
    const visited = sample.visited - last.visited;
    const observed = seconds > 0 && visited > 0 ? visited / seconds : undefined;
    const cpu =
      sample.cpuNs !== undefined && last.cpuNs !== undefined && seconds > 0
        ? ((sample.cpuNs - last.cpuNs) / 1e9 / seconds) * 100
        : undefined;

    let after = before;
    let decidedBy: TunerStep['decidedBy'] = 'hold';
    let estimated: number | undefined;
    if (candidatePages === 0) {
      after = this.minPagesToScan;
      decidedBy = 'min';
    } else if (observed !== undefined && stat.run === 1) {
      estimated = candidatePages / observed;
      const ratio = Math.min(MAX_STEP_FACTOR, Math.max(1 / MAX_STEP_FACTOR, estimated / this.targetScanTimeSec));
      after = before * ratio ** DAMPING;
      decidedBy = 'target';
      if (cpu !== undefined && cpu > 0) {
        // CPU grows with pages_to_scan at a fixed sleep: project it linearly.
        const cpuCap = (before * this.maxCpuPercent) / cpu;
        if (after > cpuCap) {
          after = cpuCap;
          decidedBy = 'cpu';
        }
      }
      if (after < this.minPagesToScan) {
        after = this.minPagesToScan;
        decidedBy = 'min';
      } else if (after > this.maxPagesToScan) {
        after = this.maxPagesToScan;
        decidedBy = 'max';
      }
      after = Math.round(after);
    }
    if (after !== before) setKnobs({ pagesToScan: after }, { root: this.#root });
    const step: TunerStep = {
      candidatePages,
      observedPagesPerSecond: observed,
      estimatedScanTimeSec: estimated,
      ksmdCpuPercent: cpu,
      pagesToScanBefore: before,
      pagesToScanAfter: after,
      decidedBy,
    };
    this.#steps.push(step);
    this.emit('step', step);
    return step;
  }

  /** Stops adjusting and puts back the knobs start() saved. Safe to call twice. */
  stop(): KnobChange | undefined {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    const saved = this.#saved;
    this.#saved = undefined;
    this.#last = undefined;
    if (saved === undefined) return undefined;
    return setKnobs(saved, { root: this.#root });
  }
}
