/**
 * How long ksmd takes to visit every candidate page once: one full scan =
 * candidate pages / (pages_to_scan x 1000 / sleep_millisecs), and a page
 * merges only on its second visit. Under the scan-time advisor (6.8+) the
 * kernel picks pages_to_scan itself, between its min and max.
 */
import { EVERY_SMAPS } from '../../kernel/names.js';
import { KSM, ev, finding, seconds } from '../finding.js';
import { advisorFix, knobFix } from '../fixes.js';
import type { Derived } from '../derive.js';
import type { FactsRule, KsmFacts, RuleOptions } from '../rule.js';
import type { Evidence, Finding } from '../types.js';

interface Scan {
  pagesToScan: number;
  sleep: number;
  candidates: number;
  fullScanSec: number;
  /** pages_to_scan for a full scan in options.targetScanTimeSec. */
  needed: number;
  evidence: Evidence[];
}

/** The scan rate and candidate set, or undefined where they do not give a finite scan time. */
function measure(facts: KsmFacts, derived: Derived, options: RuleOptions): Scan | undefined {
  const { ksm, candidates } = facts;
  const pagesToScan = ksm.pagesToScan;
  const sleep = ksm.sleepMillisecs;
  // sleep_millisecs 0: ksmd never sleeps, the rate is bounded by CPU only.
  if (pagesToScan === undefined || sleep === undefined || sleep === 0 || candidates.pages === 0) return undefined;
  const rate = (pagesToScan * 1000) / sleep;
  const fullScanSec = candidates.pages / rate;
  const evidence: Evidence[] = [
    ev(`${KSM}/pages_to_scan`, 'pages_to_scan', pagesToScan),
    ev(`${KSM}/sleep_millisecs`, 'sleep_millisecs', sleep, 'ms'),
    ev(derived.source.smaps, 'candidate pages of this process (Anonymous in mg VMAs)', candidates.processPages, 'pages'),
    ev(EVERY_SMAPS, `candidate pages of ${candidates.processesRead} readable process(es)`, candidates.readablePages, 'pages'),
  ];
  if (candidates.processesSlow > 0) {
    evidence.push(ev(EVERY_SMAPS, 'processes skipped (smaps did not answer in 2 s: mmap_lock held)', candidates.processesSlow));
  }
  if (candidates.kernelTracked !== undefined) {
    evidence.push(ev(`${KSM}/pages_{shared,sharing,unshared,volatile}`, 'pages tracked by ksmd', candidates.kernelTracked, 'pages'));
  }
  evidence.push(ev('computed', 'candidate pages (the larger of the two)', candidates.pages, 'pages'));
  evidence.push(ev('computed', 'pages per second (pages_to_scan x 1000 / sleep_millisecs)', Math.round(rate)));
  evidence.push(ev('computed', 'full scan time', Number(fullScanSec.toFixed(1)), 's'));
  if (ksm.smartScan === true) evidence.push(ev(`${KSM}/smart_scan`, 'smart_scan', true));
  const needed = Math.ceil((candidates.pages * sleep) / (1000 * options.targetScanTimeSec));
  return { pagesToScan, sleep, candidates: candidates.pages, fullScanSec, needed, evidence };
}

/** A fixed pages_to_scan: too slow past maxScanTimeSec; the fix is the rate for the target. */
function fixedRate(facts: KsmFacts, scan: Scan, options: RuleOptions, advisorPresent: boolean): Finding | undefined {
  const { ksm } = facts;
  const target = options.targetScanTimeSec;
  if (scan.fullScanSec <= options.maxScanTimeSec) return undefined;
  const cpuNote =
    ksm.advisorMaxPagesToScan !== undefined && scan.needed > ksm.advisorMaxPagesToScan
      ? ` (more than advisor_max_pages_to_scan ${ksm.advisorMaxPagesToScan}: ksmd will use noticeably more CPU)`
      : '';
  return finding(
    'SCAN_TOO_SLOW',
    'warn',
    `One full scan of ${scan.candidates} candidate pages at pages_to_scan ${scan.pagesToScan} every ${scan.sleep} ms takes about ` +
      `${seconds(scan.fullScanSec)} (target ${seconds(target)}); a page merges only after two visits, so merging lags by about ` +
      `${seconds(2 * scan.fullScanSec)}. pages_to_scan ${scan.needed} brings a full scan to ${seconds(target)}${cpuNote}`,
    [...scan.evidence, ev('computed', `pages_to_scan for a ${target} s full scan`, scan.needed)],
    knobFix(`Scan ${scan.needed} pages per batch, for a full scan in about ${seconds(target)}`, { pagesToScan: scan.needed }),
    advisorPresent ? [advisorFix(target)] : [],
  );
}

