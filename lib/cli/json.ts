/**
 * The shapes `node-ksm <command> --json` prints: part of the package's
 * public, versioned interface (exported as types from the package root and
 * documented in the README). Every document carries `kind` and `version`;
 * a field is added without a version bump, a field removed or changed bumps
 * `version`. Absent figures are `null`, never missing keys; addresses are
 * '0x...' hex strings; sizes are bytes; times are seconds unless named
 * otherwise.
 */
import type { Finding } from '../doctor/index.js';
import type { EstimateResult } from '../report/estimate.js';
import type { ProfitReport } from '../report/profit/index.js';

export interface KsmKnobsJson {
  /** The `run` knob: 0 stopped, 1 running, 2 unmerging. */
  run: number | null;
  runState: 'stopped' | 'running' | 'unmerge' | 'unknown';
  pagesToScan: number | null;
  sleepMillisecs: number | null;
  /** The mode in force ('none', 'scan-time'), null before 6.8. */
  advisorMode: string | null;
  advisorTargetScanTimeSec: number | null;
  useZeroPages: boolean | null;
  smartScan: boolean | null;
  maxPageSharing: number | null;
  fullScans: number | null;
}

export interface ProcessJson {
  pid: number;
  comm: string;
  /** ksm_stat figures, as the kernel prints them. */
  mergingPages: number | null;
  zeroPages: number | null;
  rmapItems: number | null;
  /** ksm_process_profit: counts the copy that had to stay; not a saving to sum. */
  processProfitBytes: number | null;
  mergeAny: boolean | null;
  /** Fair share of the machine's saving (profit()); null when unavailable. */
  savedBytes: number | null;
  /** Bytes of the process backed by KSM pages (profit()); null when unavailable. */
  mergedBytes: number | null;
  /** savedBytes is page-exact (true), estimated from Pss (false), or unavailable (null). */
  savedExact: boolean | null;
}

export interface StatusJson {
  kind: 'node-ksm/status';
  version: 1;
  /** ISO 8601 time of the reading. */
  time: string;
  pageSize: number | null;
  ksm: KsmKnobsJson;
  scan: {
    /** pages_shared + pages_sharing + pages_unshared + pages_volatile (= the kernel's rmap items). */
    candidatePages: number | null;
    /** pages_to_scan x 1000 / sleep_millisecs. */
    pagesPerSecond: number | null;
    /** candidatePages / pagesPerSecond; a lower bound. */
    fullScanSeconds: number | null;
  };
  pages: { shared: number | null; sharing: number | null; unshared: number | null; volatile: number | null; zero: number | null };
  /** The ratios Documentation/admin-guide/mm/ksm.rst defines. */
  ratios: {
    /** pages_sharing / pages_shared: high is good sharing (max: max_page_sharing). */
    sharingPerShared: number | null;
    /** pages_unshared / pages_sharing: high is wasted effort. */
    unsharedPerSharing: number | null;
    /** pages_volatile / candidatePages: a high share is poor use of MADV_MERGEABLE. */
    volatileShare: number | null;
  };
  /** (pages_sharing + ksm_zero_pages) x pageSize: saved before metadata. */
  savedBytes: number | null;
  /** general_profit: the kernel's net saving after rmap_item metadata. */
  generalProfitBytes: number | null;
  /** How `processes[].savedBytes` was computed. */
  fairShare: 'exact' | 'estimated' | 'unavailable';
  /** Processes with merged pages, by savedBytes (or mergingPages when fair share is unavailable), largest first. */
  processes: ProcessJson[];
  /** Processes that could not be read, with the error code: ksm_stat (not root), or smaps/pagemap for the fair share (then listed with savedBytes null). */
  unreadable: Array<{ pid: number; code: string }>;
  /** Processes skipped because their memory map stayed locked past the per-process deadline (comm raw). */
  stalled: Array<{ pid: number; comm: string }>;
  /** `--by`: what the groups are of; null without it. */
  by: 'cgroup' | 'unit' | 'pod' | 'container' | null;
  /** `--by`: the merging processes summed per group, largest saving first; null without it. */
  groups: GroupJson[] | null;
  /** What merging costs: copy-on-write breaks and ksmd's CPU. */
  costs: KsmCostsJson;
}

