// The selftest's `ksm_tests -C` method through node-ksm: 4000 pages
// (allocMergeable), one byte written into every other page when none is
// merged, then the same after pairs of identical pages merged: each write
// is then a copy-on-write break of a KSM page. Also ksmd's CPU time from the
// pairs written to merged. Prints one JSON line.
const fs = require('node:fs');
const ksm = require('../../dist/index.js');

const PAGES = 4000;
const page = ksm.pageSize();
const buffer = ksm.allocMergeable(PAGES * page, { label: 'cow' });

const cowKsm = () => Number(/\ncow_ksm (\d+)/.exec(fs.readFileSync('/proc/vmstat', 'utf8'))[1]);
const ksmdCpuNs = (pid) => Number(fs.readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]);
const mergingPages = () => Number(/ksm_merging_pages (\d+)/.exec(fs.readFileSync('/proc/self/ksm_stat', 'utf8'))[1]);

/** One byte into every other page, timed (ns per page written). */
function writeEveryOther(value) {
  const start = process.hrtime.bigint();
  for (let i = 0; i < PAGES - 1; i += 2) buffer[i * page] = value;
  return Number(process.hrtime.bigint() - start) / (PAGES / 2);
}

async function main() {
  const ksmd = Number(process.argv[2]);
  // Not merged: every page distinct and present.
  for (let i = 0; i < PAGES; i++) {
    buffer.fill(i & 0xff, i * page, (i + 1) * page);
    buffer.writeUInt32LE(i, i * page + 8);
  }
  const plainNs = writeEveryOther(0x2d);
  // Pairs: page i and i+1 identical, distinct from every other pair.
  for (let i = 0; i < PAGES - 1; i += 2) {
    buffer.fill((i >> 1) & 0xff, i * page, (i + 2) * page);
    buffer.writeUInt32LE(i, i * page + 8);
    buffer.writeUInt32LE(i, (i + 1) * page + 8);
  }
  const cpuBefore = ksmdCpuNs(ksmd);
  const t0 = performance.now();
  while (mergingPages() < PAGES * 0.98) {
    if (performance.now() - t0 > 120_000) throw new Error(`only ${mergingPages()} of ${PAGES} pages merged`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const mergeMs = performance.now() - t0;
  const cpuNs = ksmdCpuNs(ksmd) - cpuBefore;
  const merged = mergingPages();
  const breaksBefore = cowKsm();
  const cowNs = writeEveryOther(0x2d);
  const breaks = cowKsm() - breaksBefore;
  process.stdout.write(`${JSON.stringify({ plainNs, cowNs, breaks, written: PAGES / 2, mergeMs, ksmdCpuNs: cpuNs, mergedBytes: merged * page })}\n`);
}
main().catch((error) => {
  console.error(error);
  process.exit(1);
});
