/**
 * `node-ksm demo` (also `npm run demo` in a clone): the quick start's main
 * job, run for real by runDemo() (run.ts).
 */
import { constants } from 'node:os';

import { Option, type Command } from 'commander';

import { pageSize } from '../../merge/buffers.js';
import type { DemoJson } from '../json.js';
import { UsageError, parseDuration, parseInteger, parseSize, printJson, type GlobalOptions } from '../output.js';
import { runDemo } from './run.js';
import type { DemoOptions } from './types.js';

interface DemoCliOptions extends GlobalOptions {
  workers?: string;
  size?: string;
  seed?: string;
  enableKsm?: boolean;
  interval?: string;
  timeout?: string;
}

const MAX_SIZE = 4 * 1024 ** 3;

function parseTableSize(text: string): number {
  const size = parseSize(text, '--size');
  let page: number | undefined;
  try {
    page = pageSize();
  } catch {
    page = undefined; // no KSM here: runDemo says so
  }
  if (page !== undefined && size < page) {
    throw new UsageError(`--size: ${size} bytes is less than a page (${page} bytes); a size without a unit is bytes (e.g. 8MiB)`);
  }
  if (size > MAX_SIZE) throw new UsageError(`--size: ${text} is more than 4GiB`);
  return size;
}

function shellWord(word: string): string {
  return /^[\w.,:=/@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** The command the user ran, to rerun it: `npm run demo -- ...` or `node-ksm demo ...`, minus the KSM switch. */
function rerunCommand(argv: string[]): string {
  const at = argv.indexOf('demo');
  const args = (at < 0 ? [] : argv.slice(at + 1)).filter((arg) => arg !== '--no-enable-ksm' && arg !== '--enable-ksm').map(shellWord);
  if (process.env.npm_lifecycle_event === 'demo') return ['npm run demo', ...(args.length > 0 ? ['--', ...args] : [])].join(' ');
  return ['node-ksm demo', ...args].join(' ');
}

export function demoOptions(o: DemoCliOptions, argv: string[] = process.argv): DemoOptions {
  if (o.root !== undefined && o.root !== '/') throw new UsageError('demo: --root does not apply (the demo runs real processes on this machine)');
  const options: DemoOptions = { enableKsm: o.enableKsm !== false, command: rerunCommand(argv) };
  if (o.workers !== undefined) options.workers = parseInteger(o.workers, '--workers', 2, 64);
  if (o.size !== undefined) options.size = parseTableSize(o.size);
  if (o.seed !== undefined) options.seed = parseInteger(o.seed, '--seed', 0, 4294967295);
  if (o.interval !== undefined) options.intervalMs = Math.round(parseDuration(o.interval, '--interval') * 1000);
  if (o.timeout !== undefined) options.timeoutMs = Math.round(parseDuration(o.timeout, '--timeout') * 1000);
  return options;
}

export async function runDemoCommand(o: DemoCliOptions): Promise<void> {
  const options = demoOptions(o);
  // With --json the live view goes to stderr and stdout carries one document.
  const output = o.json === true ? { write: (text: string) => process.stderr.write(text), isTTY: false } : process.stdout;
  try {
    const result = await runDemo(options, output);
    if (o.json === true) printJson({ kind: 'node-ksm/demo', version: 1, result } satisfies DemoJson);
    if (!(result.settled && result.intact)) process.exitCode = 1;
  } catch (error) {
    // Stopped by a signal: the demo said so, killed its workers and put the knobs back.
    if (error instanceof Error && error.name === 'AbortError') {
      const name = (error.cause as { signal?: NodeJS.Signals } | undefined)?.signal ?? 'SIGINT';
      process.exitCode = 128 + (constants.signals[name] ?? 2);
      return;
    }
    throw error;
  }
}

export function register(program: Command): void {
  program
    .command('demo')
    .description('start workers holding the same table in mergeable buffers and show what KSM saves')
    .option('-w, --workers <n>', 'worker processes (2 to 64; default 4)')
    .option('-s, --size <size>', 'table per worker, e.g. 8MiB, 512KiB, 1GiB (a bare number is bytes; default 64MiB)')
    .option('--seed <n>', 'salt of the table contents (default: random per run)')
    .option('--no-enable-ksm', 'where KSM is stopped, say what to run and exit instead of starting it for the demo')
    // Accepted for scripts written before starting KSM became the default.
    .addOption(new Option('--enable-ksm').hideHelp())
    .option('--interval <duration>', 'time between refreshes of the live view (default 1s)')
    .option('--timeout <duration>', 'give up waiting for KSM to settle after this long (default 600s)')
    .option('--json', 'print a DemoJson document { kind, version, result } (the live view goes to stderr)')
    .addHelpText(
      'after',
      `
As root, where KSM is stopped, the demo starts it with scan settings that settle in
seconds and puts every knob it changed back on exit, on error and on Ctrl-C.
Exit code 0 when merging settled and every worker kept its bytes, 1 otherwise,
128 + the signal's number when stopped by one (130 on Ctrl-C).`,
    )
    .action(async (_options, command: Command) => {
      await runDemoCommand(command.optsWithGlobals<DemoCliOptions>());
    });
}
