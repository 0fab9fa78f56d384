// The selftest's merge-time method (see merge-time.c) through node-ksm: the
// same SIZE MiB of '*', marked with markMergeable() (which also verifies the
// mark in /proc/self/smaps), then two full scans; speed = SIZE / elapsed.
// usage: node merge-time.cjs SIZE_MIB TIMEOUT_SEC  ->  one JSON line
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..', '..');
const ksm = require(path.join(root, 'dist', 'index.js'));
// An unmarked page-aligned mapping, like the selftest's mmap (not public API).
const native = require('node-gyp-build')(root);

const sizeMiB = Number(process.argv[2]);
const timeoutSec = Number(process.argv[3]);
const fullScans = () => Number(fs.readFileSync('/sys/kernel/mm/ksm/full_scans', 'utf8'));

const area = native.alloc(sizeMiB * 1024 * 1024, []);
area.fill('*');

const start = performance.now();
ksm.markMergeable(area);
const first = fullScans();
let ok = true;
// Busy-polls like the selftest, so neither side gains from a sleep granularity.
while (fullScans() < first + 2) {
  if (performance.now() - start > timeoutSec * 1000) {
    ok = false;
    break;
  }
}
const seconds = (performance.now() - start) / 1000;
process.stdout.write(`${JSON.stringify({ sizeMiB, seconds, mibPerSec: sizeMiB / seconds, ok })}\n`);
process.exitCode = ok ? 0 : 1;
