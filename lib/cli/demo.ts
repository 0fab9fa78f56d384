/** `node-ksm demo`: the quick start's main job, run for real (runDemo() of lib/demo.ts). */
import type { Command } from 'commander';

import { hasDemo, missingModule, runDemo } from '../adapters.js';
import { parseDuration, parseInteger, parseSize, printJson, type GlobalOptions } from './output.js';

interface DemoCliOptions extends GlobalOptions {
  workers?: string;
  size?: string;
  seed?: string;
  enableKsm?: boolean;
  interval?: string;
  timeout?: string;
}

export async function runDemoCommand(o: DemoCliOptions): Promise<void> {
  if (!hasDemo()) throw missingModule('demo (lib/demo.ts)', 6);
  const options: Record<string, unknown> = {};
  if (o.workers !== undefined) options.workers = parseInteger(o.workers, '--workers', 2, 64);
  if (o.size !== undefined) options.size = parseSize(o.size, '--size');
  if (o.seed !== undefined) options.seed = parseInteger(o.seed, '--seed', 0, 4294967295);
  if (o.enableKsm === true) options.enableKsm = true;
  if (o.interval !== undefined) options.intervalMs = parseDuration(o.interval, '--interval') * 1000;
  if (o.timeout !== undefined) options.timeoutMs = parseDuration(o.timeout, '--timeout') * 1000;
  // With --json the live view goes to stderr and stdout carries one document.
  const output = o.json === true ? { write: (text: string) => process.stderr.write(text), isTTY: process.stderr.isTTY === true } : process.stdout;
  const result = await runDemo(options, output);
  if (o.json === true) printJson({ kind: 'node-ksm/demo', version: 1, result });
}

export function register(program: Command): void {
  program
    .command('demo')
    .description('start workers holding the same table in mergeable buffers and show what KSM saves')
    .option('--workers <n>', 'worker processes (2 to 64; default 4)')
    .option('--size <size>', 'bytes each worker holds (e.g. 64MiB, the default)')
    .option('--seed <n>', 'salt of the table contents (default: random)')
    .option('--enable-ksm', 'as root, start KSM with fast scan settings for the demo and restore the knobs after')
    .option('--interval <duration>', 'refresh period of the live view (default 1s)')
    .option('--timeout <duration>', 'give up waiting for KSM to settle after this long (default 10m)')
    .option('--json', 'print { kind: "node-ksm/demo", version: 1, result } (the live view goes to stderr)')
    .action(async (_options, command: Command) => {
      await runDemoCommand(command.optsWithGlobals<DemoCliOptions>());
    });
}
