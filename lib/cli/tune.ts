/**
 * `node-ksm tune`: set KSM knobs as root, validated, with a before/after
 * table; `--target-scan-time` through the kernel's scan-time advisor (6.8+)
 * or the userspace ScanTimeTuner, which restores pages_to_scan on exit.
 */
import type { Command } from 'commander';

import { KNOB_FILES, setKnobs, systemStat, type KnobChange, type KsmKnobs } from '../kernel/sysfs.js';
import { ScanTimeTuner, type TunerStep } from '../tune/tuner.js';
import type { KnobChangeJson, TuneJson, TunerStepJson } from './json.js';
import {
  colors,
  formatCount,
  formatSeconds,
  parseDuration,
  parseInteger,
  parseSwitch,
  printJson,
  printable,
  table,
  UsageError,
  type Colors,
  type GlobalOptions,
} from './output.js';

interface TuneOptions extends GlobalOptions {
  run?: string;
  pagesToScan?: string;
  sleepMillisecs?: string;
  useZeroPages?: string;
  smartScan?: string;
  maxPageSharing?: string;
  mergeAcrossNodes?: string;
  advisorMode?: string;
  advisorTargetScanTime?: string;
  advisorMaxCpu?: string;
  advisorMinPagesToScan?: string;
  advisorMaxPagesToScan?: string;
  targetScanTime?: string;
  maxCpu?: string;
  minPagesToScan?: string;
  maxPagesToScan?: string;
  userspace?: boolean;
  interval: string;
  duration?: string;
}

const UINT_MAX = 4294967295;

/** The knobs named on the command line, parsed (the SDK validates ranges again). */
export function knobsFromOptions(o: TuneOptions): KsmKnobs {
  const k: KsmKnobs = {};
  if (o.run !== undefined) {
    const run = parseInteger(o.run, '--run', 0, 2);
    k.run = run as 0 | 1 | 2;
  }
  if (o.pagesToScan !== undefined) k.pagesToScan = parseInteger(o.pagesToScan, '--pages-to-scan', 1, UINT_MAX);
  if (o.sleepMillisecs !== undefined) k.sleepMillisecs = parseInteger(o.sleepMillisecs, '--sleep-millisecs', 0, UINT_MAX);
  if (o.useZeroPages !== undefined) k.useZeroPages = parseSwitch(o.useZeroPages, '--use-zero-pages');
  if (o.smartScan !== undefined) k.smartScan = parseSwitch(o.smartScan, '--smart-scan');
  if (o.maxPageSharing !== undefined) k.maxPageSharing = parseInteger(o.maxPageSharing, '--max-page-sharing', 2, UINT_MAX);
  if (o.mergeAcrossNodes !== undefined) k.mergeAcrossNodes = parseSwitch(o.mergeAcrossNodes, '--merge-across-nodes');
  if (o.advisorMode !== undefined) {
    if (o.advisorMode !== 'none' && o.advisorMode !== 'scan-time') {
      throw new UsageError(`--advisor-mode: '${o.advisorMode}' is not none or scan-time`);
    }
    k.advisorMode = o.advisorMode;
  }
  if (o.advisorTargetScanTime !== undefined) {
    k.advisorTargetScanTimeSec = Math.max(1, Math.round(parseDuration(o.advisorTargetScanTime, '--advisor-target-scan-time')));
  }
  if (o.advisorMaxCpu !== undefined) k.advisorMaxCpuPercent = parseInteger(o.advisorMaxCpu, '--advisor-max-cpu', 1, 100);
  if (o.advisorMinPagesToScan !== undefined) {
    k.advisorMinPagesToScan = parseInteger(o.advisorMinPagesToScan, '--advisor-min-pages-to-scan', 1, UINT_MAX);
  }
  if (o.advisorMaxPagesToScan !== undefined) {
    k.advisorMaxPagesToScan = parseInteger(o.advisorMaxPagesToScan, '--advisor-max-pages-to-scan', 1, UINT_MAX);
  }
  return k;
}

function changesJson(change: KnobChange): KnobChangeJson[] {
  return (Object.keys(change.after) as Array<keyof KsmKnobs>).map((knob) => ({
    knob,
    file: KNOB_FILES[knob],
    before: change.before[knob] ?? null,
    after: change.after[knob] ?? null,
  }));
}

function renderChanges(changes: KnobChangeJson[], c: Colors): string {
  return table(
    ['KNOB', 'BEFORE', 'AFTER'],
    changes.map((ch) => [
      ch.file,
      printable(String(ch.before ?? '-')),
      ch.before === ch.after ? printable(String(ch.after ?? '-')) : c.bold(c.green(printable(String(ch.after ?? '-')))),
    ]),
  );
}

function stepJson(step: TunerStep): TunerStepJson {
  return {
    candidatePages: step.candidatePages,
    observedPagesPerSecond: step.observedPagesPerSecond ?? null,
    estimatedScanTimeSec: step.estimatedScanTimeSec ?? null,
    ksmdCpuPercent: step.ksmdCpuPercent ?? null,
    pagesToScanBefore: step.pagesToScanBefore,
    pagesToScanAfter: step.pagesToScanAfter,
    decidedBy: step.decidedBy,
  };
}

