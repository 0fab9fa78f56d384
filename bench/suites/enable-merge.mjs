// 3. enableMerge() on Node itself: what merging saves for N idle Node
// processes, and for N processes holding the same data in plain
// Buffer.alloc memory with nothing changed but enableMerge(), against
// allocMergeable for the same data.
import { PAGE, groupSaving, smaps, sysfsNumber, waitFullScans } from '../lib/kernel.mjs';
import { MiB, median, mib, pct, ratio, retryStopped, secs } from '../lib/stats.mjs';
import { knobsDuring, startGroup, trackMerge } from '../lib/workers.mjs';

export const id = 'enable-merge';
export const title = 'enableMerge() on Node itself';

function memory(pid) {
  const vmas = smaps(pid);
  return { rss: vmas.reduce((sum, vma) => sum + vma.rss, 0), anonymous: vmas.reduce((sum, vma) => sum + vma.anonymous, 0) };
}

async function idleGroup(ctx, n) {
  const group = await startGroup('node', n, { mode: 'idle', enableMerge: true });
  try {
    // Nothing tells when a whole runtime has settled: wait four full scans
    // (two to merge, two more for late pages).
    await waitFullScans(4, ctx.timeoutMs);
    const exact = groupSaving(group.workers.map((w) => ({ pid: w.pid })));
    const use = group.workers.map((w) => memory(w.pid));
    return {
      exact,
      rssBytes: use.reduce((sum, m) => sum + m.rss, 0),
      anonymousBytes: use.reduce((sum, m) => sum + m.anonymous, 0),
    };
  } finally {
    await group.stop();
  }
}

async function dataGroup(ctx, n, bytes, spec) {
  const group = await startGroup('node', n, { size: bytes, seed: ctx.seed(), ...spec });
  try {
    const track = await trackMerge(group, { timeoutMs: ctx.timeoutMs });
    // The rest of the runtime keeps merging after the data: two more scans.
    await waitFullScans(2, ctx.timeoutMs);
    const whole = groupSaving(group.workers.map((w) => ({ pid: w.pid })));
    const data = groupSaving(group.workers.map((w) => ({ pid: w.pid, start: w.start, end: w.end })));
    return { track, whole, data };
  } finally {
    await group.stop();
  }
}

export async function run(ctx) {
  const n = ctx.smoke ? 2 : ctx.quick ? 2 : 4;
  const sizeMiB = ctx.smoke ? 2 : ctx.quick ? 16 : 64;
  const repeats = ctx.smoke ? 1 : ctx.quick ? 2 : 3;
  const bytes = sizeMiB * MiB;
  const rows = [];

  const idle = [];
  for (let i = 0; i < repeats; i++) idle.push(await retryStopped(() => idleGroup(ctx, n)));
  const idleProfit = median(idle.map((r) => r.exact.profitBytes));
  const idleRss = median(idle.map((r) => r.rssBytes));
  const idleAnon = median(idle.map((r) => r.anonymousBytes));
  ctx.log(`enable-merge idle: saves ${mib(idleProfit / n)} per process of ${mib(idleRss / n)} RSS`);
  rows.push({
    figure: `N=${n} idle Node processes (HTTP server, enableMerge()): saved per process`,
    measured: `${mib(idleProfit / n)} (metadata deducted)`,
    comparedWith: `anonymous memory per process ${mib(idleAnon / n)} (RSS ${mib(idleRss / n)}, the rest is file-backed: code, shared with the page cache)`,
    ratio: `${pct(idleProfit / idleAnon)} of anon`,
    target: '',
    verdict: 'measured',
    notes: `rmap_items ${Math.round(median(idle.map((r) => r.exact.rmapItems)) / n)} per process ` +
      `(${mib(median(idle.map((r) => r.exact.rmapItems)) * 64 / n, 2)} of metadata); ` +
      `KSM pages ${median(idle.map((r) => r.exact.ksmPages))} mapped ${median(idle.map((r) => r.exact.ksmMappings))} times in the group. ` +
      `A page mapped many times is one content repeated inside a process (zero-filled pages, with use_zero_pages ${sysfsNumber('use_zero_pages')}).`,
  });

  const plain = [];
  const alloc = [];
  for (let i = 0; i < repeats; i++) {
    plain.push(await retryStopped(() => dataGroup(ctx, n, bytes, { mode: 'plain', enableMerge: true })));
    alloc.push(await retryStopped(() => dataGroup(ctx, n, bytes, { mode: 'alloc' })));
  }
  const m = (list, f) => median(list.map(f));
  const ideal = (n - 1) * bytes;
  const plainWhole = m(plain, (r) => r.whole.profitBytes);
  const allocWhole = m(alloc, (r) => r.whole.profitBytes);
  const plainData = m(plain, (r) => r.data.savedBytes);
  const allocData = m(alloc, (r) => r.data.savedBytes);
  const plainSettled = m(plain, (r) => r.track.settled);
  const allocSettled = m(alloc, (r) => r.track.settled);
  const plainRmap = m(plain, (r) => r.whole.rmapItems);
  const allocRmap = m(alloc, (r) => r.whole.rmapItems);
  ctx.log(`enable-merge data: plain+enableMerge ${mib(plainWhole)} settled ${secs(plainSettled)}; allocMergeable ${mib(allocWhole)} settled ${secs(allocSettled)}`);
  rows.push(
    {
      figure: `N=${n} x ${sizeMiB} MiB in Buffer.alloc + enableMerge(): data pages saved`,
      measured: `${mib(plainData)} (${pct(plainData / ideal)} of (N-1)xS)`,
      comparedWith: `allocMergeable: ${mib(allocData)} (${pct(allocData / ideal)})`,
      ratio: plainData / allocData,
      target: '',
      verdict: 'measured',
      notes: 'pages of the data buffers only, before metadata',
    },
    {
      figure: `N=${n} x ${sizeMiB} MiB in Buffer.alloc + enableMerge(): whole-group profit`,
      measured: `${mib(plainWhole)}`,
      comparedWith: `allocMergeable (only the buffer mergeable): ${mib(allocWhole)}`,
      ratio: plainWhole / allocWhole,
      target: '',
      verdict: 'measured',
      notes: `enableMerge() also merges the runtime's own pages, and pays for it: ${Math.round(plainRmap / n)} rmap_items per process ` +
        `against ${Math.round(allocRmap / n)} (${mib((plainRmap - allocRmap) * 64 / n, 2)} more metadata each, and ksmd scans ` +
        `${ratio(plainRmap / allocRmap)} the pages every pass)`,
    },
    {
      figure: `N=${n} x ${sizeMiB} MiB in Buffer.alloc + enableMerge(): data written -> data settled`,
      measured: secs(plainSettled),
      comparedWith: `allocMergeable: ${secs(allocSettled)}`,
      ratio: plainSettled / allocSettled,
      target: '',
      verdict: 'measured',
      notes: `${knobsDuring([...plain, ...alloc].map((r) => r.track))}; ratio above 1: enableMerge() takes longer, ksmd walks every anonymous page of every process`,
    },
  );
  return {
    rows,
    command: `npm run bench -- --only ${id}`,
    method: [
      'Idle: N `node` processes that call enableMerge() first thing and start an HTTP server; savings after four full scans, ' +
        'exact from the group\'s page tables (a KSM page mapped k times by the group saves k-1 pages), less 64 B per rmap_item. ' +
        `Data: N workers fill ${sizeMiB} MiB with the same bytes, once in Buffer.alloc memory with enableMerge() and once in allocMergeable ` +
        `Buffers, alternating, medians of ${repeats}. Page size ${PAGE} B.`,
    ],
  };
}