/** One group of `status --by` / `top --by`: profitByGroup()'s GroupProfit, JSON-encoded. */
export interface GroupJson {
  /** The `--by` asked for, or 'cgroup' for processes outside any such group (keyed by their cgroup path). */
  kind: 'cgroup' | 'unit' | 'pod' | 'container';
  /** Pod uid (dashed, as kube_pod_info{uid}), container id, unit name or cgroup path. */
  key: string;
  /** The group's own cgroup (the pod's, the unit's, the container's), whose memory is read. */
  cgroup: string;
  /** The cgroups its processes are in. */
  cgroups: string[];
  unit: string | null;
  slice: string | null;
  podUid: string | null;
  qosClass: 'guaranteed' | 'burstable' | 'besteffort' | null;
  containerId: string | null;
  runtime: 'containerd' | 'cri-o' | 'docker' | 'podman' | null;
  /** The merging processes. */
  pids: number[];
  /** ksm_merging_pages, summed. */
  mergingPages: number;
  /** Fair-share figures summed; null with --no-fair-share. */
  mergedBytes: number | null;
  savedBytes: number | null;
  zeroPageBytes: number;
  /** ksm_rmap_items x rmap_item size, summed. */
  metadataBytes: number;
  netBytes: number | null;
  /** The group cgroup's memory files, where readable (v2 memory.current/stat/max, v1 usage/stat/limit). */
  memory: { currentBytes: number; anonBytes: number | null; maxBytes: number | null; source: 'v2' | 'v1' } | null;
  /** savedBytes / (memory.currentBytes + savedBytes): the share of what the group would use unmerged. */
  savedShare: number | null;
}

/** What merging costs, as the kernel counts it (counters since boot). */
export interface KsmCostsJson {
  /** vmstat cow_ksm: write faults that copied a KSM page. */
  cowKsm: number | null;
  /** vmstat ksm_swpin_copy: swap-ins that copied a KSM page. */
  ksmSwpinCopy: number | null;
  ksmdPid: number | null;
  /** ksmd's CPU time since it started (schedstat, else utime + stime). */
  ksmdCpuSeconds: number | null;
  /** The counters averaged over ksmd's life (status reads once; top measures between refreshes). */
  sinceKsmdStart: {
    seconds: number;
    cowKsmPerSecond: number | null;
    ksmSwpinCopyPerSecond: number | null;
    ksmdCpuPercent: number | null;
  } | null;
}

/** One line per refresh of `top --json` (NDJSON): a status plus rates since the last refresh. */
export interface TopJson extends Omit<StatusJson, 'kind'> {
  kind: 'node-ksm/top';
  rates: {
    intervalSec: number;
    /** Pages ksmd visited per second (pages_scanned + pages_skipped), measured. */
    pagesScannedPerSecond: number | null;
    fullScans: number | null;
    /** Change of pages_sharing per second. */
    pagesSharingPerSecond: number | null;
    /** ksmd's CPU use, percent of one CPU (its schedstat); null where ksmd is not found. */
    ksmdCpuPercent: number | null;
    /** cow_ksm per second: merged pages broken again by a write. */
    cowKsmPerSecond: number | null;
    /** ksm_swpin_copy per second. */
    ksmSwpinCopyPerSecond: number | null;
  } | null;
}

export interface KnobChangeJson {
  /** The knob as SDK property (pagesToScan) and sysfs file (pages_to_scan). */
  knob: string;
  file: string;
  before: number | boolean | string | null;
  after: number | boolean | string | null;
}

export interface TunerStepJson {
  candidatePages: number;
  observedPagesPerSecond: number | null;
  estimatedScanTimeSec: number | null;
  ksmdCpuPercent: number | null;
  pagesToScanBefore: number;
  pagesToScanAfter: number;
  decidedBy: 'target' | 'cpu' | 'min' | 'max' | 'hold';
}

export interface TuneJson {
  kind: 'node-ksm/tune';
  version: 1;
  /**
   * show: no knob given, `changes` lists every knob (before = after); knobs:
   * plain writes; advisor: the kernel's scan-time advisor was set;
   * userspace: the ScanTimeTuner ran (`changes` = knobs set before it started).
   */
  mode: 'show' | 'knobs' | 'advisor' | 'userspace';
  changes: KnobChangeJson[];
  /** userspace mode: each adjustment. */
  steps: TunerStepJson[] | null;
  /** userspace mode: knobs put back on exit. */
  restored: KnobChangeJson[] | null;
}

export interface DoctorJson {
  kind: 'node-ksm/doctor';
  version: 1;
  /** The process examined; null: the doctor's own (the machine-wide checks hold either way). */
  pid: number | null;
  /** doctor()'s findings as the API returns them (code, severity, message, evidence, fix, alternatives). */
  findings: Finding[];
  counts: { error: number; warn: number; info: number };
}

export interface RegionsJson {
  kind: 'node-ksm/regions';
  version: 1;
  pid: number;
  /** profit(pid) as the API returns it, JSON-encoded (bigint addresses as '0x...'). */
  report: ProfitReport;
}

export interface EstimateJson {
  kind: 'node-ksm/estimate';
  version: 1;
  pids: number[];
  /** estimate(pids) as the API returns it, JSON-encoded (bigint addresses as '0x...'). */
  report: EstimateResult;
}

export interface ExporterJson {
  kind: 'node-ksm/exporter';
  version: 1;
  /** Where /metrics is served (printed once listening). */
  url: string;
}

export interface DemoJson {
  kind: 'node-ksm/demo';
  version: 1;
  /** The demo's result (fields listed in the README under `demo --json`), JSON-encoded. */
  result: unknown;
}
