/**
 * What the addon's reader threads read is handed to JavaScript, not copied
 * on its thread (native/procread.cc HandOut()): the bytes arrive whole, are
 * counted as external memory while held, never pass through Node's
 * ArrayBuffer allocator, and are freed once collected.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { FIXTURES } from './helpers/ksm.js';

const FIXTURE = join(FIXTURES, 'handoff.cjs');
const LENGTH = 4 * 1024 * 1024 + 12345; // not a whole number of the reader's 64 KiB reads

interface Handoff {
  length: number;
  equal: boolean;
  externalGrew: number;
  arrayBuffersGrew: number;
  externalAfter: number;
  error?: string;
}

describe("a read's bytes, handed over from the reader thread", () => {
  let dir: string;
  let file: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'node-ksm-handoff-'));
    file = join(dir, 'bytes');
    const bytes = Buffer.alloc(LENGTH);
    for (let i = 0; i + 4 <= LENGTH; i += 4) bytes.writeUInt32LE(Math.imul(i, 2654435761) >>> 0, i);
    writeFileSync(file, bytes);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('arrive whole, counted as external memory, outside the ArrayBuffer allocator, and are freed when collected', () => {
    const out = JSON.parse(execFileSync(process.execPath, ['--expose-gc', FIXTURE, file], { encoding: 'utf8', timeout: 60_000 })) as Handoff;
    expect(out.error).toBeUndefined();
    expect(out.length).toBe(LENGTH);
    expect(out.equal).toBe(true);
    // V8 counts a backing store with a deleter at its byte length (what memoryUsage().external shows).
    expect(out.externalGrew).toBeGreaterThanOrEqual(LENGTH);
    // A copy would have been made by Node's allocator (counted in arrayBuffers): none was.
    expect(out.arrayBuffersGrew).toBeLessThan(LENGTH / 4);
    // Collected, the vector is freed and its count given back.
    expect(out.externalAfter).toBeLessThan(LENGTH / 4);
  });
});
