/**
 * What the demo does about KSM's state before it starts anything: run on
 * KSM as it is, start it for the demo, or stop with one message that says
 * why and the exact commands. Pure functions of the knobs, so tests can
 * hold every case without a kernel.
 */
import { knobCommands } from '../../doctor/fixes.js';
import type { KnobAccess } from '../../kernel/knob-access.js';
import { KNOB_FILES, type KsmKnobs, type SystemStat } from '../../kernel/sysfs.js';

export type PlanStat = Pick<
  SystemStat,
  'run' | 'pagesToScan' | 'sleepMillisecs' | 'advisorMode' | 'advisorTargetScanTimeSec' | 'smartScan' |
  'pagesShared' | 'pagesSharing' | 'pagesUnshared' | 'pagesVolatile'
>;

export interface PlanContext {
  /** May start KSM when it is off (the demo's `--no-enable-ksm` says no). */
  enableKsm: boolean;
  /** Whether this process may write the knobs (knobAccess()). */
  access: KnobAccess;
  /** Pages the workers will hold in all. */
  demoPages: number;
  /** The command that reruns the demo, e.g. `npm run demo -- --size 8MiB`. */
  command: string;
}

export type KsmPlan =
  /** KSM runs: use it as it is; notes say when it will be slow to settle, with the fix. */
  | { action: 'run'; notes: string[] }
  /** Write `knobs` (only those that differ from now), and put `before` back on every way out. */
  | { action: 'enable'; knobs: KsmKnobs; before: KsmKnobs }
  /** Nothing can merge and the demo may not change that: one message, said once. */
  | { action: 'refuse'; message: string };

/** Every scan settles the demo after this many full scans: the one under way and two more. */
const SCANS_TO_SETTLE = 3;
/** Settling slower than this gets a note with the fix. */
const SLOW_SETTLE_SEC = 15;

/** Pages a full scan visits: the demo's, and every page KSM already tracks (an rmap_item each). */
function scanPages(stat: PlanStat, demoPages: number): number {
  return demoPages + (stat.pagesShared ?? 0) + (stat.pagesSharing ?? 0) + (stat.pagesUnshared ?? 0) + (stat.pagesVolatile ?? 0);
}

/**
 * Scan settings that take ksmd through the demo's pages (and whatever else
 * it scans) in about two seconds a scan, and what changes to get there from
 * `stat` (knobs already as fast are left alone). smart_scan goes off: with it, a page that failed
 * to merge is visited only every few scans, and two workers' copies written
 * scans apart can keep missing each other (measured on this machine kind:
 * see test/setup/ksm-knobs.ts).
 */
export function demoKnobs(stat: PlanStat, demoPages: number): { knobs: KsmKnobs; before: KsmKnobs } {
  const knobs: KsmKnobs = {};
  // The scan-time advisor owns pages_to_scan (writing it is EINVAL).
  if (stat.advisorMode !== undefined && stat.advisorMode !== 'none') knobs.advisorMode = 'none';
  const pagesToScan = Math.min(20_000, Math.max(1_000, Math.ceil(scanPages(stat, demoPages) / 100)));
  if (knobs.advisorMode !== undefined || stat.pagesToScan === undefined || stat.pagesToScan < pagesToScan) knobs.pagesToScan = pagesToScan;
  if (stat.sleepMillisecs === undefined || stat.sleepMillisecs > 20) knobs.sleepMillisecs = 20;
  if (stat.smartScan === true) knobs.smartScan = false;
  if (stat.run !== 1) knobs.run = 1;
  const before: Record<string, unknown> = {};
  for (const name of Object.keys(knobs) as Array<keyof KsmKnobs & keyof PlanStat>) before[name] = stat[name];
  return { knobs, before: before as KsmKnobs };
}

/** `pages_to_scan 100 -> 1000, run 0 -> 1`. */
export function describeChange(knobs: KsmKnobs, before: KsmKnobs): string {
  return (Object.keys(knobs) as Array<keyof KsmKnobs>)
    .map((name) => `${KNOB_FILES[name]} ${knobText(before[name])} -> ${knobText(knobs[name])}`)
    .join(', ');
}

