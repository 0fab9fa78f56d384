// The kernel's own accounting, read raw: sysfs counters, ksm_stat, smaps,
// and (as root) pagemap + kpageflags for exact per-group savings that other
// people's KSM users on this machine cannot move.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { KSM } from './knobs.mjs';

export const PAGE = 4096;
/** rmap_item on 64-bit: the kernel's metadata per scanned page. */
export const RMAP_ITEM_BYTES = 64;
const KPF_KSM = 21n;
const PM_PRESENT = 1n << 63n;
const PFN_MASK = (1n << 55n) - 1n;

export function sysfsNumber(name) {
  return Number(fs.readFileSync(path.join(KSM, name), 'utf8').trim());
}

const CLK_TCK = 100; // USER_HZ: what /proc/PID/stat counts in on Linux

/** ksmd's pid: the kernel thread named ksmd (found once). */
let ksmdPid;
function findKsmd() {
  if (ksmdPid !== undefined) return ksmdPid;
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (fs.readFileSync(`/proc/${name}/comm`, 'utf8').trim() === 'ksmd') return (ksmdPid = Number(name));
    } catch {
      /* gone */
    }
  }
  return (ksmdPid = null);
}

/**
 * The machine-wide price of KSM now: `cow_ksm` of /proc/vmstat (write faults
 * that broke a KSM page), ksmd's CPU time (utime + stime of its
 * /proc/PID/stat), and ksmd's full scans. Deltas between two readings are
 * what a window cost, for everyone on the machine.
 */
export function kernelCost() {
  const vmstat = fs.readFileSync('/proc/vmstat', 'utf8');
  const cowKsm = Number(/^cow_ksm (\d+)$/m.exec(vmstat)?.[1] ?? NaN);
  let ksmdCpuMs = NaN;
  const pid = findKsmd();
  if (pid !== null) {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 of stat (utime, stime); fields[0] is field 3.
    ksmdCpuMs = ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
  }
  return { cowKsm, ksmdCpuMs, fullScans: sysfsNumber('full_scans'), at: performance.now() };
}

/** b - a of two kernelCost() readings. */
export function costDelta(a, b) {
  return { cowKsm: b.cowKsm - a.cowKsm, ksmdCpuMs: b.ksmdCpuMs - a.ksmdCpuMs, fullScans: b.fullScans - a.fullScans, wallMs: b.at - a.at };
}

/** /proc/PID/ksm_stat: key -> number (or 'yes'/'no'). */
export function ksmStat(pid) {
  const out = {};
  for (const line of fs.readFileSync(`/proc/${pid}/ksm_stat`, 'utf8').split('\n')) {
    const match = /^(\w+):?\s+(\S+)$/.exec(line.trim());
    if (match) out[match[1]] = /^-?\d+$/.test(match[2]) ? Number(match[2]) : match[2];
  }
  return out;
}

/** VMAs of /proc/PID/smaps with the fields the bench needs (bytes). */
export function smaps(pid) {
  const vmas = [];
  let vma;
  for (const line of fs.readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const header = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (header) {
      vma = { start: BigInt(`0x${header[1]}`), end: BigInt(`0x${header[2]}`), perms: header[3], pathname: header[4], rss: 0, anonymous: 0, ksm: 0, anonHuge: 0, flags: [] };
      vmas.push(vma);
      continue;
    }
    if (!vma) continue;
    const field = /^(\w+):\s+(\d+) kB/.exec(line);
    if (field) {
      const bytes = Number(field[2]) * 1024;
      if (field[1] === 'Rss') vma.rss = bytes;
      else if (field[1] === 'Anonymous') vma.anonymous = bytes;
      else if (field[1] === 'KSM') vma.ksm = bytes;
      else if (field[1] === 'AnonHugePages') vma.anonHuge = bytes;
    } else if (line.startsWith('VmFlags:')) {
      vma.flags = line.slice(8).trim().split(/\s+/);
    }
  }
  return vmas;
}

/**
 * KSM, Rss and AnonHugePages bytes of the VMAs overlapping [start, end), each
 * VMA counted at most for its overlap (a VMA may be larger than the range).
 */
