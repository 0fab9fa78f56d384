/** Options of mergeable heaps, checked before anything starts. */
import { SERVING_MODES, type ServingMode } from './flags.js';
import { checkBoolean, checkDuration, checkOptions, invalidType, outOfRange } from '../validate.js';

export interface MergeableHeapsOptions {
  /**
   * What the worker switches back on when its start-up is over (default
   * `'mergeable'`): `'mergeable'` incremental marking and the memory reducer,
   * GC work stays on the main thread; `'concurrent'` also parallel scavenge,
   * concurrent sweeping and parallel compaction (less saving after traffic);
   * `'deterministic'` nothing (the start-up flags stay).
   */
  serving?: ServingMode;
  /** Start-up ends at the latest this long after the worker started (default 60000; Infinity: never by time). */
  startupTimeoutMs?: number;
  /** Start-up ends when the worker's first server is listening (default true). */
  onListening?: boolean;
  /** Give malloc's free memory back to the kernel when start-up ends (default true; glibc only). */
  trimMalloc?: boolean;
  /**
   * Throw when this machine cannot merge (no KSM, no PR_SET_MEMORY_MERGE),
   * instead of starting plain workers with a warning (default false).
   */
  requireMerge?: boolean;
}

/** What the worker's preload gets, through the environment. */
export interface WorkerConfig {
  serving: ServingMode;
  /** null: no time limit. */
  startupTimeoutMs: number | null;
  onListening: boolean;
  trimMalloc: boolean;
}

export interface ResolvedOptions extends WorkerConfig {
  requireMerge: boolean;
}

export const DEFAULT_STARTUP_TIMEOUT_MS = 60_000;

/** Node's timers take at most 2^31 - 1 ms. */
const TIMER_MAX_MS = 2 ** 31 - 1;

/** `false` turns the mode off; anything else is checked and completed. */
export function resolveOptions(value: unknown, name = 'mergeableHeaps'): ResolvedOptions | false {
  if (value === false) return false;
  const options = checkOptions<MergeableHeapsOptions>(value, name);
  const serving = options.serving ?? 'mergeable';
  if (typeof serving !== 'string') throw invalidType(`${name}.serving`, 'of type string', serving);
  if (!SERVING_MODES.includes(serving)) {
    throw outOfRange(`${name}.serving`, `one of ${SERVING_MODES.map((m) => `'${m}'`).join(', ')}`, `'${serving}'`);
  }
  const timeout = checkDuration(`${name}.startupTimeoutMs`, options.startupTimeoutMs) ?? DEFAULT_STARTUP_TIMEOUT_MS;
  if (Number.isFinite(timeout) && timeout > TIMER_MAX_MS) {
    throw outOfRange(`${name}.startupTimeoutMs`, `at most ${TIMER_MAX_MS} or Infinity`, timeout);
  }
  return {
    serving,
    startupTimeoutMs: Number.isFinite(timeout) ? timeout : null,
    onListening: checkBoolean(`${name}.onListening`, options.onListening) ?? true,
    trimMalloc: checkBoolean(`${name}.trimMalloc`, options.trimMalloc) ?? true,
    requireMerge: checkBoolean(`${name}.requireMerge`, options.requireMerge) ?? false,
  };
}

export function workerConfig(options: ResolvedOptions): WorkerConfig {
  const { serving, startupTimeoutMs, onListening, trimMalloc } = options;
  return { serving, startupTimeoutMs, onListening, trimMalloc };
}

/** The preload's reading of its environment variable; defaults where it is missing or mangled. */
export function parseWorkerConfig(text: string | undefined): WorkerConfig {
  const defaults: WorkerConfig = {
    serving: 'mergeable',
    startupTimeoutMs: DEFAULT_STARTUP_TIMEOUT_MS,
    onListening: true,
    trimMalloc: true,
  };
  if (text === undefined) return defaults;
  try {
    const raw = JSON.parse(text) as Partial<WorkerConfig>;
    return {
      serving: SERVING_MODES.includes(raw.serving as ServingMode) ? (raw.serving as ServingMode) : defaults.serving,
      startupTimeoutMs:
        raw.startupTimeoutMs === null || (typeof raw.startupTimeoutMs === 'number' && raw.startupTimeoutMs >= 0)
          ? raw.startupTimeoutMs
          : defaults.startupTimeoutMs,
      onListening: typeof raw.onListening === 'boolean' ? raw.onListening : defaults.onListening,
      trimMalloc: typeof raw.trimMalloc === 'boolean' ? raw.trimMalloc : defaults.trimMalloc,
    };
  } catch {
    return defaults;
  }
}

/** The environment variable that carries WorkerConfig to the preload. */
export const CONFIG_ENV = 'NODE_KSM_HEAPS';
