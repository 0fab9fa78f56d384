/**
 * `node-ksm exporter`: started as a child process, scraped over loopback,
 * and the text parsed with a real Prometheus text-format parser.
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import parsePrometheusTextFormat, { type PrometheusFamily } from 'parse-prometheus-text-format';
import { afterAll, afterEach, describe, expect, it } from 'vitest';

import { ksmStatText, makeKsmTree, spawnCli } from './helpers/cli.js';
import { PAGE, rawKsmStat, requireKsm, startFixture, sysfsNumber, untilKsm, type Holder } from './helpers/ksm.js';

let exporters: ChildProcess[] = [];
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

/** Starts the exporter on a free port and resolves with its URL (from its --json line). */
async function startExporter(args: string[] = []): Promise<{ child: ChildProcess; url: string }> {
  const child = spawnCli([...args, 'exporter', '--port', '0', '--host', '127.0.0.1', '--json']);
  exporters.push(child);
  let out = '';
  let err = '';
  child.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n')) resolve((JSON.parse(line!) as { url: string }).url);
    });
    child.once('exit', (code) => reject(new Error(`exporter exited (${code}): ${err}`)));
  });
  return { child, url };
}

async function scrape(url: string): Promise<{ families: Map<string, PrometheusFamily>; contentType: string | null }> {
  const response = await fetch(url);
  expect(response.status).toBe(200);
  const families = parsePrometheusTextFormat(await response.text());
  return { families: new Map(families.map((f) => [f.name, f])), contentType: response.headers.get('content-type') };
}

function sample(families: Map<string, PrometheusFamily>, name: string, labels: Record<string, string> = {}): number | undefined {
  const found = families.get(name)?.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  return found?.value === undefined ? undefined : Number(found.value);
}

describe('node-ksm exporter', () => {
  it('serves every merging process of a fixture tree, labelled by pid and comm', async () => {
    const root = makeKsmTree({}, [
      { pid: 100, comm: 'api', ksmStat: ksmStatText({ rmap: 5000, zero: 0, merging: 3000, profit: 1000, mergeAny: true, mergeable: true }) },
      { pid: 200, comm: 'cache node', ksmStat: ksmStatText({ rmap: 9000, zero: 10, merging: 6000, profit: 2000, mergeAny: false, mergeable: true }) },
      { pid: 300, comm: 'idle', ksmStat: ksmStatText({ rmap: 100, zero: 0, merging: 0, profit: -6400, mergeAny: false, mergeable: true }) },
    ]);
    trees.push(root);
    const { child, url } = await startExporter(['--root', root]);
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

  it('scrapes the real machine: merging holders appear with the kernel\'s figures', async (ctx) => {
    requireKsm(ctx);
    const spec = JSON.stringify({ mode: 'alloc', size: 8 * 1024 * 1024, seed: 91 });
    holders = await Promise.all([startFixture('holder.cjs', [spec]), startFixture('holder.cjs', [spec])]);
    const { url } = await startExporter();
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
