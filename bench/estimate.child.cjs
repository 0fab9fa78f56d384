// A worker holding memory of a known layout for bench/estimate.mjs (IPC driven).
// argv[2]: JSON { pages, sharedSeed, zero, volatile, everyMs }: the first
// `pages / 2` pages match across workers given the same seed, then `zero`
// zero pages, `volatile` pages rewritten every `everyMs`, the rest unique.
'use strict';
const crypto = require('node:crypto');
const path = require('node:path');
const ksm = require('../dist/index.js');
const native = require('node-gyp-build')(path.join(__dirname, '..'));

const spec = JSON.parse(process.argv[2]);
const PAGE = ksm.pageSize();
const buffer = native.alloc(spec.pages * PAGE, [native.constants.MADV_NOHUGEPAGE]);
const shared = Math.floor(spec.pages / 2);
for (let i = 0; i < shared; i++) {
  const digest = crypto.createHash('sha256').update(`bench ${spec.sharedSeed}:${i}`).digest();
  buffer.fill(digest, i * PAGE, (i + 1) * PAGE);
}
let page = shared;
for (let i = 0; i < spec.zero; i++, page++) buffer[page * PAGE] = 0;
const volatileStart = page;
page += spec.volatile;
crypto.randomFillSync(buffer, page * PAGE);
let counter = 0;
function rewrite() {
  counter++;
  for (let p = volatileStart; p < volatileStart + spec.volatile; p++) {
    buffer.fill(counter & 0xff, p * PAGE, (p + 1) * PAGE);
    buffer.writeUInt32LE(process.pid, p * PAGE);
    buffer.writeUInt32LE(counter, p * PAGE + 4);
  }
}
if (spec.volatile > 0) {
  rewrite();
  setInterval(rewrite, spec.everyMs);
}
const { address } = native.viewRange(buffer);
process.on('message', (message) => {
  if (message.cmd === 'enableMerge') {
    ksm.enableMerge();
    process.send({ ok: true });
  }
});
process.send({ pid: process.pid, start: address, end: address + BigInt(spec.pages * PAGE) });