export function smapsRange(pid, start, end) {
  const out = { ksm: 0, rss: 0, anonHuge: 0, mergeable: true };
  for (const vma of smaps(pid)) {
    if (vma.end <= start || vma.start >= end) continue;
    const lo = vma.start > start ? vma.start : start;
    const hi = vma.end < end ? vma.end : end;
    const overlap = Number(hi - lo);
    out.ksm += Math.min(vma.ksm, overlap);
    out.rss += Math.min(vma.rss, overlap);
    out.anonHuge += Math.min(vma.anonHuge, overlap);
    if (!vma.flags.includes('mg')) out.mergeable = false;
  }
  return out;
}

/** Present PFNs of [start, end) in /proc/PID/pagemap (root sees real PFNs). */
function presentPfns(fd, start, end, into) {
  const CHUNK = 1 << 16; // entries per read
  const last = Number(end / BigInt(PAGE));
  for (let page = Number(start / BigInt(PAGE)); page < last; page += CHUNK) {
    const count = Math.min(CHUNK, last - page);
    const buffer = Buffer.alloc(count * 8);
    const got = fs.readSync(fd, buffer, 0, buffer.length, page * 8);
    for (let i = 0; i < got / 8; i++) {
      const entry = buffer.readBigUInt64LE(i * 8);
      if (entry & PM_PRESENT) into.push(entry & PFN_MASK);
    }
  }
}

/**
 * What KSM saves for this group of processes, exactly, from the page tables:
 * a KSM page mapped k times by the group saves k-1 pages; metadata costs 64 B
 * per rmap_item of the group. The kernel's general_profit formula, restricted
 * to our processes, so concurrent KSM users elsewhere do not move it.
 *
 * @param members [{ pid, start?, end? }]: a range, or every VMA with KSM pages.
 */
export function groupSaving(members) {
  const counts = new Map();
  let rmapItems = 0;
  let zeroPages = 0;
  for (const member of members) {
    const stat = ksmStat(member.pid);
    rmapItems += stat.ksm_rmap_items ?? 0;
    zeroPages += stat.ksm_zero_pages ?? 0;
    const ranges = member.start !== undefined
      ? [[member.start, member.end]]
      : smaps(member.pid).filter((vma) => vma.ksm > 0).map((vma) => [vma.start, vma.end]);
    const pfns = [];
    const fd = fs.openSync(`/proc/${member.pid}/pagemap`, 'r');
    try {
      for (const [start, end] of ranges) presentPfns(fd, start, end, pfns);
    } finally {
      fs.closeSync(fd);
    }
    for (const pfn of pfns) counts.set(pfn, (counts.get(pfn) ?? 0) + 1);
  }
  // Only the distinct PFNs need their flags: one 8-byte read each.
  const flags = fs.openSync('/proc/kpageflags', 'r');
  const word = Buffer.alloc(8);
  let mapped = 0;
  let distinct = 0;
  try {
    for (const [pfn, count] of counts) {
      fs.readSync(flags, word, 0, 8, Number(pfn * 8n));
      if ((word.readBigUInt64LE(0) >> KPF_KSM) & 1n) {
        mapped += count;
        distinct += 1;
      }
    }
  } finally {
    fs.closeSync(flags);
  }
  const savedPages = mapped - distinct + zeroPages;
  return {
    ksmMappings: mapped,
    ksmPages: distinct,
    zeroPages,
    rmapItems,
    savedBytes: savedPages * PAGE,
    profitBytes: savedPages * PAGE - rmapItems * RMAP_ITEM_BYTES,
  };
}

/** Another process stopped KSM (run 0 or 2) under a measurement: it is void. */
export class KsmStoppedError extends Error {
  constructor(run) {
    super(`KSM was stopped by another process (run=${run}) during the measurement`);
    this.name = 'KsmStoppedError';
  }
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves after `scans` full scans that began after the call. */
export async function waitFullScans(scans, timeoutMs) {
  const target = sysfsNumber('full_scans') + scans + 1;
  const deadline = performance.now() + timeoutMs;
  while (sysfsNumber('full_scans') < target) {
    const run = sysfsNumber('run');
    if (run !== 1) throw new KsmStoppedError(run);
    if (performance.now() > deadline) return false;
    await sleep(20);
  }
  return true;
}
