#!/usr/bin/env node
// `npm run demo`: the flags are parsed and the demo run by dist/cli/demo/run.js
// (lib/cli/demo/run.ts), which the CLI's `demo` command shares.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
let demo;
try {
  demo = require('../dist/cli/demo/run.js');
} catch (error) {
  if (error.code !== 'MODULE_NOT_FOUND') throw error;
  console.error('node-ksm demo: dist/ is not built: run `npm run build:ts` (npm install does it)');
  process.exit(1);
}

let args;
try {
  args = demo.parseDemoArgs(process.argv.slice(2));
} catch (error) {
  console.error(`node-ksm demo: ${error.message}\n\n${demo.DEMO_USAGE}`);
  process.exit(2);
}
if (args.help) {
  process.stdout.write(demo.DEMO_USAGE);
  process.exit(0);
}

// With --json the progress goes to stderr and stdout holds the JSON alone.
const progress = args.json ? { write: (text) => process.stderr.write(text), isTTY: false } : process.stdout;
try {
  const result = await demo.runDemo(args.options, progress);
  if (args.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  process.exitCode = result.settled && result.intact ? 0 : 1;
} catch (error) {
  if (!demo.isExpectedDemoError(error)) throw error;
  if (error.name === 'AbortError') {
    process.exitCode = 130;
  } else {
    console.error(`node-ksm demo: ${error.message}`);
    process.exitCode = 1;
  }
}
