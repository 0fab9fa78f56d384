/**
 * Labels by address range: those given to allocMergeable / markMergeable,
 * and names for memory the application does not own (a library's Buffers,
 * a WebAssembly memory, an addon's typed array), given without advising
 * anything. A label tied to an owner lives exactly as long as the memory it
 * names; one taken from a scope (labelAllocations) until it is replaced.
 */
import type { View } from '../binding.js';
import { readOwnSmapsSync } from '../kernel/smaps-reader.js';
import { selfTarget } from '../kernel/target.js';
import { classifyVmas } from '../kernel/vma.js';
import { requireKsm } from '../kernel/support.js';
import { checkView, invalidType, outOfRange } from '../validate.js';
import { WeakRanges } from './weak-ranges.js';

export interface LabelledRange {
  start: bigint;
  end: bigint;
  label: string;
}

/** Memory a label covers: whole pages (never beyond what was named). */
export interface LabelledMemory {
  address: bigint;
  /** Bytes, a multiple of pageSize(); 0 when nothing whole was covered. */
  length: number;
}

interface Entry extends LabelledRange {
  /** A WebAssembly memory grows in place: its end is read when the labels are. */
  memory?: WasmMemory;
}

const labels = new WeakRanges<Entry>();
/** Labels from labelAllocations(): no owner to outlive, replaced by a later label over them. */
const scoped: LabelledRange[] = [];
let changes = 0;
let onChange: (() => void) | undefined;

function changed(): void {
  changes++;
  onChange?.();
}

/** Internal: called after every label added (the publisher's schedule). */
export function setLabelChangeHook(hook: (() => void) | undefined): void {
  onChange = hook;
}

export function addLabel(owner: object, start: bigint, end: bigint, label: string): void {
  // A range re-labelled, or memory reused after its owner died.
  labels.removeOverlapping(start, end);
  removeScoped(start, end);
  labels.add(owner as ArrayBufferLike, { start, end, label });
  changed();
}

function removeScoped(start: bigint, end: bigint): void {
  for (let i = scoped.length - 1; i >= 0; i--) if (scoped[i]!.start < end && scoped[i]!.end > start) scoped.splice(i, 1);
}

const byStart = (a: LabelledRange, b: LabelledRange): number => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0);

/** Labelled ranges whose memory is still alive, by start address. */
export function liveLabels(): LabelledRange[] {
  const out: LabelledRange[] = [];
  for (const [entry] of labels.alive()) {
    const end = entry.memory === undefined ? entry.end : entry.start + BigInt(wholePages(entry.memory.buffer.byteLength));
    if (end > entry.start) out.push({ start: entry.start, end, label: entry.label });
  }
  for (const range of scoped) out.push({ ...range });
  return out.sort(byStart);
}

/** A counter that moves whenever a label is added (for publishers). */
export function labelChanges(): number {
  return changes;
}

function wholePages(bytes: number): number {
  const page = requireKsm().pageSize();
  return Math.floor(bytes / page) * page;
}

function checkName(label: unknown): string {
  if (typeof label !== 'string') throw invalidType('label', 'of type string', label);
  if (label.length === 0 || label.length > 256) {
    throw outOfRange('label', 'a string of 1 to 256 characters', label === '' ? '""' : `a string of ${label.length} characters`);
  }
  return label;
}

/** A WebAssembly.Memory, as far as labels need it (the ES2022 lib has no WebAssembly types). */
export interface WasmMemory {
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
  grow(delta: number): number;
}

const WasmMemoryClass = (globalThis as { WebAssembly?: { Memory?: abstract new (...args: never[]) => WasmMemory } }).WebAssembly?.Memory;

function isWasmMemory(value: unknown): value is WasmMemory {
  return WasmMemoryClass !== undefined && value instanceof WasmMemoryClass;
}

