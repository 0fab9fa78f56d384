/**
 * The demo: N worker processes build the same large table in allocMergeable
 * Buffers, and we print what the kernel reports while KSM merges them.
 *
 * Not part of the public API (lib/index.ts): `node-ksm demo` (index.ts)
 * runs it, and `npm run demo` runs that command. Each run salts the table
 * with its own seed, so two demos at once do not merge with each other.
 * Where KSM is off and the knobs may be written, the demo starts it and
 * puts every knob it changed back on exit, on error and on a signal.
 */
import { randomInt } from 'node:crypto';

import { KsmNotRunningError, KsmTimeoutError, abortError } from '../../errors.js';
import { knobCommands } from '../../doctor/fixes.js';
import { knobAccess } from '../../kernel/knob-access.js';
import { supportInfo } from '../../kernel/support.js';
import { systemStat, type SystemStat } from '../../kernel/sysfs.js';
import { pageSize } from '../../merge/buffers.js';
import { waitForMerge } from '../../merge/wait.js';
import { checkBoolean, checkDuration, checkOptions, checkSignal, invalidType, outOfRange } from '../../validate.js';
import { KnobSession } from './knobs.js';
import { measure, type Baseline } from './measure.js';
import { describeChange, describeKnobs, planKsm, type KsmPlan } from './plan.js';
import { WorkerPool } from './pool.js';
import { LiveView, mib, renderSummary, type RenderContext } from './report.js';
import type { DemoOptions, DemoOutput, DemoResult } from './types.js';

const MiB = 1024 * 1024;
const STOP_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** KsmNotRunningError with the demo's own explanation as its message (the one thing printed). */
export class DemoNotRunningError extends KsmNotRunningError {
  constructor(run: number | undefined, message: string) {
    super(run);
    this.message = message;
  }
}

interface Settings {
  workers: number;
  seed: number;
  size: number;
  fullScans: number;
  intervalMs: number;
  timeoutMs: number;
  enableKsm: boolean;
  handleSignals: boolean;
  signal: AbortSignal | undefined;
  command: string;
  page: number;
  /** Bytes each worker maps: size rounded up to whole pages. */
  mapped: number;
}

function checkInt(name: string, value: unknown, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number') throw invalidType(name, 'of type number', value);
  if (!Number.isInteger(value) || value < min || value > max) throw outOfRange(name, `an integer from ${min} to ${max}`, value);
  return value;
}

function checkSettings(options: DemoOptions | undefined, output: DemoOutput): Settings {
  const opts = checkOptions<DemoOptions>(options);
  if (typeof output !== 'object' || output === null || typeof output.write !== 'function') {
    throw invalidType('output', 'an object with a write(text) method', output);
  }
  const command = opts.command ?? 'node-ksm demo';
  if (typeof command !== 'string') throw invalidType('options.command', 'of type string', command);
  const settings = {
    workers: checkInt('options.workers', opts.workers, 2, 64) ?? 4,
    seed: checkInt('options.seed', opts.seed, 0, 0xffffffff) ?? randomInt(0, 0xffffffff),
    fullScans: checkInt('options.fullScans', opts.fullScans, 1, 1000) ?? 2,
    intervalMs: checkDuration('options.intervalMs', opts.intervalMs) ?? 1000,
    timeoutMs: checkDuration('options.timeoutMs', opts.timeoutMs) ?? 600_000,
    enableKsm: checkBoolean('options.enableKsm', opts.enableKsm) ?? true,
    handleSignals: checkBoolean('options.handleSignals', opts.handleSignals) ?? true,
    signal: checkSignal(opts.signal),
    command,
  };
  const info = supportInfo();
  if (!info.supported) output.write(`node-ksm demo: KSM cannot be used here: ${info.reason ?? 'unknown reason'}\n`);
  const page = pageSize(); // throws KsmUnsupportedError with the reason
  const size = checkInt('options.size', opts.size, page, 4 * 1024 * MiB) ?? 64 * MiB;
  return { ...settings, size, page, mapped: Math.ceil(size / page) * page };
}

/**
 * One AbortSignal for every way the demo is stopped early: the caller's
 * signal, SIGINT / SIGTERM / SIGHUP; and `cleanup` on process exit too.
 * A signal's abort reason carries its name (`reason.signal`).
 */
