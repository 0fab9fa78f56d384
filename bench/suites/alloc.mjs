// 5. Allocation: allocMergeable(size) against Buffer.alloc(size) and
// Buffer.allocUnsafe(size), 4 KiB .. 256 MiB, with and without first touch.
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';

import { readKnob } from '../lib/knobs.mjs';
import { MiB, fmt } from '../lib/stats.mjs';

export const id = 'alloc';
export const title = 'Allocation';

const run$ = promisify(execFile);
const KiB = 1024;

function sizeName(size) {
  return size >= MiB ? `${size / MiB} MiB` : `${size / KiB} KiB`;
}

function time(ns) {
  if (ns >= 1e6) return `${fmt(ns / 1e6, 2)} ms`;
  if (ns >= 1e3) return `${fmt(ns / 1e3, 1)} us`;
  return `${fmt(ns, 0)} ns`;
}

export async function run(ctx) {
  const sizes = ctx.smoke
    ? [4 * KiB, 1 * MiB]
    : ctx.quick
      ? [4 * KiB, 64 * KiB, 1 * MiB, 16 * MiB, 64 * MiB]
      : [4 * KiB, 16 * KiB, 64 * KiB, 256 * KiB, 1 * MiB, 4 * MiB, 16 * MiB, 64 * MiB, 256 * MiB];
  const samples = ctx.smoke ? 3 : ctx.quick ? 5 : 9;
  const spec = { sizes, samples, budgetBytes: ctx.smoke ? 8 * MiB : ctx.quick ? 256 * MiB : 1024 * MiB };
  const { stdout } = await run$(process.execPath, ['--expose-gc', path.join(ctx.root, 'bench', 'workers', 'alloc.cjs'), JSON.stringify(spec)], {
    maxBuffer: 16 * MiB,
  });
  const { results } = JSON.parse(stdout);
  const get = (size, variant, touch) => results.find((r) => r.size === size && r.variant === variant && r.touch === touch)?.nsPerAlloc;
  const rows = [];
  const table = [
    '| size | allocMergeable | Buffer.alloc | Buffer.allocUnsafe | mmap, no advice | ratio vs alloc | + first touch: allocMergeable | Buffer.alloc | Buffer.allocUnsafe | mmap, no advice | ratio vs alloc |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const size of sizes) {
    const cells = [sizeName(size)];
    for (const touch of [false, true]) {
      const m = get(size, 'allocMergeable', touch);
      const a = get(size, 'Buffer.alloc', touch);
      cells.push(time(m), time(a), time(get(size, 'Buffer.allocUnsafe', touch)), time(get(size, 'mmap, no advice', touch)), `${fmt(m / a, 2)}x`);
    }
    table.push(`| ${cells.join(' | ')} |`);
    const m = get(size, 'allocMergeable', true);
    const a = get(size, 'Buffer.alloc', true);
    const u = get(size, 'Buffer.allocUnsafe', true);
    const raw = get(size, 'mmap, no advice', true);
    const callRatio = get(size, 'allocMergeable', false) / get(size, 'Buffer.alloc', false);
    const within = m / a <= 1.1;
    rows.push({
      figure: `allocMergeable(${sizeName(size)}) + first touch`,
      measured: time(m),
      comparedWith: `Buffer.alloc ${time(a)}; allocUnsafe ${time(u)}`,
      ratio: m / a,
      target: size >= MiB ? '<= 1.1x of Buffer.alloc' : 'cost stated',
      verdict: size >= MiB ? (within ? 'met' : `missed: ${fmt(m / a, 2)}x > 1.1x`) : 'stated',
      notes: `call alone ${fmt(callRatio, 2)}x of Buffer.alloc (${time(get(size, 'allocMergeable', false))} vs ${time(get(size, 'Buffer.alloc', false))}); ` +
        `${fmt(m / raw, 2)}x the addon's own mmap without MADV_MERGEABLE, touched (${time(raw)}): what the advice adds`,
    });
    ctx.log(`alloc ${sizeName(size)}: touched ${fmt(m / a, 2)}x of Buffer.alloc, call ${fmt(callRatio, 2)}x, vs bare mmap ${fmt(m / raw, 2)}x`);
  }
  // What the table says about where the time goes, from this run's figures.
  const findings = [];
  const big = sizes.filter((size) => size >= 64 * MiB);
  const slowCalls = big.filter((size) => get(size, 'allocMergeable', false) / get(size, 'Buffer.alloc', false) > 2);
  if (slowCalls.length > 0) {
    const size = slowCalls[slowCalls.length - 1];
    findings.push(
      `- The call alone at ${slowCalls.map(sizeName).join(', ')}: allocMergeable ${time(get(size, 'allocMergeable', false))} against ` +
        `Buffer.alloc ${time(get(size, 'Buffer.alloc', false))}. The addon's mmap without any advice costs the same ` +
        `(${time(get(size, 'mmap, no advice', false))}), so it is not madvise: it is the Node-API external buffer reporting its size ` +
        "(`napi_adjust_external_memory`), which past V8's external-memory limit starts GC marking inside the call " +
        "(seen with `--trace-gc`); Buffer.alloc's backing store is accounted without that trigger. Once the pages are touched " +
        'the faults dominate and the difference is inside the noise.',
    );
  }
  const under = sizes.filter((size) => size < MiB);
  if (under.length > 0) {
    const size = under[0];
    findings.push(
      `- Under 1 MiB the fixed cost shows: ${sizeName(size)} costs ${time(get(size, 'allocMergeable', true))} touched against ` +
        `${time(get(size, 'Buffer.alloc', true))}: an mmap, an madvise and (later) a munmap and a finalizer per buffer, and fresh ` +
        'pages that fault, where Buffer.alloc reuses warm malloc memory. Each buffer is also rounded up to whole pages.',
    );
  }
  findings.push(
    "- Node-API finalizers (allocMergeable's munmap) run on a later turn of the event loop, not inside `gc()`: a synchronous " +
      'loop that allocates and drops mergeable buffers keeps every mapping until it yields (the bench yields between samples).',
  );
  return {
    rows,
    findings,
    command: `npm run bench -- --only ${id}`,
    method: [
      'One child process (`node --expose-gc bench/workers/alloc.cjs`); per size and variant, interleaved samples ' +
        `(${spec.budgetBytes / MiB} MiB worth per variant, at least ${samples}, at most 400; sizes under 256 KiB in batches of 256 KiB), ` +
        'median ns per allocation. ' +
        '"+ first touch" writes one byte per page after allocating: Buffer.alloc of a large size gets lazily zeroed ' +
        'pages from calloc/mmap too, so comparing the calls alone would compare two page-fault-free mmaps; what a ' +
        'caller pays before the memory is usable includes the faults. Freeing (GC, munmap) is outside the clock ' +
        `for every variant. ksmd was running (pages_to_scan ${readKnob('pages_to_scan')}, sleep ${readKnob('sleep_millisecs')} ms) ` +
        'and scans mergeable buffers as soon as they are touched, on the same two cores.',
      '',
      ...table,
    ],
  };
}
