/** `node-ksm demo`: the quick start's main job, run for real (runDemo() of lib/demo.ts, shared with `npm run demo`). */
import type { Command } from 'commander';

import { isExpectedDemoError, parseSize, runDemo, type DemoOptions } from './run.js';
import type { DemoJson } from '../json.js';
import { parseDuration, parseInteger, printJson, type GlobalOptions } from '../output.js';

interface DemoCliOptions extends GlobalOptions {
  workers?: string;
  size?: string;
  seed?: string;
  enableKsm?: boolean;
  interval?: string;
  timeout?: string;
}

export async function runDemoCommand(o: DemoCliOptions): Promise<void> {
  const options: DemoOptions = {};
  if (o.workers !== undefined) options.workers = parseInteger(o.workers, '--workers', 2, 64);
  if (o.size !== undefined) options.size = parseSize(o.size);
  if (o.seed !== undefined) options.seed = parseInteger(o.seed, '--seed', 0, 4294967295);
  if (o.enableKsm === true) options.enableKsm = true;
  if (o.interval !== undefined) options.intervalMs = Math.round(parseDuration(o.interval, '--interval') * 1000);
  if (o.timeout !== undefined) options.timeoutMs = Math.round(parseDuration(o.timeout, '--timeout') * 1000);
  // With --json the live view goes to stderr and stdout carries one document.
  const output = o.json === true ? { write: (text: string) => process.stderr.write(text), isTTY: false } : process.stdout;
  try {
    const result = await runDemo(options, output);
    if (o.json === true) printJson({ kind: 'node-ksm/demo', version: 1, result } satisfies DemoJson);
    if (!(result.settled && result.intact)) process.exitCode = 1;
  } catch (error) {
    // Ctrl-C: the demo killed its workers and restored the knobs already.
    if (isExpectedDemoError(error) && (error as Error).name === 'AbortError') {
      process.exitCode = 130;
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
    .option('-s, --size <size>', 'table per worker: MiB, or with a K/M/G suffix (default 64)')
    .option('--seed <n>', 'salt of the table contents (default: random per run)')
    .option('--enable-ksm', 'where KSM is off and you are root: start it for the demo and restore every knob on exit')
    .option('--interval <duration>', 'time between refreshes of the live view (default 1s)')
    .option('--timeout <duration>', 'give up waiting for KSM to settle after this long (default 600s)')
    .option('--json', 'print a DemoJson document { kind, version, result } (the live view goes to stderr)')
    .addHelpText('after', '\nExit code 0 when merging settled and every worker kept its bytes, 1 otherwise, 130 on Ctrl-C.')
    .action(async (_options, command: Command) => {
      await runDemoCommand(command.optsWithGlobals<DemoCliOptions>());
    });
}
