#!/usr/bin/env node
/**
 * node-ksm: see, tune and export Linux KSM for a machine of Node services.
 * One file per command in this directory; this one wires them to commander.
 */
import { Command, CommanderError, Option } from 'commander';

import { register as registerDemo } from './demo/index.js';
import { register as registerDoctor } from './doctor.js';
import { register as registerEstimate } from './estimate.js';
import { register as registerExporter } from './exporter.js';
import { reportError, type GlobalOptions } from './output.js';
import { register as registerRegions } from './regions.js';
import { register as registerStatus } from './status.js';
import { register as registerTop } from './top.js';
import { register as registerTune } from './tune.js';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { version } = require('../../package.json') as { version: string };

export function buildProgram(): Command {
  const program = new Command('node-ksm')
    .description('See, tune and export Linux Kernel Samepage Merging (KSM) for a machine of Node.js services.')
    .version(version, '-V, --version')
    .addOption(new Option('--root <dir>', 'read /proc and /sys under this directory (fixture trees)').default('/', '/'))
    .option('--no-color', 'no colours (also: NO_COLOR=1, or when stdout is not a terminal)')
    .showHelpAfterError('(add --help for usage)')
    .exitOverride();
  program.addHelpText(
    'after',
    `
Every command takes --json (a documented, versioned shape: see the README).
Errors go to stderr; the exit code is 1 on failure (doctor: on any error finding), 2 on bad usage.`,
  );
  for (const register of [registerStatus, registerTop, registerRegions, registerDoctor, registerEstimate, registerTune, registerExporter, registerDemo]) {
    register(program);
  }
  return program;
}

export async function main(argv: string[] = process.argv): Promise<void> {
  // `node-ksm top --json | head`: a closed pipe ends the command quietly.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(0);
    throw error;
  });
  const program = buildProgram();
  const json = argv.includes('--json');
  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      // commander printed the message (or help / version) already.
      const ok = error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help';
      process.exitCode = ok ? 0 : 2;
      return;
    }
    const globals = program.opts<GlobalOptions>();
    reportError(error, { ...globals, json });
  }
}

if (require.main === module) void main();