async function runUserspace(o: TuneOptions, root: string, targetSec: number, c: Colors): Promise<TuneJson> {
  const options: ConstructorParameters<typeof ScanTimeTuner>[0] = {
    root,
    targetScanTimeSec: Math.max(1, Math.round(targetSec)),
    intervalMs: Math.max(100, Math.round(parseDuration(o.interval, '--interval') * 1000)),
  };
  if (o.maxCpu !== undefined) options.maxCpuPercent = parseInteger(o.maxCpu, '--max-cpu', 1, 100);
  if (o.minPagesToScan !== undefined) options.minPagesToScan = parseInteger(o.minPagesToScan, '--min-pages-to-scan', 1, UINT_MAX);
  if (o.maxPagesToScan !== undefined) options.maxPagesToScan = parseInteger(o.maxPagesToScan, '--max-pages-to-scan', 1, UINT_MAX);
  const durationMs = o.duration === undefined ? undefined : parseDuration(o.duration, '--duration') * 1000;
  const tuner = new ScanTimeTuner(options);
  const json = o.json === true;
  const say = (line: string): void => {
    // With --json, progress goes to stderr so stdout stays one document.
    (json ? process.stderr : process.stdout).write(`${line}\n`);
  };

  const before = systemStat({ root });
  if (before.run !== 1) say(c.yellow(`warning: KSM is not running (run=${before.run ?? '-'}): nothing will be scanned`));
  tuner.start({ timer: false });
  say(
    `userspace scan-time controller: target ${formatSeconds(options.targetScanTimeSec)}, ksmd <= ${tuner.maxCpuPercent}% CPU, ` +
      `pages_to_scan ${formatCount(tuner.minPagesToScan)}..${formatCount(tuner.maxPagesToScan)}, every ${formatSeconds(tuner.intervalMs / 1000)}; ` +
      `Ctrl-C stops and restores pages_to_scan=${before.pagesToScan ?? '-'}`,
  );

  let failure: unknown;
  await new Promise<void>((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    let deadline: NodeJS.Timeout | undefined;
    const finish = (): void => {
      if (timer !== undefined) clearInterval(timer);
      if (deadline !== undefined) clearTimeout(deadline);
      process.off('SIGINT', finish);
      process.off('SIGTERM', finish);
      process.off('SIGHUP', finish);
      resolve();
    };
    process.on('SIGINT', finish);
    process.on('SIGTERM', finish);
    process.on('SIGHUP', finish);
    timer = setInterval(() => {
      try {
        const step = tuner.step();
        say(
          `${new Date().toISOString().slice(11, 19)}  candidates ${formatCount(step.candidatePages)}  ` +
            `visited ${formatCount(step.observedPagesPerSecond)} pages/s  scan ~${formatSeconds(step.estimatedScanTimeSec)}  ` +
            `ksmd ${step.ksmdCpuPercent === undefined ? '-' : `${step.ksmdCpuPercent.toFixed(1)}%`}  ` +
            `pages_to_scan ${formatCount(step.pagesToScanBefore)} -> ${formatCount(step.pagesToScanAfter)} (${step.decidedBy})`,
        );
      } catch (error) {
        failure = error;
        finish();
      }
    }, tuner.intervalMs);
    if (durationMs !== undefined) deadline = setTimeout(finish, durationMs);
  });
  const restored = tuner.stop();
  const restoredJson = restored === undefined ? [] : changesJson(restored);
  say(`stopped; restored: ${restoredJson.map((r) => `${r.file}=${printable(String(r.after))}`).join(', ')}`);
  if (failure !== undefined) throw failure;
  return {
    kind: 'node-ksm/tune',
    version: 1,
    mode: 'userspace',
    changes: [],
    steps: tuner.steps.map(stepJson),
    restored: restoredJson,
  };
}

