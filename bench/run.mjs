#!/usr/bin/env node
// `npm run bench`: runs every benchmark under bench/ and rewrites
// BENCHMARKS.md. Not part of the test suite (test/bench-smoke.test.ts runs a
// tiny --smoke pass of the harness only).
//
//   node bench/run.mjs [--quick | --smoke] [--only a,b] [--out FILE] [--json FILE]
//
//   --quick   a smaller matrix (a few minutes)
//   --smoke   tiny sizes, no global-knob windows: checks the harness works
//   --only    suites by id: efficiency, merge-time, enable-merge, peer,
//             alloc, thp, profit, estimate
//   --out     where to write the Markdown (default BENCHMARKS.md; '-' for none)
//   --json    also write every raw figure as JSON
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

import { joinKsm, knobsOverwritten, ksmAvailability, leaveKsm } from './lib/knobs.mjs';
import { machine, otherActivity } from './lib/machine.mjs';
import { render } from './lib/report.mjs';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    smoke: { type: 'boolean', default: false },
    only: { type: 'string' },
    out: { type: 'string', default: path.join(ROOT, 'BENCHMARKS.md') },
    json: { type: 'string' },
  },
});

const SUITES = ['efficiency', 'merge-time', 'enable-merge', 'peer', 'alloc', 'thp', 'external'];

async function main() {
  const availability = ksmAvailability();
  if (!availability.available) {
    console.error(`bench: cannot run: ${availability.reason}`);
    process.exit(2);
  }
  if (!fs.existsSync(path.join(ROOT, 'dist', 'index.js'))) {
    console.error('bench: dist/ is missing: run `npm run build` first');
    process.exit(2);
  }
  const only = values.only?.split(',').map((s) => s.trim()).filter(Boolean);
  const selected = SUITES.filter((id) => {
    if (!only) return true;
    if (id === 'external') return only.includes('profit') || only.includes('estimate') || only.includes('external');
    return only.includes(id);
  });
  if (only) {
    const unknown = only.filter((id) => !SUITES.includes(id) && id !== 'profit' && id !== 'estimate');
    if (unknown.length > 0) {
      console.error(`bench: unknown suite(s) ${unknown.join(', ')}; known: ${SUITES.join(', ')}, profit, estimate`);
      process.exit(2);
    }
  }

  const mode = values.smoke ? 'smoke' : values.quick ? 'quick' : 'full';
  const before = machine();
  const activity = [otherActivity()];
  let seedCounter = Math.floor(Math.random() * 200) + 20;
  const ctx = {
    root: ROOT,
    quick: values.quick,
    smoke: values.smoke,
    mode,
    only,
    // Different bytes per group: groups never merge with each other or with
    // anyone else's data.
    seed: () => (seedCounter = ((seedCounter + 37) % 230) + 20),
    timeoutMs: values.smoke ? 20_000 : 180_000,
    log: (line) => console.error(`bench: ${line}`),
  };

  const startedAt = new Date();
  const t0 = performance.now();
  joinKsm();
  const results = [];
  try {
    for (const id of selected) {
      const suite = await import(`./suites/${id}.mjs`);
      ctx.log(`-- ${suite.title}`);
      const t = performance.now();
      try {
        const result = await suite.run(ctx);
        results.push({ id, title: suite.title, seconds: (performance.now() - t) / 1000, ...result });
      } catch (error) {
        ctx.log(`${id} failed: ${error.stack ?? error}`);
        results.push({ id, title: suite.title, seconds: (performance.now() - t) / 1000, error: String(error.message ?? error), rows: [] });
      }
      activity.push(otherActivity());
    }
  } finally {
    leaveKsm();
  }
  const report = {
    mode,
    startedAt: startedAt.toISOString(),
    seconds: (performance.now() - t0) / 1000,
    machine: before,
    activity,
    knobsOverwritten: knobsOverwritten(),
    results,
  };
  if (values.out !== '-') {
    fs.writeFileSync(values.out, render(report));
    ctx.log(`wrote ${path.relative(process.cwd(), values.out) || values.out} (${report.seconds.toFixed(0)} s)`);
  }
  if (values.json) {
    fs.writeFileSync(values.json, JSON.stringify(report, (key, value) => (typeof value === 'bigint' ? value.toString() : value), 2));
  }
  const failed = results.filter((r) => r.error);
  process.exitCode = failed.length > 0 ? 1 : 0;
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
