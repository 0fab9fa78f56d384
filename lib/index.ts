/**
 * node-ksm: use Linux Kernel Samepage Merging from Node.js on purpose, and
 * see what it saves.
 */
export { isSupported, supportInfo, type SupportInfo } from './support.js';
export { enableMerge, disableMerge, isMergeEnabled } from './process.js';
export {
  allocMergeable,
  markMergeable,
  unmarkMergeable,
  pageSize,
  type AllocOptions,
  type MarkOptions,
  type MergeableRange,
} from './memory.js';
export { ksmStat, parseKsmStat, type KsmStat, type KsmStatField } from './procfs.js';
export { systemStat, setKnobs, type SystemStat, type KsmKnobs, type KnobChange } from './sysfs.js';
export { waitForMerge, type WaitForMergeOptions, type WaitForMergeResult } from './wait.js';
export { parseSmaps, type SmapsVma, type SmapsParse } from './smaps.js';
// estimate (issue 5)
export {
  estimate,
  type EstimateOptions,
  type EstimateProgress,
  type EstimateCounts,
  type EstimateVma,
  type EstimateVmaStatus,
  type EstimateProcess,
  type EstimateResult,
} from './estimate.js';
export {
  KsmError,
  KsmUnsupportedError,
  KsmNotMergeableError,
  KsmNotRunningError,
  KsmTimeoutError,
  KsmNoSuchProcessError,
  type KsmErrorCode,
  type SystemError,
  type UnmergeableMapping,
} from './errors.js';
// doctor (issue 4)
export {
  doctor,
  type DoctorOptions,
  type Evidence,
  type Finding,
  type FindingCode,
  type Fix,
  type Severity,
} from './doctor/index.js';
export type { RootOption } from './validate.js';
export type { View } from './binding.js';

// hardening (issue 8)
export { markSensitive, spawnUnmerged, type SensitiveOptions, type SensitiveRange } from './security.js';
export { type UnmergeOptions, type UnmergePreflight } from './unmerge.js';
export { type UnmarkResult } from './memory.js';
export { KsmInsufficientMemoryError } from './errors.js';
// profit and regions (issue 3)
export {
  regions,
  type Region,
  type RegionKind,
  type RegionLabel,
  type RegionsResult,
} from './regions.js';
export {
  profit,
  systemProfit,
  type ProfitOptions,
  type ProfitMethod,
  type ProfitReport,
  type ProfitTotal,
  type ProfitReconciliation,
  type RegionProfit,
  type SharingBucket,
  type SystemProfit,
} from './profit.js';
export {
  formatBytes,
  formatPercent,
  formatTable,
  type FormatBytesOptions,
  type FormatTableOptions,
  type TableColumn,
} from './format.js';
export { scanSmaps, type SmapsSummary, type SmapsScan } from './smaps.js';

// metrics (issue 6): Prometheus metrics, scan speed and tuning, the processes KSM knows, the CLI's --json shapes
export {
  collectDefaultKsmMetrics,
  collectMachineKsmMetrics,
  type KsmMetricsOptions,
  type MachineMetricsOptions,
  type PromRegistry,
} from './metrics.js';
export { scanTime, ScanTimeTuner, type ScanTime, type ScanTimeTunerOptions, type TunerStep } from './tuner.js';
export { ksmProcesses, type KsmProcess, type KsmProcessList, type KsmProcessesOptions } from './processes.js';
export { KsmMissingDependencyError } from './errors.js';
export type {
  StatusJson,
  TopJson,
  TuneJson,
  DoctorJson,
  RegionsJson,
  EstimateJson,
  ExporterJson,
  DemoJson,
  ProcessJson,
  KnobChangeJson,
  TunerStepJson,
} from './cli/json.js';