/** `pages_to_scan=100 run=0`. */
export function describeKnobs(knobs: KsmKnobs): string {
  return (Object.entries(knobs) as Array<[keyof KsmKnobs, unknown]>)
    .filter(([, value]) => value !== undefined)
    .map(([name, value]) => `${KNOB_FILES[name]}=${knobText(value)}`)
    .join(' ');
}

function knobText(value: unknown): string {
  return typeof value === 'boolean' ? (value ? '1' : '0') : String(value ?? 'n/a');
}

/** The commands as a user without root types them: one `sudo sh -c` line. */
function asRoot(commands: string[], access: KnobAccess): string[] {
  return access === 'not-permitted' ? [`sudo sh -c '${commands.join(' && ')}'`] : commands;
}

function slowNote(stat: PlanStat, context: PlanContext): string | undefined {
  const fast = demoKnobs({ ...stat, run: 1 }, context.demoPages).knobs;
  const commands = knobCommands(fast);
  const fix = (): string => (commands.length === 0 ? '' : `; faster, as root: ${asRoot(commands, context.access).join('; ')}`);
  if (stat.advisorMode !== undefined && stat.advisorMode !== 'none') {
    const target = stat.advisorTargetScanTimeSec;
    return `the ${stat.advisorMode} advisor sets pages_to_scan for a ${target ?? '?'} s full scan: ` +
      `settling may take ~${target === undefined ? 'minutes' : `${SCANS_TO_SETTLE * target} s`}${fix()}`;
  }
  const pagesToScan = stat.pagesToScan ?? 0;
  const sleep = Math.max(stat.sleepMillisecs ?? 20, 1);
  if (pagesToScan <= 0) return undefined;
  const scanSec = (scanPages(stat, context.demoPages) / pagesToScan) * (sleep / 1000);
  if (scanSec * SCANS_TO_SETTLE <= SLOW_SETTLE_SEC) return undefined;
  return `pages_to_scan=${pagesToScan} sleep_millisecs=${stat.sleepMillisecs ?? 'n/a'}: a full scan takes ~${Math.round(scanSec)} s ` +
    `and settling ~${Math.round(scanSec * SCANS_TO_SETTLE)} s${fix()}`;
}

function stateOf(run: number | undefined): string {
  if (run === 0) return 'stopped (run=0)';
  if (run === 2) return 'unmerging (run=2)';
  return `in an unknown state (run=${String(run)})`;
}

function refusal(stat: PlanStat, context: PlanContext): string {
  const why = `KSM is ${stateOf(stat.run)}, so nothing can merge`;
  const manual = knobCommands(demoKnobs(stat, context.demoPages).knobs);
  const lines = (commands: string[]): string => commands.map((line) => `\n  ${line}`).join('');
  const restores = 'it starts KSM and puts every knob back on exit';
  switch (context.access) {
    case 'writable':
      return `${why}, and --no-enable-ksm leaves it so. Start it yourself:${lines(manual)}\n` +
        `or run \`${context.command}\`: ${restores}.`;
    case 'not-permitted':
      return `${why}, and starting it needs root. Either run the demo as root (${restores}):` +
        `${lines([`sudo ${context.command}`])}\nor start KSM yourself:${lines(asRoot(manual, 'not-permitted'))}`;
    default:
      return `${why}, and /sys is read-only here (a container?). Start KSM on the host, as root:${lines(manual)}`;
  }
}

export function planKsm(stat: PlanStat, context: PlanContext): KsmPlan {
  if (stat.run === 1) {
    const note = slowNote(stat, context);
    return { action: 'run', notes: note === undefined ? [] : [note] };
  }
  if (context.enableKsm && context.access === 'writable') {
    return { action: 'enable', ...demoKnobs(stat, context.demoPages) };
  }
  return { action: 'refuse', message: refusal(stat, context) };
}
