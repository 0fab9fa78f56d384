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
//             alloc, thp, costs, node-workloads, profit, scrape, estimate,
//             estimate-synthetic, v8-heap
//   --out     where to write the Markdown (default BENCHMARKS.md; '-' for none)
//   --json    also write every raw figure as JSON
//   --render  run nothing: redraw BENCHMARKS.md from bench/results.json
//             (suites that export findings(raw) redraw their tables)
//
// BENCHMARKS.md is rendered from bench/results.json, kept beside it: a run
// with --only replaces the sections it ran and keeps the others.
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
    render: { type: 'boolean', default: false },
  },
});

const DEFAULT_OUT = path.join(ROOT, 'BENCHMARKS.md');
const RESULTS = path.join(ROOT, 'bench', 'results.json');
const toJson = (value) => JSON.stringify(value, (key, v) => (typeof v === 'bigint' ? v.toString() : v), 2);

/** The previous full report, when this run only redoes some of its sections. */
function previous(mode) {
  try {
    const report = JSON.parse(fs.readFileSync(RESULTS, 'utf8'));
    return report.mode === mode ? report : undefined;
  } catch {
    return undefined;
  }
}

const SUITES = ['efficiency', 'merge-time', 'enable-merge', 'peer', 'alloc', 'thp', 'costs', 'node-workloads', 'external', 'v8-heap'];

/** --render: the last run's figures, tables redrawn by the suites' current code. */
async function rerender() {
  const report = JSON.parse(fs.readFileSync(RESULTS, 'utf8'));
  for (const result of report.results) {
    const suite = await import(`./suites/${result.id}.mjs`);
    if (typeof suite.findings === 'function' && result.raw) result.findings = suite.findings(result.raw);
  }
  fs.writeFileSync(values.out, render(report));
  if (path.resolve(values.out) === DEFAULT_OUT) fs.writeFileSync(RESULTS, `${toJson(report)}\n`);
  console.error(`bench: redrew ${path.relative(process.cwd(), values.out) || values.out} from ${path.relative(process.cwd(), RESULTS)}`);
}

async function main() {
  if (values.render) return rerender();
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
  /** The scripts bench/suites/external.mjs runs, selectable by name. */
  const EXTERNAL = ['profit', 'scrape', 'estimate', 'estimate-synthetic'];
  const selected = SUITES.filter((id) => {
    if (!only) return true;
    if (id === 'external') return EXTERNAL.some((name) => only.includes(name)) || only.includes('external');
    return only.includes(id);
  });
  if (only) {
    const unknown = only.filter((id) => !SUITES.includes(id) && !EXTERNAL.includes(id));
    if (unknown.length > 0) {
      console.error(`bench: unknown suite(s) ${unknown.join(', ')}; known: ${[...SUITES, ...EXTERNAL].join(', ')}`);
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
        results.push({ id, title: suite.title, startedAt: startedAt.toISOString(), seconds: (performance.now() - t) / 1000, ...result });
      } catch (error) {
        ctx.log(`${id} failed: ${error.stack ?? error}`);
        results.push({ id, title: suite.title, startedAt: startedAt.toISOString(), seconds: (performance.now() - t) / 1000, error: String(error.message ?? error), rows: [] });
      }
      activity.push(otherActivity());
    }
  } finally {
    leaveKsm();
  }
  let report = {
    mode,
    startedAt: startedAt.toISOString(),
    seconds: (performance.now() - t0) / 1000,
    machine: before,
    activity,
    knobsOverwritten: knobsOverwritten(),
    results,
  };
  if (values.json) fs.writeFileSync(values.json, toJson(report));
  if (values.out !== '-') {
    const shared = path.resolve(values.out) === DEFAULT_OUT;
    const earlier = shared && only ? previous(mode) : undefined;
    if (earlier) {
      // Sections this run did not redo stay as the earlier run left them.
      const mine = new Set(results.map((r) => r.id));
      report = {
        ...earlier,
        activity: [...earlier.activity, ...activity],
        knobsOverwritten: (earlier.knobsOverwritten ?? 0) + report.knobsOverwritten,
        results: SUITES.map((id) => (mine.has(id) ? results.find((r) => r.id === id) : earlier.results.find((r) => r.id === id))).filter(Boolean),
      };
    }
    fs.writeFileSync(values.out, render(report));
    // The figures behind BENCHMARKS.md, without each run's raw samples.
    if (shared) fs.writeFileSync(RESULTS, `${toJson({ ...report, results: report.results.map((r) => ({ ...r, rows: r.rows.map(({ raw: _raw, ...row }) => row) })) })}\n`);
    ctx.log(`wrote ${path.relative(process.cwd(), values.out) || values.out} (${Math.round((performance.now() - t0) / 1000)} s)`);
  }
  const failed = results.filter((r) => r.error);
  process.exitCode = failed.length > 0 ? 1 : 0;
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
