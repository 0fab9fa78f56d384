/**
 * `node-ksm/register`: opt a Node process in to KSM without touching its
 * code. Loaded before the application (`node --require node-ksm/register`,
 * `node --import node-ksm/register`, or either in NODE_OPTIONS), it calls
 * enableMerge() and, where the kernel cannot, warns once and lets the
 * application start.
 *
 * It runs again in every process that loads it: cluster workers (forked with
 * the primary's execArgv), pm2 instances (`node_args` or NODE_OPTIONS) and any
 * child that inherits NODE_OPTIONS. So each worker sets merge-any itself
 * rather than trusting inheritance across exec, which released kernels before
 * "ksm: fix exec/fork inheritance" could lose.
 *
 * Environment:
 * - NODE_KSM_REGISTER=off (or 0, false, no): do nothing. spawnUnmerged()
 *   sets it for its children, so they stay unmerged.
 * - NODE_KSM_STRICT=1: where KSM or PR_SET_MEMORY_MERGE is missing, throw
 *   and stop the start-up (default: one warning, then start).
 * - NODE_KSM_QUIET=1: no warning.
 * - NODE_KSM_LABELS=off: do not publish this process's memory labels for
 *   other processes' reports (default: published, see publishLabels()).
 */
import { enableMerge, isMergeEnabled } from './merge/opt-in.js';
import { publishLabels } from './merge/published.js';

export type RegisterOutcome =
  /** enableMerge() succeeded: merge-any is on for this process. */
  | 'enabled'
  /** NODE_KSM_REGISTER turned it off. */
  | 'off'
  /** KSM or PR_SET_MEMORY_MERGE is missing here (no addon, no CONFIG_KSM, Linux < 6.4, seccomp). */
  | 'unavailable';

export interface RegisterState {
  outcome: RegisterOutcome;
  /** PR_GET_MEMORY_MERGE after the attempt (false where it cannot be asked). */
  mergeAny: boolean;
  /** Why not, when the outcome is not `enabled`. */
  reason: string | undefined;
  /** The environment as it was read. */
  config: { strict: boolean; quiet: boolean; labels: boolean };
}

/** Set once this process or an ancestor has warned: a process tree warns once. */
const WARNED = 'NODE_KSM_WARNED';

function envFlag(name: string, defaultValue: boolean): boolean {
  const value = process.env[name]?.trim().toLowerCase();
  if (value === undefined || value === '') return defaultValue;
  if (['0', 'off', 'false', 'no'].includes(value)) return false;
  if (['1', 'on', 'true', 'yes'].includes(value)) return true;
  return defaultValue;
}

function currentMergeAny(): boolean {
  try {
    return isMergeEnabled();
  } catch {
    return false;
  }
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === 'string' && !error.message.startsWith(code) ? `${code}: ${error.message}` : error.message;
  }
  return String(error);
}

function run(): RegisterState {
  const config = { strict: envFlag('NODE_KSM_STRICT', false), quiet: envFlag('NODE_KSM_QUIET', false), labels: envFlag('NODE_KSM_LABELS', true) };
  if (!envFlag('NODE_KSM_REGISTER', true)) {
    return { outcome: 'off', mergeAny: currentMergeAny(), reason: 'NODE_KSM_REGISTER turned it off', config };
  }
  try {
    enableMerge();
  } catch (error) {
    if (config.strict) throw error;
    const reason = describe(error);
    if (!config.quiet && process.env[WARNED] !== '1') {
      process.emitWarning(`node-ksm/register: KSM is not used by this process: ${reason}`, {
        code: 'NODE_KSM_UNAVAILABLE',
        detail: 'The application runs as it would without node-ksm. NODE_KSM_STRICT=1 makes this an error, NODE_KSM_QUIET=1 silences it.',
      });
      process.env[WARNED] = '1';
    }
    return { outcome: 'unavailable', mergeAny: currentMergeAny(), reason, config };
  }
  if (config.labels) publishLabels();
  return { outcome: 'enabled', mergeAny: currentMergeAny(), reason: undefined, config };
}

/** What registering did in this process. */
export const registration: Readonly<RegisterState> = Object.freeze(run());