export async function runTune(o: TuneOptions): Promise<void> {
  const root = o.root ?? '/';
  const c = colors(o);
  const knobs = knobsFromOptions(o);

  let result: TuneJson;
  if (o.targetScanTime !== undefined) {
    const target = parseDuration(o.targetScanTime, '--target-scan-time');
    if (target < 1) throw new UsageError('--target-scan-time: at least 1s');
    const stat = systemStat({ root });
    const advisor = stat.advisorModes?.includes('scan-time') === true && o.userspace !== true;
    if (advisor) {
      knobs.advisorMode = 'scan-time';
      knobs.advisorTargetScanTimeSec = Math.round(target);
      if (o.maxCpu !== undefined) knobs.advisorMaxCpuPercent = parseInteger(o.maxCpu, '--max-cpu', 1, 100);
      if (o.minPagesToScan !== undefined) knobs.advisorMinPagesToScan = parseInteger(o.minPagesToScan, '--min-pages-to-scan', 1, UINT_MAX);
      if (o.maxPagesToScan !== undefined) knobs.advisorMaxPagesToScan = parseInteger(o.maxPagesToScan, '--max-pages-to-scan', 1, UINT_MAX);
      result = { kind: 'node-ksm/tune', version: 1, mode: 'advisor', changes: changesJson(setKnobs(knobs, { root })), steps: null, restored: null };
    } else {
      if (Object.keys(knobs).length > 0) {
        // Knobs first (e.g. --run 1), then the controller takes pages_to_scan.
        if (knobs.pagesToScan !== undefined) throw new UsageError('--pages-to-scan and --target-scan-time: the controller sets pages_to_scan');
      }
      const changes = Object.keys(knobs).length > 0 ? changesJson(setKnobs(knobs, { root })) : [];
      if (changes.length > 0 && o.json !== true) process.stdout.write(`${renderChanges(changes, c)}\n`);
      result = { ...(await runUserspace(o, root, target, c)), changes };
    }
  } else if (Object.keys(knobs).length === 0) {
    // Nothing to set: show the knobs as they are.
    const stat = systemStat({ root });
    const current: KnobChangeJson[] = (Object.keys(KNOB_FILES) as Array<keyof KsmKnobs>)
      .filter((knob) => stat[knob] !== undefined)
      .map((knob) => ({ knob, file: KNOB_FILES[knob], before: stat[knob] ?? null, after: stat[knob] ?? null }));
    result = { kind: 'node-ksm/tune', version: 1, mode: 'show', changes: current, steps: null, restored: null };
  } else {
    result = { kind: 'node-ksm/tune', version: 1, mode: 'knobs', changes: changesJson(setKnobs(knobs, { root })), steps: null, restored: null };
  }

  if (o.json === true) {
    printJson(result);
  } else if (result.mode === 'show') {
    process.stdout.write(`${table(['KNOB', 'VALUE'], result.changes.map((ch) => [ch.file, printable(String(ch.after ?? '-'))]))}\n`);
  } else if (result.mode !== 'userspace') {
    process.stdout.write(`${renderChanges(result.changes, c)}\n`);
    if (result.mode === 'advisor') {
      process.stdout.write(c.dim('the kernel scan-time advisor now sets pages_to_scan itself (advisor_mode scan-time)\n'));
    }
  }
}

export function register(program: Command): void {
  program
    .command('tune')
    .description('set KSM knobs as root with a before/after table; --target-scan-time steers the scan speed')
    .option('--run <0|1|2>', '0 stop, 1 run, 2 stop and unmerge everything')
    .option('--pages-to-scan <n>', 'pages per batch (kernel default 100: demo speed)')
    .option('--sleep-millisecs <n>', 'sleep between batches')
    .option('--use-zero-pages <on|off>', 'merge empty pages with the zero page')
    .option('--smart-scan <on|off>', 'skip pages that did not merge in earlier scans')
    .option('--max-page-sharing <n>', 'most mappings per KSM page (>= 2)')
    .option('--merge-across-nodes <on|off>', 'merge pages of different NUMA nodes (only with nothing merged)')
    .option('--advisor-mode <none|scan-time>', "the kernel's scan-time advisor (6.8+)")
    .option('--advisor-target-scan-time <duration>', "the advisor's target for one full scan (e.g. 200s)")
    .option('--advisor-max-cpu <percent>', "the advisor's CPU bound for ksmd")
    .option('--advisor-min-pages-to-scan <n>', "the advisor's lower bound")
    .option('--advisor-max-pages-to-scan <n>', "the advisor's upper bound")
    .option('--target-scan-time <duration>', "one full scan should take this long: the kernel advisor where it exists, else the userspace controller")
    .option('--max-cpu <percent>', 'with --target-scan-time: ksmd CPU bound (default 70)')
    .option('--min-pages-to-scan <n>', 'with --target-scan-time: lower bound for pages_to_scan (default 500)')
    .option('--max-pages-to-scan <n>', 'with --target-scan-time: upper bound for pages_to_scan (default 30000)')
    .option('--userspace', 'with --target-scan-time: use the userspace controller even where the kernel advisor exists')
    .option('--interval <duration>', 'userspace controller: time between adjustments', '5s')
    .option('--duration <duration>', 'userspace controller: stop (and restore) after this long (default: on Ctrl-C / SIGTERM)')
    .option('--json', 'print a TuneJson document (see README)')
    .addHelpText(
      'after',
      `
Without options, prints the knobs as they are. Writing knobs needs root.
Examples:
  node-ksm tune --run 1 --pages-to-scan 1000 --sleep-millisecs 20
  node-ksm tune --target-scan-time 120s          # advisor_mode scan-time on 6.8+
  node-ksm tune --target-scan-time 2m --userspace --max-cpu 20`,
    )
    .action(async (_options, command: Command) => {
      await runTune(command.optsWithGlobals<TuneOptions>());
    });
}