/**
 * Names the memory of `memory` in regions(), profit() and estimate() (of
 * this process, and of other processes' reports where labels are published),
 * changing nothing else: no advice, no copy. Use it for memory the
 * application holds but did not allocate itself: a Buffer a library returns,
 * a WasmMemory (its current and future pages), an addon's typed array.
 *
 * Only whole pages inside the view are named (a Buffer of malloc's starts 16
 * bytes into its first page); the name lives as long as the memory's owner.
 * SharedArrayBuffer memory is out of reach of Node-API on Node 20.
 *
 * @returns the named range; `length` 0 when the view holds no whole page.
 * @throws TypeError for a non-view, a detached buffer or a label that is no string.
 * @throws RangeError for an empty label or one longer than 256 characters.
 */
export function labelMemory(memory: View | WasmMemory, label: string): LabelledMemory {
  const name = checkName(label);
  const native = requireKsm();
  const wasm = isWasmMemory(memory);
  const view = checkView(wasm ? memory.buffer : memory, 'memory');
  const { address, length } = native.viewRange(view);
  const page = BigInt(native.pageSize());
  const start = ((address + page - 1n) / page) * page;
  const end = ((address + BigInt(length)) / page) * page;
  if (end <= start) return { address: start, length: 0 };
  labels.removeOverlapping(start, end);
  removeScoped(start, end);
  const owner = wasm ? memory : ((view as ArrayBufferView).buffer ?? view);
  labels.add(owner as ArrayBufferLike, wasm ? { start, end, label: name, memory } : { start, end, label: name });
  changed();
  return { address: start, length: Number(end - start) };
}

/**
 * Runs `fn` and names the private anonymous memory it mapped (a library's
 * tables loaded at require time, a WebAssembly instance's memory): the
 * address ranges of this process's smaps that are anonymous after `fn` and
 * were not before: malloc's memory and WebAssembly memories. V8's own heap
 * pages are left out (they hold every module's objects, not the library's). Synchronous work only: anything
 * else mapping meanwhile would be named too.
 *
 * The names are address ranges, kept until a later label covers them: use
 * it for memory loaded once and kept (start-up tables), not for memory the
 * library frees and maps again.
 *
 * @returns what `fn` returned.
 * @throws TypeError / RangeError for a bad label or a `fn` that is no function.
 */
export function labelAllocations<T>(label: string, fn: () => T): T {
  const name = checkName(label);
  if (typeof fn !== 'function') throw invalidType('fn', 'of type function', fn);
  requireKsm();
  const before = readOwnSmapsSync(selfTarget()).vmas;
  const result = fn();
  if (result instanceof Promise) throw invalidType('fn', 'a synchronous function (it returned a Promise)', result);
  const after = readOwnSmapsSync(selfTarget()).vmas;
  const kinds = classifyVmas(after);
  after.forEach((vma, i) => {
    if (!vma.perms.startsWith('rw') || !allocatedBy(kinds[i]!.kind, vma.vmFlags)) return;
    for (const [start, end] of newParts(vma.start, vma.end, before)) {
      labels.removeOverlapping(start, end);
      removeScoped(start, end);
      scoped.push({ start, end, label: name });
    }
  });
  changed();
  return result;
}

/**
 * Memory a library's code can have mapped: malloc's (its heaps, its chunks:
 * anonymous memory without V8's MADV_DONTFORK `dc`) and WebAssembly memories;
 * not V8's heap pages (`dc`), which hold every module's objects.
 */
function allocatedBy(kind: string, vmFlags: readonly string[]): boolean {
  if (kind === 'wasm-memory' || kind === 'heap' || kind === 'malloc-arena') return true;
  return kind === 'anonymous' && !vmFlags.includes('dc');
}

/** The parts of [start, end) no VMA of `before` covered. */
function newParts(start: bigint, end: bigint, before: readonly { start: bigint; end: bigint; pathname: string; perms: string }[]): Array<[bigint, bigint]> {
  const parts: Array<[bigint, bigint]> = [];
  let cursor = start;
  for (const old of before) {
    if (old.end <= cursor) continue;
    if (old.start >= end) break;
    // Memory that was there and accessible the same way is not new; a guard made writable is.
    if (old.perms !== '---p' || old.pathname !== '') {
      if (old.start > cursor) parts.push([cursor, old.start]);
      cursor = old.end < end ? old.end : end;
    }
  }
  if (cursor < end) parts.push([cursor, end]);
  return parts;
}