class Stopper {
  private readonly controller = new AbortController();
  readonly signal = this.controller.signal;
  private readonly onOuter: () => void;
  private readonly onSignal: (name: NodeJS.Signals) => void;

  constructor(
    private readonly settings: Settings,
    private readonly cleanup: () => void,
    say: (name: NodeJS.Signals) => void,
  ) {
    const outer = settings.signal;
    this.onOuter = () => this.controller.abort(outer?.reason);
    outer?.addEventListener('abort', this.onOuter, { once: true });
    if (outer?.aborted) this.controller.abort(outer.reason);
    this.onSignal = (name) => {
      if (!this.signal.aborted) say(name);
      this.controller.abort(Object.assign(new Error(`stopped by ${name}`), { signal: name }));
    };
    if (settings.handleSignals) for (const name of STOP_SIGNALS) process.on(name, this.onSignal);
    process.on('exit', cleanup);
  }

  dispose(): void {
    process.off('exit', this.cleanup);
    if (this.settings.handleSignals) for (const name of STOP_SIGNALS) process.off(name, this.onSignal);
    this.settings.signal?.removeEventListener('abort', this.onOuter);
  }
}

function startKsm(plan: Exclude<KsmPlan, { action: 'refuse' }>, initial: SystemStat, knobs: KnobSession, output: DemoOutput): void {
  if (plan.action === 'enable') {
    knobs.start(plan.knobs, plan.before);
    output.write(
      `  KSM was ${initial.runState} (run=${String(initial.run)}): started it for the demo ` +
        `(${describeChange(plan.knobs, plan.before)}); every knob goes back on exit\n`,
    );
    return;
  }
  output.write(
    `  KSM: run=${String(initial.run)} pages_to_scan=${String(initial.pagesToScan)} ` +
      `sleep_millisecs=${String(initial.sleepMillisecs)} advisor_mode=${initial.advisorMode ?? 'n/a'} ` +
      `use_zero_pages=${initial.useZeroPages === undefined ? 'n/a' : Number(initial.useZeroPages)}\n`,
  );
  for (const note of plan.notes) output.write(`  note: ${note}\n`);
}

/** Refreshes the live view until waitForMerge settles (true), times out (false) or fails. */
async function watch(pool: WorkerPool, baseline: Baseline, view: LiveView, s: Settings, signal: AbortSignal): Promise<boolean> {
  // Our own controller too, so an error of the view stops the wait instead of leaving it running.
  const local = new AbortController();
  const onAbort = (): void => local.abort(signal.reason);
  signal.addEventListener('abort', onAbort, { once: true });
  const waiting = waitForMerge({ fullScans: s.fullScans, timeoutMs: s.timeoutMs, signal: local.signal }).then(
    () => true,
    (error: unknown) => {
      if (error instanceof KsmTimeoutError) return false;
      throw error;
    },
  );
  const outcome = Promise.race([waiting, pool.lost]);
  let finished = false;
  outcome.then(
    () => (finished = true),
    () => (finished = true),
  );
  try {
    while (!finished) {
      view.draw(await measure(pool, baseline));
      await pause(s.intervalMs, outcome);
    }
    return await outcome;
  } catch (error) {
    local.abort(error);
    await waiting.catch(() => undefined);
    if (signal.aborted) throw abortError(signal);
    if (error instanceof KsmNotRunningError) throw new DemoNotRunningError(error.run, `KSM stopped while the demo ran: ${error.message}`);
    throw error;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/** Resolves after `ms`, or as soon as `until` settles. */
function pause(ms: number, until: Promise<unknown>): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    const done = (): void => {
      clearTimeout(timer);
      resolve();
    };
    until.then(done, done);
  });
}

