/**
 * `node-ksm top`: the status, refreshed in place, with rates measured
 * between refreshes. At a terminal it takes the alternate screen and raw
 * keyboard input, and gives both back on q, Ctrl-C, SIGTERM or an error.
 */
import type { Command } from 'commander';

import { systemStat, type SystemStat } from '../kernel/sysfs.js';
import { costRates, readKsmCosts, type KsmCosts } from '../report/costs.js';
import type { TopJson } from './json.js';
import { colors, formatCount, formatRatio, parseDuration, parseInteger, toJson, type GlobalOptions } from './output.js';
import { parseBy } from './groups.js';
import { collectStatus, renderStatus, type StatusOptions } from './status.js';

const ENTER_SCREEN = '\x1b[?1049h\x1b[?25l';
const LEAVE_SCREEN = '\x1b[?25h\x1b[?1049l';
const HOME_CLEAR = '\x1b[H\x1b[2J';

interface TopOptions extends GlobalOptions {
  interval: string;
  iterations?: string;
  all?: boolean;
  exact?: boolean;
  fairShare?: boolean;
  by?: string;
}

interface Reading {
  at: number;
  stat: SystemStat;
  costs: KsmCosts;
}

function rates(previous: Reading | undefined, now: Reading): TopJson['rates'] {
  if (previous === undefined) return null;
  const seconds = (now.at - previous.at) / 1000;
  if (seconds <= 0) return null;
  const visited = (s: SystemStat): number | undefined =>
    s.pagesScanned === undefined ? undefined : s.pagesScanned + (s.pagesSkipped ?? 0);
  const a = visited(previous.stat);
  const b = visited(now.stat);
  return {
    intervalSec: seconds,
    pagesScannedPerSecond: a === undefined || b === undefined ? null : (b - a) / seconds,
    fullScans:
      now.stat.fullScans === undefined || previous.stat.fullScans === undefined ? null : now.stat.fullScans - previous.stat.fullScans,
    pagesSharingPerSecond:
      now.stat.pagesSharing === undefined || previous.stat.pagesSharing === undefined
        ? null
        : (now.stat.pagesSharing - previous.stat.pagesSharing) / seconds,
    ...costRatesJson(previous.costs, now.costs),
  };
}

/** ksmd's CPU and the CoW breaks between two refreshes. */
function costRatesJson(previous: KsmCosts, now: KsmCosts): Pick<NonNullable<TopJson['rates']>, 'ksmdCpuPercent' | 'cowKsmPerSecond' | 'ksmSwpinCopyPerSecond'> {
  const r = costRates(previous, now);
  return {
    ksmdCpuPercent: r?.ksmdCpuPercent ?? null,
    cowKsmPerSecond: r?.cowKsmPerSecond ?? null,
    ksmSwpinCopyPerSecond: r?.ksmSwpinCopyPerSecond ?? null,
  };
}

export async function runTop(opts: TopOptions): Promise<void> {
  const intervalMs = Math.max(100, parseDuration(opts.interval, '--interval') * 1000);
  const iterations = opts.iterations === undefined ? Infinity : parseInteger(opts.iterations, '--iterations', 1);
  const root = opts.root ?? '/';
  const interactive = opts.json !== true && process.stdout.isTTY === true;
  const c = colors(opts);
  const statusOptions: StatusOptions = { root, all: opts.all === true };
  if (opts.exact === true) statusOptions.exact = true;
  if (opts.fairShare === false) statusOptions.fairShare = false;
  const by = parseBy(opts.by);
  if (by !== undefined) statusOptions.by = by;

  let stopped = false;
  let wake: (() => void) | undefined;
  const stop = (): void => {
    stopped = true;
    wake?.();
  };
  const stdin = process.stdin;
  const rawMode = interactive && stdin.isTTY === true;
  const onKey = (data: Buffer): void => {
    const key = data.toString();
    if (key === 'q' || key === 'Q' || key === '\x03' || key === '\x1b') stop();
  };
  const onSignal = (): void => stop();
  const restore = (): void => {
    if (rawMode) {
      stdin.off('data', onKey);
      stdin.setRawMode(false);
      stdin.pause();
    }
    if (interactive) process.stdout.write(LEAVE_SCREEN);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // Whatever happens, the terminal is given back.
  process.once('exit', restore);
  if (interactive) process.stdout.write(ENTER_SCREEN);
  if (rawMode) {
    stdin.setRawMode(true);
    stdin.resume();
    stdin.on('data', onKey);
  }

  try {
    let previous: Reading | undefined;
    for (let i = 0; i < iterations && !stopped; i++) {
      const at = performance.now();
      const status = await collectStatus(statusOptions);
      const now: Reading = { at, stat: systemStat({ root }), costs: readKsmCosts(root) };
      const r = rates(previous, now);
      previous = now;
      if (opts.json === true) {
        const { kind: _kind, ...rest } = status;
        const line: TopJson = { kind: 'node-ksm/top', ...rest, rates: r };
        process.stdout.write(`${toJson(line, 0)}\n`);
      } else {
        const extra = [
          `${c.bold('measured')} ${r === null ? c.dim('(rates after the next refresh)') : `${formatCount(r.pagesScannedPerSecond)} pages/s visited, ksmd ${r.ksmdCpuPercent === null ? '-' : `${r.ksmdCpuPercent.toFixed(1)}%`} CPU, CoW breaks ${formatRatio(r.cowKsmPerSecond, 1)}/s, ${formatCount(r.fullScans)} full scans, pages_sharing ${r.pagesSharingPerSecond !== null && r.pagesSharingPerSecond >= 0 ? '+' : ''}${formatRatio(r.pagesSharingPerSecond, 0)}/s over ${formatRatio(r.intervalSec, 1)} s`}`,
        ];
        const header = c.dim(`node-ksm top — every ${formatRatio(intervalMs / 1000, 1)} s — ${new Date(status.time).toLocaleTimeString()} — q to quit`);
        const body = `${header}\n\n${renderStatus(status, c, extra)}\n`;
        process.stdout.write(interactive ? HOME_CLEAR + body : `${body}\n`);
      }
      if (i + 1 >= iterations) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, intervalMs);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = undefined;
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('exit', restore);
    restore();
  }
}

export function register(program: Command): void {
  program
    .command('top')
    .description('the status, refreshed live and sorted by saving; q or Ctrl-C quits')
    .option('-i, --interval <duration>', 'time between refreshes (e.g. 2s, 500ms)', '2s')
    .option('-n, --iterations <n>', 'stop after n refreshes (default: until q / Ctrl-C)')
    .option('--all', 'also list processes KSM scans that have merged nothing yet')
    .option('--exact', 'fair share page by page from pagemap/kpageflags (root)')
    .option('--no-fair-share', 'skip the per-process fair share (ksm_stat figures only)')
    .option('--by <group>', 'also sum the saving per cgroup, unit, pod or container')
    .option('--json', 'print one TopJson document per refresh, one per line (NDJSON)')
    .addHelpText('after', '\nKeys: q, Esc or Ctrl-C quit. Without a terminal, refreshes are appended to stdout.')
    .action(async (_options, command: Command) => {
      await runTop(command.optsWithGlobals<TopOptions>());
    });
}