/** Under the advisor: its max is too low to reach the target, or it aims too slow. */
function advised(facts: KsmFacts, scan: Scan, options: RuleOptions): Finding | undefined {
  const { ksm } = facts;
  const target = options.targetScanTimeSec;
  const min = ksm.advisorMinPagesToScan;
  const max = ksm.advisorMaxPagesToScan;
  const advisorTarget = ksm.advisorTargetScanTimeSec;
  if (min === undefined || max === undefined || advisorTarget === undefined) return undefined;
  const fastest = scan.candidates / ((max * 1000) / scan.sleep);
  const slowest = scan.candidates / ((min * 1000) / scan.sleep);
  const expected = Math.min(Math.max(advisorTarget, fastest), slowest);
  const evidence = [
    ...scan.evidence,
    ev(`${KSM}/advisor_mode`, 'advisor_mode', 'scan-time'),
    ev(`${KSM}/advisor_target_scan_time`, 'advisor_target_scan_time', advisorTarget, 's'),
    ev(`${KSM}/advisor_max_pages_to_scan`, 'advisor_max_pages_to_scan', max),
    ev('computed', 'full scan time under the advisor', Number(expected.toFixed(1)), 's'),
  ];
  if (expected <= options.maxScanTimeSec) return undefined;
  const wholeTarget = Math.max(1, Math.round(target));
  if (fastest > options.maxScanTimeSec || fastest > target) {
    return finding(
      'SCAN_TOO_SLOW',
      'warn',
      `Even at advisor_max_pages_to_scan ${max}, one full scan of ${scan.candidates} candidate pages takes ${seconds(fastest)}: ` +
        `the advisor cannot reach ${seconds(target)}; advisor_max_pages_to_scan ${scan.needed} can`,
      [...evidence, ev('computed', `pages_to_scan for a ${target} s full scan`, scan.needed)],
      knobFix(`Let the advisor go up to ${scan.needed} pages per batch`, {
        advisorMaxPagesToScan: scan.needed,
        ...(advisorTarget > target ? { advisorTargetScanTimeSec: wholeTarget } : {}),
      }),
    );
  }
  return finding(
    'SCAN_TOO_SLOW',
    'warn',
    `The scan-time advisor aims at advisor_target_scan_time ${advisorTarget} s, so one full scan takes about ${seconds(expected)}; ` +
      `aim at ${seconds(target)} instead`,
    evidence,
    knobFix(`Aim the advisor at a ${wholeTarget} s full scan`, { advisorTargetScanTimeSec: wholeTarget }),
  );
}

export const scanTooSlow: FactsRule = {
  phase: 'facts',
  meta: {
    codes: ['SCAN_TOO_SLOW'],
    severities: ['warn'],
    description: 'one full scan of every candidate page takes longer than maxScanTimeSec',
  },
  check(facts, derived, options) {
    const scan = measure(facts, derived, options);
    if (scan === undefined) return [];
    const entry = derived.advisor.on ? advised(facts, scan, options) : fixedRate(facts, scan, options, derived.advisor.present);
    return entry === undefined ? [] : [entry];
  },
};

export const advisorAvailable: FactsRule = {
  phase: 'facts',
  meta: {
    codes: ['ADVISOR_AVAILABLE'],
    severities: ['info'],
    description: 'the kernel has the scan-time advisor (6.8+) and it is off',
  },
  check({ ksm }, derived, options) {
    if (!derived.advisor.present || derived.advisor.on) return [];
    return [
      finding(
        'ADVISOR_AVAILABLE',
        'info',
        'This kernel has the scan-time advisor: it sets pages_to_scan itself so that a full scan takes advisor_target_scan_time, ' +
          'and follows the candidate set as it grows or shrinks',
        [
          ev(`${KSM}/advisor_mode`, 'advisor_mode', ksm.advisorMode ?? 'unknown'),
          ...(ksm.advisorTargetScanTimeSec !== undefined
            ? [ev(`${KSM}/advisor_target_scan_time`, 'advisor_target_scan_time', ksm.advisorTargetScanTimeSec, 's')]
            : []),
        ],
        advisorFix(options.targetScanTimeSec),
      ),
    ];
  },
};
