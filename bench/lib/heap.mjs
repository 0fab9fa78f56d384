// Groups of the v8-heap suite (one primary process each, workers/heap-primary.cjs),
// and what their memory is: the saving from profit({ exact: true }), and
// where it is, per kind of mapping and, for V8's pages, per kind of page.
import { fork } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

import { groupSaving, smaps } from './kernel.mjs';

const WORKERS = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'workers');
const live = new Set();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/** Starts a group (spec: see workers/heap-primary.cjs) and resolves once every worker is ready. */
export function startHeapGroup(spec, { timeoutMs = 180_000 } = {}) {
  const child = fork(path.join(WORKERS, 'heap-primary.cjs'), [JSON.stringify(spec)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  live.add(child);
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
  exited.then(() => live.delete(child));
  const waiting = new Map();
  child.on('message', (message) => {
    const resolve = waiting.get(message.cmd);
    waiting.delete(message.cmd);
    resolve?.(message);
  });
  const request = (message, ms = timeoutMs) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`v8-heap group: no reply to ${message.cmd} in ${ms} ms`)), ms);
      waiting.set(message.cmd, (reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
      exited.then((code) => reject(new Error(`v8-heap group exited (${code}) before replying to ${message.cmd}`)));
      if (message.cmd !== 'ready') child.send(message);
    });
  return request({ cmd: 'ready' }).then((ready) => ({
    spec,
    primary: ready.primary,
    port: ready.port,
    workers: ready.workers,
    pids: ready.workers.map((w) => w.pid),
    request,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.send({ cmd: 'exit' });
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
    },
  }));
}

const KiB256 = 0x40000n;
const MiB64 = 64n * 1024n * 1024n;

/**
 * V8's chunk header (BasicMemoryChunk, V8 11.3): size_, flags_ and heap_ are
 * its first words, owner_ (the space) the ninth; the space object holds its
 * AllocationSpace id 16 bytes in (after the vtable and heap_). Read here:
 * owner ids 1 (new), 2 (old), 3 (code), 6 (large object) on Node 20.
 */
function chunkHeader(fd, start) {
  const word = Buffer.alloc(72);
  const id = Buffer.alloc(4);
  try {
    if (fs.readSync(fd, word, 0, 72, Number(start)) !== 72) return undefined;
  } catch {
    return undefined;
  }
  let space;
  try {
    if (fs.readSync(fd, id, 0, 4, Number(word.readBigUInt64LE(64) + 16n)) === 4) space = SPACES[id.readUInt32LE(0)];
  } catch {
    /* not a pointer: a misread header */
  }
  return { size: word.readBigUInt64LE(0), flags: word.readBigUInt64LE(8), heap: word.readBigUInt64LE(16), space };
}

/** AllocationSpace of V8 11.3 (src/common/globals.h), as the bench names the kinds. */
const SPACES = ['v8-read-only', 'v8-young', 'v8-old', 'v8-code', 'v8-shared', 'v8-large', 'v8-large', 'v8-code', 'v8-shared'];

const FROM_OR_TO_PAGE = (1n << 3n) | (1n << 4n);

/**
 * What each VMA is, as far as smaps and V8's own page headers tell:
 * v8-code (anonymous executable: the code range, and chunks of the code
 * spaces), v8-young / v8-old / v8-large / v8-read-only (chunks, by the space
 * their header's owner names; by size and young-generation flags where it
 * cannot be read), malloc-brk, malloc-arena (64 MiB-aligned thread arenas),
 * thread-stack, file (mapped files' private pages), other.
 */
export function classify(pid) {
  const vmas = smaps(pid);
  const fd = fs.openSync(`/proc/${pid}/mem`, 'r');
  const heaps = new Map();
  try {
    for (const vma of vmas) {
      const size = vma.end - vma.start;
      if (vma.pathname === '[heap]') vma.kind = 'malloc-brk';
      else if (vma.pathname.startsWith('[stack')) vma.kind = 'stack';
      else if (vma.pathname) vma.kind = vma.pathname.startsWith('[') ? 'other' : 'file';
      else if (vma.perms.includes('x')) vma.kind = 'v8-code';
      else if (vma.perms.startsWith('rw') && vma.start % KiB256 === 0n && vma.rss > 0) {
        const header = chunkHeader(fd, vma.start);
        if (header && header.size >= KiB256 && header.size <= size && header.size % 4096n === 0n) {
          // The space the VMA's first chunk belongs to (adjacent chunks share a VMA).
          vma.kind = header.space ?? (header.size > KiB256 ? 'v8-large' : header.flags & FROM_OR_TO_PAGE ? 'v8-young' : 'v8-old');
          heaps.set(header.heap, (heaps.get(header.heap) ?? 0) + 1);
        } else if (vma.start % MiB64 === 0n) vma.kind = 'malloc-arena';
        else vma.kind = 'other';
      } else if (size >= 8n * 1024n * 1024n && size <= 8n * 1024n * 1024n + 65536n) vma.kind = 'thread-stack';
      else vma.kind = 'other';
    }
  } finally {
    fs.closeSync(fd);
  }
  // Every V8 chunk of an isolate names the same Heap: a second value means a
  // header we misread (or a worker thread's isolate); say so.
  return { vmas, heapPointers: heaps.size };
}

/**
 * The group's saving now: profit({ exact: true }) summed over the workers
 * (fair shares, zero pages, less rmap_item metadata), its anonymous memory,
 * and both split by kind of mapping. `groupOnly` is the same saving counted
 * inside the group alone (a KSM page mapped k times by the group saves k-1).
 */
export async function heapSaving(ksm, pids) {
  const byKind = {};
  let anonymous = 0;
  let netBytes = 0;
  let savedBytes = 0;
  let zeroPageBytes = 0;
  let metadataBytes = 0;
  let heapPointers = 0;
  for (const pid of pids) {
    const report = await ksm.profit(pid, { exact: true });
    const { vmas, heapPointers: pointers } = classify(pid);
    heapPointers = Math.max(heapPointers, pointers);
    const kindAt = new Map(vmas.map((v) => [v.start, v.kind]));
    for (const vma of vmas) {
      byKind[vma.kind] ??= { anonymous: 0, merged: 0, saved: 0 };
      byKind[vma.kind].anonymous += vma.anonymous;
      byKind[vma.kind].merged += vma.ksm;
      anonymous += vma.anonymous;
    }
    for (const region of report.regions) {
      // Exact rows may be cut inside a VMA: find the VMA that holds it.
      const holder = vmas.find((v) => v.start <= region.start && region.start < v.end);
      const kind = kindAt.get(holder?.start) ?? 'other';
      byKind[kind] ??= { anonymous: 0, merged: 0, saved: 0 };
      byKind[kind].saved += region.savedBytes;
    }
    netBytes += report.total.netBytes ?? 0;
    savedBytes += report.total.savedBytes;
    zeroPageBytes += report.total.zeroPageBytes;
    metadataBytes += report.total.metadataBytes ?? 0;
  }
  const groupOnly = groupSaving(pids.map((pid) => ({ pid })));
  return { netBytes, savedBytes, zeroPageBytes, metadataBytes, anonymous, share: netBytes / anonymous, byKind, groupOnly, heapPointers };
}

/** p-th percentile (0..100) of a list of numbers, nearest rank. */
export function percentile(values, p) {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (sorted.length === 0) return undefined;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}
