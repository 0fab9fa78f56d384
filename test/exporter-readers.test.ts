/**
 * The exporter's per-reader series (ksm_scrape_reader_*{reader}): scraped
 * from a running `node-ksm exporter`, for fixture trees whose readers find
 * something, nothing, or fail, and for the real machine.
 */
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { PrometheusFamily } from 'parse-prometheus-text-format';
import { afterAll, afterEach, describe, expect, it } from 'vitest';

import { makeKsmTree } from './helpers/cli.js';
import { makeFleetTree } from './helpers/fleet.js';
import { sample, scrape, startExporter as start } from './helpers/exporter.js';

const READERS = ['sysfs', 'costs', 'processes', 'fair_share', 'cgroups'];

let exporters: ChildProcess[] = [];
const trees: string[] = [];
async function startExporter(args: string[], exporterArgs: string[] = []): Promise<string> {
  const started = await start(args, exporterArgs);
  exporters.push(started.child);
  return started.url;
}
afterEach(() => {
  for (const child of exporters) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  exporters = [];
});
afterAll(() => {
  for (const root of trees) fs.rmSync(root, { recursive: true, force: true });
});

function readersOf(families: Map<string, PrometheusFamily>, name: string): string[] {
  return (families.get(name)?.metrics ?? []).map((m) => m.labels!.reader!).sort();
}

/** Every reader listed has a finite, non-negative duration, a 0/1 success and a count. */
function expectWellFormed(families: Map<string, PrometheusFamily>, readers: string[]): void {
  expect(readersOf(families, 'ksm_scrape_reader_duration_seconds')).toEqual([...readers].sort());
  expect(readersOf(families, 'ksm_scrape_reader_success')).toEqual([...readers].sort());
  expect(readersOf(families, 'ksm_scrape_reader_items')).toEqual([...readers].sort());
  for (const reader of readers) {
    const seconds = sample(families, 'ksm_scrape_reader_duration_seconds', { reader })!;
    expect(Number.isFinite(seconds)).toBe(true);
    expect(seconds).toBeGreaterThanOrEqual(0);
    expect([0, 1]).toContain(sample(families, 'ksm_scrape_reader_success', { reader }));
    expect(Number.isInteger(sample(families, 'ksm_scrape_reader_items', { reader }))).toBe(true);
  }
}

describe('exporter: what each reader of a scrape cost', () => {
  it('times every reader of a fleet tree and counts what each found', async () => {
    const root = makeFleetTree();
    trees.push(root);
    const url = await startExporter(['--root', root]);
    const { families } = await scrape(url);
    expectWellFormed(families, READERS);
    for (const reader of READERS) expect(sample(families, 'ksm_scrape_reader_success', { reader })).toBe(1);
    expect(sample(families, 'ksm_scrape_reader_items', { reader: 'processes' })).toBe(5);
    expect(sample(families, 'ksm_scrape_reader_items', { reader: 'fair_share' })).toBe(5);
    expect(sample(families, 'ksm_scrape_reader_items', { reader: 'cgroups' })).toBe(families.get('ksm_cgroup_processes')!.metrics.length);
    const sysfsFiles = fs.readdirSync(path.join(root, 'sys', 'kernel', 'mm', 'ksm')).length;
    expect(sample(families, 'ksm_scrape_reader_items', { reader: 'sysfs' })).toBeGreaterThan(0);
    expect(sample(families, 'ksm_scrape_reader_items', { reader: 'sysfs' })).toBeLessThanOrEqual(sysfsFiles);
    // The tree has no vmstat and no ksmd: the cost reader succeeds with nothing to read.
    expect(sample(families, 'ksm_scrape_reader_items', { reader: 'costs' })).toBe(0);
    expect(families.get('ksm_scrape_reader_duration_seconds')!.help).toMatch(/overlap/);
  });

  it('a tree without merging processes: the share and cgroup readers had nothing to read', async () => {
    const root = makeKsmTree();
    trees.push(root);
    const url = await startExporter(['--root', root]);
    const { families } = await scrape(url);
    expectWellFormed(families, READERS);
    for (const reader of ['processes', 'fair_share', 'cgroups']) {
      expect(sample(families, 'ksm_scrape_reader_success', { reader })).toBe(1);
      expect(sample(families, 'ksm_scrape_reader_items', { reader })).toBe(0);
    }
  });

  it('a reader that fails is reported as failed, and the scrape still answers', async () => {
    const root = makeFleetTree();
    trees.push(root);
    const url = await startExporter(['--root', root]);
    expect(sample((await scrape(url)).families, 'ksm_scrape_reader_success', { reader: 'processes' })).toBe(1);
    // /proc gone from the tree: the listing fails; a KSM counter that cannot be read fails the sysfs reader.
    fs.rmSync(path.join(root, 'proc'), { recursive: true, force: true });
    const volatile = path.join(root, 'sys', 'kernel', 'mm', 'ksm', 'pages_volatile');
    fs.rmSync(volatile);
    fs.mkdirSync(volatile);
    await new Promise((resolve) => setTimeout(resolve, 600)); // past the reuse window
    const { families } = await scrape(url);
    expectWellFormed(families, READERS);
    expect(sample(families, 'ksm_scrape_reader_success', { reader: 'processes' })).toBe(0);
    expect(sample(families, 'ksm_scrape_reader_success', { reader: 'sysfs' })).toBe(0);
    expect(sample(families, 'ksm_scrape_reader_items', { reader: 'processes' })).toBe(0);
    expect(sample(families, 'ksm_scrape_reader_items', { reader: 'fair_share' })).toBe(0);
    expect(sample(families, 'ksm_scrape_reader_success', { reader: 'costs' })).toBe(1);
    expect(families.has('ksm_cgroup_saved_bytes') ? families.get('ksm_cgroup_saved_bytes')!.metrics : []).toHaveLength(0);
  });

  it('--no-fair-share has no fair_share reader', async () => {
    const root = makeFleetTree();
    trees.push(root);
    const url = await startExporter(['--root', root], ['--no-fair-share']);
    const { families } = await scrape(url);
    expectWellFormed(families, READERS.filter((reader) => reader !== 'fair_share'));
    expect(sample(families, 'ksm_scrape_reader_items', { reader: 'processes' })).toBe(5);
  });

  it('scrapes the real machine: every reader reports, and sysfs succeeds where every KSM file is readable', async () => {
    const url = await startExporter([]);
    const { families } = await scrape(url);
    expectWellFormed(families, READERS);
    const dir = '/sys/kernel/mm/ksm';
    let readable = true;
    let files = 0;
    try {
      for (const name of fs.readdirSync(dir)) {
        files++;
        try {
          fs.readFileSync(path.join(dir, name));
        } catch {
          readable = false;
        }
      }
    } catch {
      files = 0; // no CONFIG_KSM: nothing to read
    }
    if (files > 0) {
      expect(sample(families, 'ksm_scrape_reader_success', { reader: 'sysfs' })).toBe(readable ? 1 : 0);
      expect(sample(families, 'ksm_scrape_reader_items', { reader: 'sysfs' })).toBeGreaterThan(0);
    }
    expect(sample(families, 'ksm_scrape_reader_success', { reader: 'processes' })).toBe(1);
    // What the processes reader found is what the exporter lists: at least the merging ones.
    expect(sample(families, 'ksm_scrape_reader_items', { reader: 'processes' })).toBeGreaterThanOrEqual(sample(families, 'ksm_processes_merging')!);
  });
});
