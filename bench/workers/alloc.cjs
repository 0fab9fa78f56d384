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
let kept = [];
let keptBytes = 0;
// Garbage is collected outside the clock, once enough is held. Node-API
// finalizers (allocMergeable's munmap) run on the next turn of the event
// loop, not inside gc(): without the turn, a synchronous loop would keep
// every mapping it ever made.
async function release(force) {
  if (force || keptBytes >= 64 * 1024 * 1024 || kept.length >= 4096) {
    sink += kept.length;
    kept = [];
    keptBytes = 0;
    global.gc();
    await new Promise(setImmediate);
  }
}

async function sample(make, size, iterations, withTouch) {
  const batch = new Array(iterations);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) {
    const buffer = make(size);
    if (withTouch) touch(buffer);
    batch[i] = buffer;
  }
  const ns = Number(process.hrtime.bigint() - t0);
  kept.push(batch);
  keptBytes += size * iterations;
  await release(false);
  return ns / iterations;
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

async function main() {
  const results = [];
  for (const size of sizes) {
    // Small sizes in batches of >= 256 KiB (well above the clock's
    // resolution); from 256 KiB up, one allocation per sample. Many samples:
    // on a shared two-core machine the tail is long and the median is what
    // holds still.
    const iterations = Math.max(1, Math.floor((256 * 1024) / size));
    const count = Math.max(samples, Math.min(400, Math.floor(budgetBytes / (iterations * size))));
    for (const withTouch of [false, true]) {
      const times = Object.fromEntries(Object.keys(variants).map((name) => [name, []]));
      for (const make of Object.values(variants)) await sample(make, size, iterations, withTouch);
      await release(true);
      for (let s = 0; s < count; s++) {
        // Interleaved, so drift and other people's load hit every variant alike.
        for (const [name, make] of Object.entries(variants)) times[name].push(await sample(make, size, iterations, withTouch));
      }
      await release(true);
      for (const [name, list] of Object.entries(times)) {
        results.push({ size, variant: name, touch: withTouch, iterations, samples: count, nsPerAlloc: median(list) });
      }
    }
  }
  process.stdout.write(`${JSON.stringify({ results, sink })}\n`);
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
