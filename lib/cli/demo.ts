/** `node-ksm demo`: the quick start's main job, run for real (lib/demo.ts, packaging). */
import type { Command } from 'commander';

import { hasDemo, missingModule, runDemo } from '../adapters.js';
import { parseInteger, parseSize, type GlobalOptions } from './output.js';

interface DemoOptions extends GlobalOptions {
  workers?: string;
  size?: string;
}

export async function runDemoCommand(o: DemoOptions): Promise<void> {
  if (!hasDemo()) throw missingModule('demo (lib/demo.ts)', 6);
  const options: Record<string, unknown> = {};
  if (o.workers !== undefined) options.workers = parseInteger(o.workers, '--workers', 2, 64);
  if (o.size !== undefined) options.sizeBytes = parseSize(o.size, '--size');
  if (o.json === true) options.json = true;
  await runDemo(options, process.stdout);
}

export function register(program: Command): void {
  program
    .command('demo')
    .description('start workers holding the same data in mergeable buffers and show what KSM saves')
    .option('--workers <n>', 'worker processes')
    .option('--size <size>', 'bytes each worker holds (e.g. 64MiB)')
    .option('--json', 'print the demo result as JSON')
    .action(async (_options, command: Command) => {
      await runDemoCommand(command.optsWithGlobals<DemoOptions>());
    });
}
