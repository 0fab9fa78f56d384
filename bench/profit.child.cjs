// Holds memory for bench/profit.mjs. argv[2]: JSON
//   { vmas: n }       n VMAs of 4 touched pages, every other one MADV_MERGEABLE
//                     (alternating flags stop the kernel merging neighbours)
//   { bytes: n, seed } one mergeable buffer of n bytes, page i = f(seed, i)
//   { spread: n }     n mappings of 4 pages, all MADV_MERGEABLE, every other
//                     one MADV_NOHUGEPAGE too and each followed by an
//                     unmergeable page (kept apart: merged memory spread
//                     over many VMAs, as enableMerge() leaves a service);
//                     page p of mapping i = f(i, p), the same in every child
'use strict';
const path = require('node:path');
const ksm = require('../dist/index.js');
const native = require('node-gyp-build')(path.join(__dirname, '..'));

const spec = JSON.parse(process.argv[2]);
const PAGE = ksm.pageSize();
const held = [];
if (spec.vmas) {
  for (let i = 0; i < spec.vmas; i++) {
    const buffer = native.alloc(4 * PAGE, i % 2 ? [native.constants.MADV_MERGEABLE] : []);
    for (let p = 0; p < 4; p++) buffer.writeUInt32LE(i * 4 + p + 1, p * PAGE);
    held.push(buffer);
  }
}
if (spec.spread) {
  for (let i = 0; i < spec.spread; i++) {
    const advice = i % 2 ? [native.constants.MADV_MERGEABLE, native.constants.MADV_NOHUGEPAGE] : [native.constants.MADV_MERGEABLE];
    const buffer = native.alloc(4 * PAGE, advice);
    for (let p = 0; p < 4; p++) {
      buffer.fill((i * 4 + p) & 0xff, p * PAGE, (p + 1) * PAGE);
      buffer.writeUInt32LE(i * 4 + p + 1, p * PAGE);
    }
    held.push(buffer, native.alloc(PAGE, []));
  }
}
if (spec.bytes) {
  const buffer = ksm.allocMergeable(spec.bytes, { label: 'bench' });
  for (let offset = 0, i = 0; offset < buffer.length; offset += PAGE, i++) {
    buffer.fill(i & 0xff, offset, offset + PAGE);
    buffer.writeUInt32LE(i, offset);
    buffer.writeUInt32LE(spec.seed, offset + 8);
  }
  held.push(buffer);
}
globalThis.held = held;
process.send({ pid: process.pid });
process.on('message', () => process.exit(0));
