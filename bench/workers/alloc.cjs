// Allocation cost: allocMergeable(size) against Buffer.alloc(size) and
// Buffer.allocUnsafe(size) (and the addon's mmap without advice), each alone ("call") and followed by one write per
// page ("+ first touch": what a caller pays before the memory is usable, and
// where a lazily zeroed mapping pays its page faults). Run with --expose-gc:
// garbage is collected between samples, outside the clock, so each sample
// pays for its own allocations and nobody else's finalizers.
// argv[2]: JSON { sizes: number[], samples: number, budgetBytes: number }
// Prints one JSON line: { results: [{ size, variant, touch, nsPerAlloc }] }.
'use strict';
const path = require('node:path');

const root = path.join(__dirname, '..', '..');
const ksm = require(path.join(root, 'dist', 'index.js'));
// The addon's own mmap with no advice: separates the mapping path from what
// MADV_MERGEABLE (and ksmd scanning the pages) adds. Not public API.
const native = require('node-gyp-build')(root);

const { sizes, samples, budgetBytes } = JSON.parse(process.argv[2]);
const PAGE = ksm.pageSize();
const variants = {
  allocMergeable: (size) => ksm.allocMergeable(size),
  'Buffer.alloc': (size) => Buffer.alloc(size),
  'Buffer.allocUnsafe': (size) => Buffer.allocUnsafe(size),
  'mmap, no advice': (size) => native.alloc(size, []),
};

function touch(buffer) {
  for (let offset = 0; offset < buffer.length; offset += PAGE) buffer[offset] = 1;
}

let sink = 0;
function sample(make, size, iterations, withTouch) {
  const kept = new Array(iterations);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) {
    const buffer = make(size);
    if (withTouch) touch(buffer);
    kept[i] = buffer;
  }
  const ns = Number(process.hrtime.bigint() - t0);
  sink += kept[iterations - 1].length;
  return ns / iterations;
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

const results = [];
for (const size of sizes) {
  // Enough allocations per sample to be well above the clock's resolution,
  // few enough that a sample's garbage stays small.
  const iterations = Math.max(1, Math.min(2000, Math.floor(budgetBytes / size)));
  for (const withTouch of [false, true]) {
    const times = Object.fromEntries(Object.keys(variants).map((name) => [name, []]));
    // Warm-up, then interleaved samples so drift hits every variant alike.
    for (const make of Object.values(variants)) sample(make, size, Math.min(iterations, 10), withTouch);
    global.gc();
    for (let s = 0; s < samples; s++) {
      for (const [name, make] of Object.entries(variants)) {
        times[name].push(sample(make, size, iterations, withTouch));
        global.gc();
      }
    }
    for (const [name, list] of Object.entries(times)) {
      results.push({ size, variant: name, touch: withTouch, iterations, nsPerAlloc: median(list) });
    }
  }
}
process.stdout.write(`${JSON.stringify({ results, sink })}\n`);
