/**
 * An estimate stops when its environment goes: worker.terminate() and
 * process.exit() return promptly during the interval between the two
 * samples and during a sample, instead of waiting for the work to end, and
 * the estimate's own threads (comm `ksm-estimate`) leave with it.
 * Each scenario runs in a process of its own (test/fixtures/estimate-teardown.cjs).
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { FIXTURES, requireKsm } from './helpers/ksm.js';

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  lines: Array<Record<string, unknown>>;
  /** From the line saying it is about to exit to the process's end. */
  exitMs: number | undefined;
}

function run(scenario: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(FIXTURES, 'estimate-teardown.cjs'), scenario], {
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 100_000,
    });
    const lines: Array<Record<string, unknown>> = [];
    let stderr = '';
    let pending = '';
    let exiting: number | undefined;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      pending += chunk;
      for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n')) {
        const line = JSON.parse(pending.slice(0, nl)) as Record<string, unknown>;
        pending = pending.slice(nl + 1);
        if (line.exiting === true) exiting = performance.now();
        lines.push(line);
      }
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('error', reject);
    child.once('close', (code, signal) => {
      resolve({ code, signal, stderr, lines, exitMs: exiting === undefined ? undefined : performance.now() - exiting });
    });
  });
}

describe('estimate() when its environment is torn down', () => {
  it('worker.terminate() during the 30 s interval returns at once, not when the interval ends', async (ctx) => {
    requireKsm(ctx);
    const result = await run('worker-terminate-interval');
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
    const last = result.lines.at(-1)!;
    expect(last).toMatchObject({ scenario: 'worker-terminate-interval', code: 1 });
    expect(last.terminateMs as number).toBeLessThan(3000);
    // terminate() waits for no thread of ours, so returning fast proves
    // nothing alone: the estimate's threads must leave too, not sleep out
    // the 30 s interval.
    expect(last.threadsBefore as number).toBeGreaterThanOrEqual(1);
    expect(last.threadsGoneMs).toBeTypeOf('number');
    expect(last.threadsGoneMs as number).toBeLessThan(3000);
  });

  it('process.exit() during the 30 s interval exits at once', async (ctx) => {
    requireKsm(ctx);
    const result = await run('exit-interval');
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
    expect(result.lines.at(-1)).toEqual({ exiting: true });
    expect(result.exitMs!).toBeLessThan(3000);
  });

  it('worker.terminate() during the sample of 1 GiB (one thread) does not wait for the sample', async (ctx) => {
    requireKsm(ctx);
    const result = await run('worker-terminate-sample');
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: '' });
    const last = result.lines.at(-1)!;
    expect(last).toMatchObject({ scenario: 'worker-terminate-sample', code: 1 });
    // Terminating a worker that holds 1 GiB costs unmapping it (idleTerminateMs,
    // measured once its estimate is over, and as noisy): the estimate adds
    // less than its sample takes when left alone.
    expect(last.sampleMs as number).toBeGreaterThan(0);
    expect((last.terminateMs as number) - (last.idleTerminateMs as number)).toBeLessThan(last.sampleMs as number);
    // Its thread (watched while terminate() runs) is gone less than half a
    // sample after terminate() returns: stopped, not left to finish.
    expect(last.threadsBefore as number).toBeGreaterThanOrEqual(1);
    expect(last.threadsGoneMs).toBeTypeOf('number');
    expect((last.threadsGoneMs as number) - (last.terminateMs as number)).toBeLessThan((last.sampleMs as number) / 2);
  });
});
