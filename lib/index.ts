/**
 * node-ksm: use Linux Kernel Samepage Merging from Node.js on purpose, and
 * see what it saves.
 *
 * The public API, by layer: what the kernel says (kernel/), opting memory in
 * (merge/), what merged and what would (report/), why not (doctor/), and
 * metrics, tuning and the CLI's JSON shapes on top.
 */

// What the kernel says: support, per-process and machine-wide accounting, knobs, smaps.
export { isSupported, supportInfo, type SupportInfo } from './kernel/support.js';
export { ksmStat, parseKsmStat, type KsmStat, type KsmStatField } from './kernel/ksm-stat.js';
export { systemStat, setKnobs, type SystemStat, type KsmKnobs, type KnobChange } from './kernel/sysfs.js';
export { parseSmaps, scanSmaps, type SmapsVma, type SmapsParse, type SmapsSummary, type SmapsScan } from './kernel/smaps.js';

// Opting memory in, keeping secrets out, waiting for ksmd.
export { enableMerge, disableMerge, isMergeEnabled } from './merge/opt-in.js';
export {
  allocMergeable,
  markMergeable,
  unmarkMergeable,
  pageSize,
  type AllocOptions,
  type MarkOptions,
  type MergeableRange,
  type UnmarkResult,
} from './merge/buffers.js';
export { markSensitive, spawnUnmerged, type SensitiveOptions, type SensitiveRange } from './merge/security.js';
// Naming memory the application does not own, without advising it; published for other processes' reports.
export { labelMemory, labelAllocations, type LabelledMemory, type WasmMemory } from './merge/labels.js';
export { publishLabels } from './merge/published.js';
export { type UnmergeOptions, type UnmergePreflight } from './merge/headroom.js';
export { waitForMerge, type WaitForMergeOptions, type WaitForMergeResult } from './merge/wait.js';

// What merged, what it saved, and what would merge.
export {
  regions,
  type Region,
  type RegionKind,
  type RegionLabel,
  type RegionsOptions,
  type RegionsResult,
} from './report/regions.js';
export {
  profit,
  type ProfitOptions,
  type ProfitMethod,
  type ProfitReport,
  type ProfitTotal,
  type ProfitReconciliation,
  type RegionProfit,
  type SharingBucket,
} from './report/profit/index.js';
export { systemProfit, type SystemProfit } from './report/system-profit.js';
export { ksmProcesses, type KsmProcess, type KsmProcessList, type KsmProcessesOptions } from './report/processes.js';
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
  type EstimateAll,
  type EstimateSkipped,
  type EstimateSkipReason,
  type EstimateTopProcess,
  type EstimateTopVma,
} from './report/estimate-all.js';

// Why nothing merges, and the fix.
export {
  doctor,
  type DoctorOptions,
  type Evidence,
  type Finding,
  type FindingCode,
  type Fix,
  type Severity,
} from './doctor/index.js';

// Prometheus metrics and scan tuning.
export {
  collectDefaultKsmMetrics,
  collectMachineKsmMetrics,
  type KsmMetricsOptions,
  type MachineMetricsOptions,
  type PromRegistry,
} from './metrics/index.js';
export { scanTime, ScanTimeTuner, type ScanTime, type ScanTimeTunerOptions, type TunerStep } from './tune/tuner.js';

// Formatting, errors and shared types.
export {
  formatBytes,
  formatPercent,
  formatTable,
  type FormatBytesOptions,
  type FormatTableOptions,
  type TableColumn,
} from './format.js';
export {
  KsmError,
  KsmUnsupportedError,
  KsmNotMergeableError,
  KsmNotRunningError,
  KsmTimeoutError,
  KsmNoSuchProcessError,
  KsmInsufficientMemoryError,
  KsmMissingDependencyError,
  type KsmErrorCode,
  type SystemError,
  type UnmergeableMapping,
} from './errors.js';
export type { RootOption } from './validate.js';
export type { View } from './binding.js';

// The CLI's --json shapes.
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
