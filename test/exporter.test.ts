/**
 * `node-ksm exporter`: started as a child process, scraped over loopback,
 * and the text parsed with a real Prometheus text-format parser.
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import { afterAll, afterEach, describe, expect, it } from 'vitest';

import { ksmStatText, makeKsmTree } from './helpers/cli.js';
import { CONTAINER_1, CONTAINER_2, CONTAINER_3, makeFleetTree, UNIT } from './helpers/fleet.js';
import { sample, scrape, startExporter as start } from './helpers/exporter.js';
import { PAGE, rawKsmStat, requireKsm, startFixture, sysfsNumber, untilKsm, type Holder } from './helpers/ksm.js';

let exporters: ChildProcess[] = [];
async function startExporter(args: string[] = [], exporterArgs: string[] = []): Promise<{ child: ChildProcess; url: string }> {
  const started = await start(args, exporterArgs);
  exporters.push(started.child);
  return started;
}
let holders: Holder[] = [];
const trees: string[] = [];
afterEach(async () => {
  for (const child of exporters) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  exporters = [];
  await Promise.all(holders.map((holder) => holder.kill()));
  holders = [];
});
afterAll(() => {
  for (const root of trees) fs.rmSync(root, { recursive: true, force: true });
});

describe('node-ksm exporter', () => {
  it('serves every merging process of a fixture tree, labelled by pid and comm, with --per-process', async () => {
    const root = makeKsmTree({}, [
      { pid: 100, comm: 'api', ksmStat: ksmStatText({ rmap: 5000, zero: 0, merging: 3000, profit: 1000, mergeAny: true, mergeable: true }) },
      { pid: 200, comm: 'cache node', ksmStat: ksmStatText({ rmap: 9000, zero: 10, merging: 6000, profit: 2000, mergeAny: false, mergeable: true }) },
      { pid: 300, comm: 'idle', ksmStat: ksmStatText({ rmap: 100, zero: 0, merging: 0, profit: -6400, mergeAny: false, mergeable: true }) },
    ]);
    trees.push(root);
    const { child, url } = await startExporter(['--root', root], ['--per-process']);
    const { families, contentType } = await scrape(url);
    expect(contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(sample(families, 'ksm_pages_sharing')).toBe(9000);
    expect(sample(families, 'ksm_full_scan_seconds')).toBe(0.3);
    expect(sample(families, 'ksm_processes_merging')).toBe(2);
    expect(sample(families, 'ksm_process_merging_pages', { pid: '100', comm: 'api' })).toBe(3000);
    expect(sample(families, 'ksm_process_merging_pages', { pid: '200', comm: 'cache node' })).toBe(6000);
    expect(sample(families, 'ksm_process_zero_pages', { pid: '200' })).toBe(10);
    expect(sample(families, 'ksm_process_rmap_items', { pid: '100' })).toBe(5000);
    expect(sample(families, 'ksm_process_merging_pages', { pid: '300' })).toBeUndefined();

    expect((await fetch(url.replace('/metrics', '/'))).status).toBe(200);
    expect((await fetch(url.replace('/metrics', '/nope'))).status).toBe(404);
    expect((await fetch(url, { method: 'POST' })).status).toBe(405);

    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    expect(code).toBe(0);
  });

  it('serves the saving per cgroup with unit, pod_uid and container_id labels; no pid series by default', async () => {
    const root = makeFleetTree();
    trees.push(root);
    const { url } = await startExporter(['--root', root]);
    const { families } = await scrape(url);
    const pod = { pod_uid: '6553a60b-2b97-442a-b6da-a5704d81dd98' };
    const KB = 1024;
    expect(sample(families, 'ksm_cgroup_saved_bytes', { cgroup: CONTAINER_1, ...pod, container_id: 'a'.repeat(64), unit: `cri-containerd-${'a'.repeat(64)}.scope` })).toBe(3072 * KB);
    expect(sample(families, 'ksm_cgroup_saved_bytes', { cgroup: CONTAINER_2, ...pod })).toBe(6144 * KB);
    expect(sample(families, 'ksm_cgroup_saved_bytes', { cgroup: CONTAINER_3, pod_uid: 'a36d0c1d-0b26-4451-8d80-9c195e004afa', unit: '' })).toBe(2048 * KB);
    expect(sample(families, 'ksm_cgroup_saved_bytes', { cgroup: UNIT, unit: 'api.service', pod_uid: '', container_id: '' })).toBe(1536 * KB);
    expect(sample(families, 'ksm_cgroup_merged_bytes', { cgroup: CONTAINER_2 })).toBe(8192 * KB);
    expect(sample(families, 'ksm_cgroup_processes', { cgroup: '/' })).toBe(1);
    expect(sample(families, 'ksm_cgroup_merging_pages', { cgroup: CONTAINER_2 })).toBe(2048);
    expect(sample(families, 'ksm_cgroup_metadata_bytes', { cgroup: CONTAINER_2 })).toBe(2048 * 2 * 64);
    // Memory of the leaf cgroups where their files are (the fixture has the service's).
    expect(sample(families, 'ksm_cgroup_memory_bytes', { cgroup: UNIT })).toBe(32 * 1024 * KB);
    expect(sample(families, 'ksm_cgroup_anon_bytes', { cgroup: UNIT })).toBe(16 * 1024 * KB);
    expect(sample(families, 'ksm_cgroup_memory_bytes', { cgroup: CONTAINER_1 })).toBeUndefined();
    expect(sample(families, 'ksm_processes_merging')).toBe(5);
    expect(sample(families, 'ksm_processes_mergeable')).toBe(5);
    expect(families.has('ksm_process_merging_pages')).toBe(false);
    const total = families.get('ksm_cgroup_saved_bytes')!.metrics.reduce((sum, m) => sum + Number(m.value), 0);
    expect(total).toBe((3072 + 6144 + 2048 + 1536 + 512) * KB);
  });

  it('--max-groups bounds the cgroup series: the rest are summed into cgroup="other"', async () => {
    const root = makeFleetTree();
    trees.push(root);
    const { url } = await startExporter(['--root', root], ['--max-groups', '2']);
    const { families } = await scrape(url);
    const saved = families.get('ksm_cgroup_saved_bytes')!.metrics;
    expect(saved).toHaveLength(3);
    expect(saved.map((m) => m.labels!.cgroup)).toContain('other');
    expect(saved.reduce((sum, m) => sum + Number(m.value), 0)).toBe((3072 + 6144 + 2048 + 1536 + 512) * 1024);
  });

  it('scrapes the real machine: merging holders appear with the kernel\'s figures', async (ctx) => {
    requireKsm(ctx);
    const spec = JSON.stringify({ mode: 'alloc', size: 8 * 1024 * 1024, seed: 91 });
    holders = await Promise.all([startFixture('holder.cjs', [spec]), startFixture('holder.cjs', [spec])]);
    const { url } = await startExporter([], ['--per-process']);
    await untilKsm(() => holders.every((h) => Number(rawKsmStat(h.pid).ksm_merging_pages) >= (8 * 1024 * 1024) / PAGE), 'both holders merging their buffers');
    const { families } = await scrape(url);
    for (const holder of holders) {
      const raw = rawKsmStat(holder.pid);
      expect(sample(families, 'ksm_process_merging_pages', { pid: String(holder.pid), comm: 'node' })).toBe(Number(raw.ksm_merging_pages));
      expect(sample(families, 'ksm_process_rmap_items', { pid: String(holder.pid) })).toBe(Number(raw.ksm_rmap_items));
      expect(Number(raw.ksm_merging_pages)).toBeGreaterThanOrEqual((8 * 1024 * 1024) / PAGE);
      // Each KSM page of the buffers has two mappers: half of each buffer is each holder's fair share.
      expect(sample(families, 'ksm_process_saved_bytes', { pid: String(holder.pid) })).toBeGreaterThanOrEqual(4 * 1024 * 1024);
    }
    expect(sample(families, 'ksm_run')).toBe(1);
    expect(sample(families, 'ksm_pages_to_scan')).toBe(sysfsNumber('pages_to_scan'));
    expect(sample(families, 'ksm_full_scans_total')).toBeGreaterThanOrEqual(2);
    expect(families.get('ksm_full_scans_total')!.type).toBe('COUNTER');

    // A holder that exits disappears from the next scrape.
    const gone = holders.pop()!;
    await gone.kill();
    await new Promise((resolve) => setTimeout(resolve, 600));
    const after = await scrape(url);
    expect(sample(after.families, 'ksm_process_merging_pages', { pid: String(gone.pid) })).toBeUndefined();
  });
});
