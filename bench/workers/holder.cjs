// A bench worker: holds `size` bytes of data the same in every worker of a
// group, prints one JSON line when the data is written, exits on stdin EOF or
// an `exit` line. argv[2]: JSON {
//   mode: 'alloc' (allocMergeable) | 'plain' (Buffer.alloc) | 'idle' (no data),
//   size, seed, enableMerge?, noHugepage? (MADV_NOHUGEPAGE on the buffer) }
// Page i holds `seed` everywhere but its index at offsets 0 and 2048: pages
// differ inside a worker and match across workers of the same seed.
'use strict';
const path = require('node:path');
const readline = require('node:readline');

const root = path.join(__dirname, '..', '..');
const ksm = require(path.join(root, 'dist', 'index.js'));
// The addon itself, for viewRange and the NOHUGEPAGE advice (not public API).
const native = require('node-gyp-build')(root);

const spec = JSON.parse(process.argv[2] ?? '{}');
const PAGE = ksm.pageSize();

function fill(buffer, seed) {
  buffer.fill(seed & 0xff);
  for (let offset = 0, i = 0; offset + 2052 <= buffer.length; offset += PAGE, i++) {
    buffer.writeUInt32LE(i, offset);
    buffer.writeUInt32LE((i ^ 0x5a5a5a5a) >>> 0, offset + 2048);
  }
}

if (spec.enableMerge) ksm.enableMerge();
let buffer;
let server;
const t0 = performance.now();
if (spec.mode === 'idle') {
  // An idle service: the runtime, a listening HTTP server, nothing else.
  server = require('node:http').createServer((req, res) => res.end('ok')).listen(0, '127.0.0.1');
} else {
  buffer = spec.mode === 'plain' ? Buffer.alloc(spec.size) : ksm.allocMergeable(spec.size);
  if (spec.noHugepage) native.madvise(buffer, native.constants.MADV_NOHUGEPAGE);
  fill(buffer, spec.seed ?? 7);
}
const fillMs = performance.now() - t0;

function ready() {
  const out = { pid: process.pid, fillMs, mergeAny: ksm.isMergeEnabled() };
  if (buffer) {
    const view = native.viewRange(buffer);
    const page = BigInt(PAGE);
    // Whole pages of the buffer: what KSM can merge.
    out.start = (((view.address + page - 1n) / page) * page).toString();
    out.end = (((view.address + BigInt(view.length)) / page) * page).toString();
  }
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

const lines = readline.createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (line.trim() === 'exit') process.exit(0);
  if (line.trim() === 'touch' && buffer) {
    // Reads every page: keeps the data resident and unchanged.
    let sum = 0;
    for (let offset = 0; offset < buffer.length; offset += PAGE) sum += buffer[offset];
    process.stdout.write(`${JSON.stringify({ sum })}\n`);
  }
});
lines.on('close', () => process.exit(0));
if (server) server.on('listening', ready);
else ready();