/** Starts the workers, watches KSM merge them, verifies their bytes and prints the summary. */
async function demonstrate(s: Settings, pool: WorkerPool, signal: AbortSignal, output: DemoOutput, startedAt: number): Promise<Omit<DemoResult, 'knobs'>> {
  const theoreticalSaving = (s.workers - 1) * s.size;
  const system = systemStat();
  await pool.start(s.workers, s.size, s.seed, signal);
  const baseline: Baseline = { startedAt, system, lastWriteScans: systemStat().fullScans ?? 0, mapped: s.mapped, theoreticalSaving };
  output.write(`  workers ${pool.workers.map((worker) => worker.pid).join(', ')} built their tables; waiting for ksmd\n`);

  const ctx: RenderContext = { page: s.page, mapped: s.mapped, theoreticalSaving, fullScans: s.fullScans };
  const view = new LiveView(output, ctx);
  const settled = await watch(pool, baseline, view, s, signal);
  // Copy-on-write: every worker still reads exactly its own table.
  const intact = await pool.verify();
  const last = await measure(pool, baseline);
  if (signal.aborted) throw abortError(signal);
  view.final(last);
  output.write(renderSummary(last, { workers: s.workers, size: s.size, theoreticalSaving, settled, fullScans: s.fullScans, intact }));
  return { ...last, workers: s.workers, size: s.size, seed: s.seed, theoreticalSaving, settled, intact };
}

function reportKnobs(knobs: KnobSession, output: DemoOutput): void {
  if (knobs.restored !== undefined) {
    output.write(`KSM knobs put back: ${describeKnobs(knobs.restored)}\n`);
  } else if (knobs.restoreError !== undefined && knobs.before !== undefined) {
    const error = knobs.restoreError;
    output.write(
      `node-ksm demo: could not put the KSM knobs back (${error instanceof Error ? error.message : String(error)}); ` +
        `as root: ${knobCommands(knobs.before).join('; ')}\n`,
    );
  }
}

/**
 * Runs the demo: starts `workers` processes that each build the same
 * `size`-byte table in allocMergeable() Buffers, prints per-process
 * ksm_stat, the table mappings' KSM and PSS, machine-wide pages_sharing and
 * general_profit, and the saving against (N - 1) x size, refreshing until
 * merging settled (two full scans after the last write), then a summary.
 * Workers are killed and knobs put back on every way out.
 *
 * @returns the last snapshot with the settings used.
 * @throws TypeError / RangeError for bad options.
 * @throws KsmUnsupportedError where KSM is not available.
 * @throws KsmNotRunningError when KSM is off and may not be started (its
 *   message says why and what to run: the one thing to print), or stops mid-run.
 * @throws AbortError (code ABORT_ERR) on `signal` or a signal; `cause.signal` names the signal.
 */
export async function runDemo(options: DemoOptions | undefined, output: DemoOutput): Promise<DemoResult> {
  const s = checkSettings(options, output);
  const initial = systemStat();
  const demoPages = (s.workers * s.mapped) / s.page;
  const plan = planKsm(initial, { enableKsm: s.enableKsm, access: knobAccess(), demoPages, command: s.command });
  if (plan.action === 'refuse') throw new DemoNotRunningError(initial.run, plan.message);

  const knobs = new KnobSession();
  const pool = new WorkerPool();
  // Synchronous, so it also runs from process.on('exit').
  const cleanup = (): void => {
    pool.kill();
    knobs.restore();
  };
  const stopper = new Stopper(s, cleanup, (name) => {
    output.write(`\nnode-ksm demo: ${name}: stopping the workers${knobs.touched ? ' and putting the KSM knobs back' : ''}\n`);
  });
  const startedAt = performance.now();
  let result: Omit<DemoResult, 'knobs'>;
  try {
    output.write(
      `node-ksm demo: ${s.workers} workers x ${mib(s.size)} table (seed ${s.seed}); ` +
        `perfect merging saves (N-1) x size = ${mib((s.workers - 1) * s.size)}\n`,
    );
    startKsm(plan, initial, knobs, output);
    result = await demonstrate(s, pool, stopper.signal, output, startedAt);
  } catch (error) {
    if (stopper.signal.aborted && !(error instanceof Error && error.name === 'AbortError')) throw abortError(stopper.signal);
    throw error;
  } finally {
    cleanup();
    await pool.exited();
    stopper.dispose();
    reportKnobs(knobs, output);
  }
  const set = knobs.set;
  const restored = knobs.restored;
  return { ...result, knobs: set !== undefined && restored !== undefined ? { set, restored } : undefined };
}

export type { DemoOptions, DemoOutput, DemoResult, DemoSnapshot, DemoProcess } from './types.js';
export { demoKnobs, planKsm, type KsmPlan, type PlanContext } from './plan.js';
