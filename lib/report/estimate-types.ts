/** estimate()'s options and results (lib/report/estimate.ts). */
import type { EstimateAll } from './estimate-all.js';
import type { RegionKind } from './regions.js';

export interface EstimateProgress {
  /** pagemap: finding touched pages; sample / resample: hashing them; confirm: comparing twins. */
  phase: 'pagemap' | 'sample' | 'resample' | 'confirm';
  done: number;
  total: number;
}

export interface EstimateOptions {
  /** More processes to estimate, besides `targets`. */
  pids?: number[];
  /**
   * Hash twice, this many milliseconds apart, and leave out the pages that
   * changed (KSM merges a page only after its checksum held across two
   * visits). Default 0: one sample, nothing counted as volatile.
   */
  intervalMs?: number;
  /** Only VMAs that are already mergeable (`mg`): what merges with no code change. */
  onlyMergeable?: boolean;
  /** Leave out VMAs smaller than this many bytes (default 0). */
  minRegionBytes?: number;
  /** Zero pages merge with the kernel's zero page; default: the use_zero_pages knob. */
  useZeroPages?: boolean;
  /** Mappers per KSM page; default: the max_page_sharing knob (256). */
  maxPageSharing?: number;
  /**
   * Threads to hash and confirm on, at most 256. Default: every core on a
   * machine of one or two (defaultEstimateThreads()), all but one beyond, so
   * that the event loop and the rest of the machine keep a core. The work
   * runs on the addon's own threads, never the libuv pool. With two or
   * more, the targets' smaps is read beside them (`plannedFrom`).
   */
  threads?: number;
  /**
   * The whole machine: every process the caller may read (no targets then).
   * Kernel threads and the processes it may not read are left out and
   * listed (`all.skipped`); `all.topProcesses` / `all.topVmas` say where the
   * duplicates are.
   */
  all?: boolean;
  /** With `all`: entries in each top list (default 20). */
  top?: number;
  signal?: AbortSignal;
  /** Called from the event loop as the work goes on (at most every 50 ms per phase). */
  onProgress?: (progress: EstimateProgress) => void;
}

/** Page counts, for one VMA, one process or all of them. */
export interface EstimateCounts {
  /** Pages present in RAM (any kind). */
  presentPages: number;
  /** Pages swapped out: KSM does not scan them. */
  swappedPages: number;
  /** Page-cache pages of private file mappings (not yet copied on write): not candidates. */
  filePages: number;
  /** Pages mapping the shared zero page (read, never written): nothing to save. */
  zeroPageMapped: number;
  /** Touched private anonymous pages that were read and hashed: what KSM would scan. */
  candidatePages: number;
  /** Present anonymous pages that could not be read (PROT_NONE, unmapped meanwhile). */
  unreadablePages: number;
  /** Candidate pages whose every byte is zero (stable ones only). */
  zeroPages: number;
  /** Candidate pages that changed between the two samples: KSM will not merge them. */
  volatilePages: number;
  /** Stable non-zero candidate pages with at least one identical twin among the targets. */
  duplicatePages: number;
  /** ... of which have a twin in the same VMA. */
  twinInVma: number;
  /** ... of which have a twin in the same process (same VMA included). */
  twinInProcess: number;
  /** ... of which have a twin in another of the targets. */
  twinInOtherProcess: number;
  /**
   * Pages KSM would free, as it counts them: a class of k identical pages
   * keeps ceil(k / max_page_sharing) copies; zero pages per use_zero_pages.
   * Each page of a class carries an equal share, so a VMA's figure can be
   * fractional; the total over all targets is whole.
   */
  predictedSavedPages: number;
  predictedSavedBytes: number;
}

export type EstimateVmaStatus = 'scanned' | 'unreadable' | 'incompatible' | 'filtered';

export interface EstimateVma extends EstimateCounts {
  start: bigint;
  end: bigint;
  perms: string;
  pathname: string;
  /** What the VMA is, Node's kinds included (as regions() says it). */
  kind: RegionKind;
  /** What the kind was told from (Node's layout kinds, the heap). */
  kindEvidence: string | undefined;
  /** Labels this process gave (or published for) memory in the VMA, comma-separated. */
  label: string | undefined;
  vmFlags: string[];
  /** `mg`: KSM may merge this VMA now. */
  mergeable: boolean;
  /** The kernel would accept it as mergeable (private, not hugetlb/PFN/IO/...). */
  ksmCompatible: boolean;
  /** Compatible but not yet `mg`: a candidate only after enableMerge() or markMergeable(). */
  candidateAfterEnableMerge: boolean;
  /** scanned; unreadable (not readable: present pages counted, none read); incompatible; filtered (options). */
  status: EstimateVmaStatus;
  /** Why not scanned, when not. */
  reason: string | undefined;
  /** This VMA's part of the whole estimate's predictedSavedBytes (0..1). */
  share: number;
}

export interface EstimateProcess extends EstimateCounts {
  pid: number;
  /** The process exited during the estimate: it is reported without pages. */
  exited: boolean;
  /** ksm_merge_any: enableMerge() is already on for it. */
  mergeAny: boolean | undefined;
  /** Candidate pages in VMAs that are already `mg`. */
  candidatePagesMergeableNow: number;
  /** Candidate pages in VMAs that merge only after enableMerge(). */
  candidatePagesAfterEnableMerge: number;
  /** VMAs not scanned (incompatible or filtered out); `unreadable` ones are counted apart. */
  skippedVmas: number;
  unreadableVmas: number;
  vmas: EstimateVma[];
  share: number;
}

export interface EstimateResult extends EstimateCounts {
  processes: EstimateProcess[];
  pageSize: number;
  useZeroPages: boolean;
  maxPageSharing: number;
  intervalMs: number;
  /** KSM pages that would hold the merged content (pages_shared after merging). */
  predictedPagesShared: number;
  /** Page slots that would share them (pages_sharing after merging). */
  predictedPagesSharing: number;
  /** Pages that would merge with the kernel's zero page (ksm_zero_pages), with use_zero_pages. */
  predictedZeroPages: number;
  /** Distinct pages whose hashes matched but bytes did not (found and kept apart). */
  hashCollisions: number;
  /** Memory the estimator itself used at its peak, in bytes (about 16 per page). */
  memoryBytes: number;
  /** Pages read and hashed in the first sample. */
  pagesHashed: number;
  /** PFNs were visible in pagemap (CAP_SYS_ADMIN): zero-page mappings told apart exactly. */
  pfnVisible: boolean;
  /** Threads the pages were hashed and confirmed on. */
  threads: number;
  elapsedMs: number;
  timings: { pagemapMs: number; sampleMs: number; resampleMs: number; confirmMs: number };
  /**
   * The plan the pages were read by. `smaps`: read first (one thread,
   * `onlyMergeable`, `all`, this process among the targets, or a target
   * whose maps changed between two reads of it: a layout that changes all
   * the time, which smaps would seldom confirm). Otherwise the hashing starts on
   * the plan the target's maps allows while smaps is read beside it: `maps`,
   * smaps' plan was the same; `restarted`, it was not (a flag maps does not
   * show: a private hugetlb, PFN, I/O or droppable mapping; or a layout
   * that changed between the two reads), and the pages were read again by
   * smaps' plan (`onProgress` then starts again at `pagemap`). The figures
   * are smaps' plan's either way.
   */
  plannedFrom: 'smaps' | 'maps' | 'restarted';
  /** With `all: true` only: what was listed, what was left out and why, the top lists. */
  all?: EstimateAll;
}
