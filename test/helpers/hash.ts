/**
 * The page hash's two paths (native/hash.h), for the estimate tests to run
 * under each: NODE_KSM_HASH=scalar (lib/binding.ts hashFor) forces the
 * portable one; unset, the dispatcher picks AVX2 where the CPU has it. Every
 * estimatePages result says which hash ran, and the helpers here check it,
 * so that a run cannot pass on the other path (or on the same one twice).
 */
import * as fs from 'node:fs';
import { afterAll, afterEach, beforeAll, expect, inject } from 'vitest';

import { bindingState, type HashImplementation, type NativeBinding } from '../../lib/binding.js';

/** AVX2 as the kernel reports the CPU (the x86 `flags` line; arm64 has none). */
export function cpuHasAvx2(): boolean {
  return /^flags\s*:.*\bavx2\b/m.test(fs.readFileSync('/proc/cpuinfo', 'utf8'));
}

export interface HashPath {
  /** For test names. */
  name: string;
  /** NODE_KSM_HASH for the run (undefined: unset). */
  knob: 'scalar' | undefined;
  /** The hash estimatePages must report. */
  expected: HashImplementation;
}

/** Both paths: scalar forced, then what the dispatcher picks on this CPU. */
export function hashPaths(): HashPath[] {
  const avx2 = cpuHasAvx2();
  return [
    { name: 'scalar hash', knob: 'scalar', expected: 'scalar' },
    { name: avx2 ? 'dispatched hash: avx2' : 'dispatched hash: scalar, no AVX2 on this CPU', knob: undefined, expected: avx2 ? 'avx2' : 'scalar' },
  ];
}

let warned = false;
function sayWhenNoAvx2(path: HashPath): void {
  if (path.knob !== undefined || path.expected !== 'scalar' || warned) return;
  warned = true;
  console.warn(
    'this CPU has no AVX2 (/proc/cpuinfo): the dispatched runs check that the dispatcher picked the scalar hash; ' +
      'the AVX2 hash cannot run here and is not tested on this machine',
  );
}

interface Call {
  hash: string | undefined;
  implementation?: HashImplementation;
}

/** Wraps the addon's estimatePages to note each call's hash option and the hash it reports. */
function record(): { calls: Call[]; restore(): void } | undefined {
  const state = bindingState();
  if (!state.loaded) return undefined;
  const addon = state.binding;
  const original = addon.estimatePages;
  const calls: Call[] = [];
  const wrapped: NativeBinding['estimatePages'] = function (this: unknown, targets, options, onProgress) {
    const call: Call = { hash: options.hash };
    calls.push(call);
    const handle = original.call(this, targets, options, onProgress);
    handle.promise.then(
      (result) => {
        call.implementation = result.hashImplementation;
      },
      () => undefined,
    );
    return handle;
  };
  addon.estimatePages = wrapped;
  return { calls, restore: () => void (addon.estimatePages = original) };
}

function setKnob(knob: string | undefined): () => void {
  const saved = process.env.NODE_KSM_HASH;
  if (knob === undefined) delete process.env.NODE_KSM_HASH;
  else process.env.NODE_KSM_HASH = knob;
  return () => {
    if (saved === undefined) delete process.env.NODE_KSM_HASH;
    else process.env.NODE_KSM_HASH = saved;
  };
}

/** Checks the calls made so far; returns how many reported a hash. */
function check(calls: Call[], path: HashPath): number {
  let reported = 0;
  for (const call of calls.splice(0)) {
    expect(call.hash, 'the hash option estimate() passed to the addon').toBe(path.knob ?? 'auto');
    // Rejected calls (a refused process) report nothing.
    if (call.implementation === undefined) continue;
    expect(call.implementation, `the hash estimatePages ran (${path.name})`).toBe(path.expected);
    reported++;
  }
  return reported;
}

/**
 * In a describe: every test runs with NODE_KSM_HASH as the path says, each
 * estimate in this process must report the path's hash, and at least one
 * must have run by the end (where KSM is available to the tests at all).
 */
export function useHashPath(path: HashPath): void {
  let restoreKnob: (() => void) | undefined;
  let recorder: ReturnType<typeof record>;
  let reported = 0;
  beforeAll(() => {
    sayWhenNoAvx2(path);
    restoreKnob = setKnob(path.knob);
    recorder = record();
  });
  afterEach(() => {
    if (recorder) reported += check(recorder.calls, path);
  });
  afterAll(() => {
    recorder?.restore();
    restoreKnob?.();
    if (inject('ksm').available) expect(reported, `estimates that ran on the ${path.name}`).toBeGreaterThan(0);
  });
}

/** fn with NODE_KSM_HASH as the path says; its estimates must report the path's hash, at least one of them. */
export async function withHashPath<T>(path: HashPath, fn: () => Promise<T>): Promise<T> {
  sayWhenNoAvx2(path);
  const restoreKnob = setKnob(path.knob);
  const recorder = record();
  try {
    const value = await fn();
    if (recorder) expect(check(recorder.calls, path), `estimates that ran on the ${path.name}`).toBeGreaterThan(0);
    return value;
  } finally {
    recorder?.restore();
    restoreKnob();
  }
}
