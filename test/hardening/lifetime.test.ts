/**
 * Lifetime of mergeable Buffers across worker threads, slices, GC and exit.
 * Each scenario runs in its own node process (--expose-gc): a crash, an
 * abort or a double munmap (which would unmap a canary mapping reusing the
 * address) shows as a non-zero exit or a failed check.
 */
import { describe, expect, it } from 'vitest';

import { pageSize } from '../../lib/index.js';
import { requireKsm } from '../helpers/ksm.js';
import { runFixture } from './helpers.js';

async function scenario(name: string): Promise<Record<string, unknown>> {
  const run = await runFixture('lifetime.cjs', [name], ['--expose-gc']);
  expect({ code: run.code, signal: run.signal, stderr: run.stderr }).toEqual({ code: 0, signal: null, stderr: '' });
  expect(run.result).toMatchObject({ scenario: name, ok: true });
  return run.result!;
}

describe('mergeable Buffers and worker threads', () => {
  it('in a transfer list: Node copies the external memory (it cannot move it); the original stays whole', async (ctx) => {
    requireKsm(ctx);
    const result = await scenario('worker-transfer');
    expect(result).toMatchObject({ transferred: false, copied: true, stillMapped: true, after: 'ok' });
  });

  it('copies posted to a worker are used and advised there while the main thread writes its own', async (ctx) => {
    requireKsm(ctx);
    expect(await scenario('worker-use')).toMatchObject({ replies: 20 });
  });

  it('the addon loads in four workers at once; one exits with live mergeable buffers', async (ctx) => {
    requireKsm(ctx);
    expect(await scenario('workers-load')).toMatchObject({ workers: 4, exits: [0, 0, 0, 0] });
  });

  it('a worker terminated while allocating does not take the process down', async (ctx) => {
    requireKsm(ctx);
    // Before NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS this aborted (std::terminate) most runs.
    for (let i = 0; i < 3; i++) expect(await scenario('worker-terminate')).toMatchObject({ terminated: 1 });
  });
});

describe('slices', () => {
  it('keep the mapping alive after the parent is dropped and collected, and can be advised', async (ctx) => {
    requireKsm(ctx);
    expect(await scenario('slice-keepalive')).toMatchObject({ range: 3 * pageSize() });
  });

  it('the mapping goes with the last slice, once: new mappings in its place survive', async (ctx) => {
    requireKsm(ctx);
    expect(await scenario('slice-release')).toMatchObject({ unmappedAfterLastSlice: true });
  });
});

describe('process exit with live mergeable Buffers', () => {
  it('process.exit() with live buffers and marked views exits 0', async (ctx) => {
    requireKsm(ctx);
    await scenario('exit-live');
  });

  it('a natural exit with live buffers exits 0', async (ctx) => {
    requireKsm(ctx);
    expect(await scenario('exit-natural')).toMatchObject({ live: 100 });
  });
});
