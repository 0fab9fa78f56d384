/**
 * collectDefaultKsmMetrics(): registered in a prom-client registry, scraped
 * as text and parsed back with a real Prometheus text-format parser.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import parsePrometheusTextFormat, { type PrometheusFamily } from 'parse-prometheus-text-format';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';

import { allocMergeable, collectDefaultKsmMetrics, pageSize, profit } from '../lib/index.js';
import { ksmStatText, makeKsmTree } from './helpers/cli.js';
import { DIST, addressOf, rawKsmPages, rawKsmStat, requireKsm, sysfsNumber, untilKsm } from './helpers/ksm.js';

const trees: string[] = [];
afterAll(() => {
  for (const root of trees) fs.rmSync(root, { recursive: true, force: true });
});

async function scrape(registry: Registry): Promise<Map<string, PrometheusFamily>> {
  const families = parsePrometheusTextFormat(await registry.metrics());
  return new Map(families.map((family) => [family.name, family]));
}

function value(families: Map<string, PrometheusFamily>, name: string, labels?: Record<string, string>): number | undefined {
  const family = families.get(name);
  const sample = family?.metrics.find((m) => labels === undefined || Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
  return sample?.value === undefined ? undefined : Number(sample.value);
}

function fixtureWithSelf(): string {
  const root = makeKsmTree();
  trees.push(root);
  fs.mkdirSync(path.join(root, 'proc', 'self'), { recursive: true });
  fs.writeFileSync(
    path.join(root, 'proc', 'self', 'ksm_stat'),
    ksmStatText({ rmap: 700, zero: 3, merging: 512, profit: 515 * 4096 - 700 * 64, mergeAny: true, mergeable: true }),
  );
  return root;
}

describe('collectDefaultKsmMetrics (fixture tree)', () => {
  it('exports the system counters and this process\'s ksm_stat with Prometheus names and types', async () => {
    const root = fixtureWithSelf();
    const registry = new Registry();
    collectDefaultKsmMetrics({ register: registry, root });
    const m = await scrape(registry);
    expect(value(m, 'ksm_run')).toBe(1);
    expect(value(m, 'ksm_pages_to_scan')).toBe(1000);
    expect(value(m, 'ksm_sleep_seconds')).toBe(0.02);
    expect(value(m, 'ksm_pages_shared')).toBe(1000);
    expect(value(m, 'ksm_pages_sharing')).toBe(9000);
    expect(value(m, 'ksm_pages_unshared')).toBe(3000);
    expect(value(m, 'ksm_pages_volatile')).toBe(2000);
    expect(value(m, 'ksm_candidate_pages')).toBe(15000);
    expect(value(m, 'ksm_full_scan_seconds')).toBe(0.3);
    expect(value(m, 'ksm_general_profit_bytes')).toBe(9000 * 4096 - 15000 * 64);
    expect(value(m, 'ksm_saved_bytes')).toBe(9000 * pageSize());
    expect(value(m, 'ksm_full_scans_total')).toBe(42);
    expect(m.get('ksm_full_scans_total')!.type).toBe('COUNTER');
    expect(value(m, 'ksm_pages_scanned_total')).toBe(500000);
    // The fixture has no vmstat and no ksmd: the cost counters are absent, never 0.
    expect(m.has('ksm_cow_total')).toBe(false);
    expect(m.has('ksm_ksmd_cpu_seconds_total')).toBe(false);
    expect(m.get('ksm_pages_sharing')!.type).toBe('GAUGE');
    expect(value(m, 'nodejs_ksm_process_merging_pages')).toBe(512);
    expect(value(m, 'nodejs_ksm_process_zero_pages')).toBe(3);
    expect(value(m, 'nodejs_ksm_process_rmap_items')).toBe(700);
    expect(value(m, 'nodejs_ksm_process_profit_bytes')).toBe(515 * 4096 - 700 * 64);
    expect(value(m, 'nodejs_ksm_process_merge_any')).toBe(1);
    for (const name of m.keys()) expect(name).toMatch(/^(ksm|nodejs_ksm)_[a-z_]+$/);
    for (const family of m.values()) expect(family.help.length).toBeGreaterThan(10);
  });

  it('exports what merging costs: cow_ksm, ksm_swpin_copy and ksmd CPU as counters', async () => {
    const root = fixtureWithSelf();
    fs.writeFileSync(path.join(root, 'proc', 'vmstat'), 'cow_ksm 77\nksm_swpin_copy 2\n');
    fs.mkdirSync(path.join(root, 'proc', '38'));
    fs.writeFileSync(path.join(root, 'proc', '38', 'comm'), 'ksmd\n');
    fs.writeFileSync(path.join(root, 'proc', '38', 'schedstat'), '1500000000 0 1\n');
    const registry = new Registry();
    collectDefaultKsmMetrics({ register: registry, root });
    let m = await scrape(registry);
    expect(value(m, 'ksm_cow_total')).toBe(77);
    expect(value(m, 'ksm_swpin_copy_total')).toBe(2);
    expect(value(m, 'ksm_ksmd_cpu_seconds_total')).toBe(1.5);
    for (const name of ['ksm_cow_total', 'ksm_swpin_copy_total', 'ksm_ksmd_cpu_seconds_total']) expect(m.get(name)!.type).toBe('COUNTER');
    // Read on scrape (one reading per scrape, reused for 500 ms).
    fs.writeFileSync(path.join(root, 'proc', 'vmstat'), 'cow_ksm 90\nksm_swpin_copy 2\n');
    await new Promise((resolve) => setTimeout(resolve, 600));
    m = await scrape(registry);
    expect(value(m, 'ksm_cow_total')).toBe(90);
  });

  it('reads the kernel at scrape time, not at registration', async () => {
    const root = fixtureWithSelf();
    const registry = new Registry();
    collectDefaultKsmMetrics({ register: registry, root });
    fs.writeFileSync(path.join(root, 'sys', 'kernel', 'mm', 'ksm', 'pages_sharing'), '12345\n');
    await new Promise((resolve) => setTimeout(resolve, 600)); // past the per-scrape reuse window
    expect(value(await scrape(registry), 'ksm_pages_sharing')).toBe(12345);
  });

  it('takes a prefix, is idempotent per registry, and validates its options', async () => {
    const root = fixtureWithSelf();
    const registry = new Registry();
    collectDefaultKsmMetrics({ register: registry, root, prefix: 'app_' });
    collectDefaultKsmMetrics({ register: registry, root, prefix: 'app_' });
    const m = await scrape(registry);
    expect(value(m, 'app_ksm_pages_sharing')).toBe(9000);
    expect([...m.keys()].every((name) => name.startsWith('app_'))).toBe(true);
    expect(() => collectDefaultKsmMetrics({ register: registry, prefix: 'bad prefix' })).toThrow(RangeError);
    expect(() => collectDefaultKsmMetrics({ register: {} as Registry })).toThrow(TypeError);
    expect(() => collectDefaultKsmMetrics({ register: new Registry(), maxLabels: -1 })).toThrow(RangeError);
  });

  it('a machine without KSM scrapes fine, with the KSM metrics absent', async () => {
    const root = fixtureWithSelf();
    fs.rmSync(path.join(root, 'sys'), { recursive: true });
    const registry = new Registry();
    collectDefaultKsmMetrics({ register: registry, root });
    const m = await scrape(registry);
    expect(value(m, 'ksm_pages_sharing')).toBeUndefined();
    expect(value(m, 'nodejs_ksm_process_merging_pages')).toBe(512);
  });

  it('without prom-client installed: a KsmError that says what to install', () => {
    // A child whose require() cannot find prom-client, as in an install without the peer.
    const script = `
      const Module = require('node:module');
      const resolve = Module._resolveFilename;
      Module._resolveFilename = function (request, ...rest) {
        if (request === 'prom-client') { const e = new Error("Cannot find module 'prom-client'"); e.code = 'MODULE_NOT_FOUND'; throw e; }
        return resolve.call(this, request, ...rest);
      };
      const ksm = require(${JSON.stringify(DIST)});
      try { ksm.collectDefaultKsmMetrics(); console.log('no error'); }
      catch (e) { console.log(JSON.stringify({ code: e.code, isKsm: e instanceof ksm.KsmError, message: e.message })); }
    `;
    const out = JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' }));
    expect(out).toMatchObject({ code: 'ERR_KSM_MISSING_DEPENDENCY', isKsm: true });
    expect(out.message).toContain('npm install prom-client');
  });
});

describe('collectDefaultKsmMetrics (real kernel)', () => {
  it('this process\'s merging pages match /proc/self/ksm_stat', async (ctx) => {
    requireKsm(ctx);
    const size = 4 * 1024 * 1024;
    const a = allocMergeable(size);
    const b = allocMergeable(size);
    for (let offset = 0; offset < size; offset += pageSize()) {
      a.writeUInt32LE(offset + 1, offset);
      b.writeUInt32LE(offset + 1, offset);
    }
    await untilKsm(() => Number(rawKsmStat('self').ksm_merging_pages) >= (2 * size) / pageSize(), 'the two buffers merging');
    const registry = new Registry();
    collectDefaultKsmMetrics({ register: registry });
    const m = await scrape(registry);
    const raw = rawKsmStat('self');
    expect(value(m, 'nodejs_ksm_process_merging_pages')).toBe(Number(raw.ksm_merging_pages));
    expect(value(m, 'nodejs_ksm_process_merging_pages')).toBeGreaterThanOrEqual((2 * size) / pageSize());
    expect(value(m, 'nodejs_ksm_process_rmap_items')).toBe(Number(raw.ksm_rmap_items));
    expect(value(m, 'ksm_pages_to_scan')).toBe(sysfsNumber('pages_to_scan'));
    expect(value(m, 'ksm_run')).toBe(1);
    a.fill(0);
    b.fill(0);
  });

  it('fair share of this process and per label, with labels past maxLabels summed into "other"', async (ctx) => {
    requireKsm(ctx);
    const size = 1024 * 1024;
    // Three labelled buffers with the same bytes: every KSM page has three mappers here.
    // A salt of this run, so no other process on the machine holds a page with these bytes.
    const salt = randomBytes(16);
    const buffers = ['alpha', 'beta', 'gamma'].map((label) => {
      const b = allocMergeable(size, { label });
      for (let offset = 0; offset < size; offset += pageSize()) {
        b.writeUInt32LE(offset + 7, offset);
        salt.copy(b, offset + 16);
      }
      return b;
    });
    // Page by page: adjacent buffers may share one VMA, so smaps cannot tell them apart.
    await untilKsm(() => buffers.every((b) => rawKsmPages('self', addressOf(b), addressOf(b) + BigInt(size)) === size / pageSize()), 'the three buffers merging');
    const registry = new Registry();
    collectDefaultKsmMetrics({ register: registry, maxLabels: 2 });
    const m = await scrape(registry);
    const report = await profit();
    expect(report.method).toBe('exact');
    // The rest of this process keeps merging and unmerging between the scrape
    // and profit() (the previous test's zeroed buffers): the process figure
    // holds at least our three buffers' saving; the per-label ones are exact.
    expect(value(m, 'nodejs_ksm_process_saved_bytes')).toBeGreaterThanOrEqual((3 * size * 2) / 3);
    expect(report.total.savedBytes).toBeGreaterThanOrEqual((3 * size * 2) / 3);

    const saved = m.get('nodejs_ksm_buffer_saved_bytes')!.metrics;
    const labels = saved.map((sample) => sample.labels!.label!).sort();
    expect(labels).toHaveLength(3);
    expect(labels).toContain('other');
    expect(labels.filter((label) => label !== 'other').every((label) => ['alpha', 'beta', 'gamma'].includes(label))).toBe(true);
    // Each buffer saved 2/3 of itself, exactly; the series add up to the three of them.
    const total = saved.reduce((sum, sample) => sum + Number(sample.value), 0);
    expect(total).toBeCloseTo((3 * size * 2) / 3, 0);
    const merged = m.get('nodejs_ksm_buffer_merged_bytes')!.metrics;
    expect(merged.reduce((sum, sample) => sum + Number(sample.value), 0)).toBe(3 * size);
    for (const b of buffers) b.fill(0);
  });
});
