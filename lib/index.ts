/**
 * node-ksm: use Linux Kernel Samepage Merging from Node.js on purpose, and
 * see what it saves.
 */
export { isSupported, supportInfo, type SupportInfo } from './kernel/support.js';
export { enableMerge, disableMerge, isMergeEnabled } from './merge/opt-in.js';
export {
  allocMergeable,
  markMergeable,
  unmarkMergeable,
  pageSize,
  type AllocOptions,
  type MarkOptions,
  type MergeableRange,
} from './merge/buffers.js';
export { ksmStat, parseKsmStat, type KsmStat, type KsmStatField } from './kernel/ksm-stat.js';
export { systemStat, setKnobs, type SystemStat, type KsmKnobs, type KnobChange } from './kernel/sysfs.js';
export { waitForMerge, type WaitForMergeOptions, type WaitForMergeResult } from './merge/wait.js';
export { parseSmaps, type SmapsVma, type SmapsParse } from './kernel/smaps.js';
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
} from './report/estimate.js';
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
export { markSensitive, spawnUnmerged, type SensitiveOptions, type SensitiveRange } from './merge/security.js';
export { type UnmergeOptions, type UnmergePreflight } from './merge/headroom.js';
export { type UnmarkResult } from './merge/buffers.js';
export { KsmInsufficientMemoryError } from './errors.js';
// profit and regions (issue 3)
export {
  regions,
  type Region,
  type RegionKind,
  type RegionLabel,
  type RegionsResult,
} from './report/regions.js';
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
} from './report/profit.js';
export {
  formatBytes,
  formatPercent,
  formatTable,
  type FormatBytesOptions,
  type FormatTableOptions,
  type TableColumn,
} from './format.js';
export { scanSmaps, type SmapsSummary, type SmapsScan } from './kernel/smaps.js';

// metrics (issue 6): Prometheus metrics, scan speed and tuning, the processes KSM knows, the CLI's --json shapes
export {
  collectDefaultKsmMetrics,
  collectMachineKsmMetrics,
  type KsmMetricsOptions,
  type MachineMetricsOptions,
  type PromRegistry,
} from './metrics/index.js';
export { scanTime, ScanTimeTuner, type ScanTime, type ScanTimeTunerOptions, type TunerStep } from './tune/tuner.js';
export { ksmProcesses, type KsmProcess, type KsmProcessList, type KsmProcessesOptions } from './report/processes.js';
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
  GroupJson,
} from './cli/json.js';

// per-group attribution: cgroups, systemd units, Kubernetes pods, containers
export {
  profitByGroup,
  type GroupBy,
  type GroupMember,
  type GroupProfit,
  type GroupProfitReport,
  type ProfitByGroupOptions,
} from './report/groups.js';
export { parseCgroupName, type CgroupName, type ContainerRuntime, type PodQosClass } from './report/cgroup-names.js';
export type { CgroupMemory } from './kernel/cgroup.js';
