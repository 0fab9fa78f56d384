/**
 * A real Prometheus server (Debian's `prometheus`) scraping `node-ksm
 * exporter` on loopback, while processes in real cgroups, shaped like two
 * Kubernetes pods (kubelet's systemd driver, containerd) and a systemd unit,
 * hold the same mergeable memory. Every dashboard and recording-rule
 * expression is evaluated through Prometheus' HTTP API and must return
 * series; each group's saving in Prometheus agrees with the SDK's exact
 * per-group figure within 1%, and the groups add up to pages_sharing x page.
 *
 * The cgroups are made under the cgroup v2 hierarchy only (never the v1
 * memory controller's) and removed afterwards, also on failure.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';

import { profitByGroup, type StatusJson } from '../lib/index.js';
import { runCli } from './helpers/cli.js';
import { startExporter } from './helpers/exporter.js';
import { PAGE, ROOT, rawKsmStat, needs, requireKsm, startFixture, untilKsm, type Holder } from './helpers/ksm.js';
import { requireTool } from './helpers/tools.js';

const RUN = `node-ksm-test-${process.pid}-${randomBytes(3).toString('hex')}`;
const uuid = (): string => {
  const h = randomBytes(16).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
};
const POD_A = uuid();
const POD_B = uuid();
const UNIT = `${RUN}.service`;
const id = (): string => randomBytes(32).toString('hex');

/** The cgroup v2 mount, read from mountinfo independently of the code under test. */
function cgroup2Mount(): string | undefined {
  const line = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => / - cgroup2 /.test(l));
  return line?.split(' ')[4];
}

const made: string[] = [];
const children: ChildProcess[] = [];
const holders: Holder[] = [];
const servers: http.Server[] = [];
let tmp: string | undefined;

afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await Promise.all(holders.map((h) => h.kill()));
  for (const server of servers) server.close();
  // Deepest first; the processes in them are gone, so each rmdir succeeds.
  for (const dir of made.reverse()) {
    for (let attempt = 0; attempt < 50 && fs.existsSync(dir); attempt++) {
      try {
        fs.rmdirSync(dir);
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }
  if (tmp !== undefined) fs.rmSync(tmp, { recursive: true, force: true });
});

function makeCgroup(mount: string, relative: string): string {
  let dir = mount;
  for (const part of relative.split('/').filter(Boolean)) {
    dir = path.join(dir, part);
    if (!fs.existsSync(dir)) {
      fs.mkdirSync(dir);
      made.push(dir);
    }
  }
  return dir;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

interface Series {
  metric: Record<string, string>;
  value: [number, string];
}

async function query(base: string, expr: string): Promise<Series[]> {
  const response = await fetch(`${base}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const body = (await response.json()) as { status: string; error?: string; data?: { resultType: string; result: Series[] } };
  expect(body.status, `${expr}: ${body.error ?? ''}`).toBe('success');
  return body.data!.result;
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

const within = (a: number, b: number, fraction: number): boolean => Math.abs(a - b) <= fraction * Math.max(Math.abs(a), Math.abs(b));

describe('a real Prometheus scraping node-ksm exporter (cgroups shaped like two pods and a unit)', () => {
  it('every dashboard and rule expression returns series; per-group savings agree with the SDK within 1% and sum to pages_sharing x page', async (ctx) => {
    requireKsm(ctx);
    if (!requireTool(ctx, 'prometheus', 'prometheus') || !requireTool(ctx, 'promtool', 'prometheus')) return;
    const mount = cgroup2Mount();
    needs(ctx, mount !== undefined, 'a cgroup v2 hierarchy (a cgroup2 mount in /proc/self/mountinfo) to make cgroups in');

    // Two pods (one with two containers), one unit, under a parent of this run.
    const base = `/${RUN}`;
    const podA = `${base}/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${POD_A.replace(/-/g, '_')}.slice`;
    const podB = `${base}/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${POD_B.replace(/-/g, '_')}.slice`;
    const leaves = [`${podA}/cri-containerd-${id()}.scope`, `${podA}/cri-containerd-${id()}.scope`, `${podB}/cri-containerd-${id()}.scope`, `${base}/system.slice/${UNIT}`];
    const dirs = leaves.map((leaf) => makeCgroup(mount, leaf));

    // Four holders of the same 8 MiB: every KSM page of it mapped four times.
    const spec = JSON.stringify({ mode: 'alloc', size: 8 * 1024 * 1024, seed: Math.floor(Math.random() * 2 ** 31) });
    for (const dir of dirs) {
      const holder = await startFixture('holder.cjs', [spec]);
      holders.push(holder);
      fs.writeFileSync(path.join(dir, 'cgroup.procs'), String(holder.pid));
    }
    for (const [i, holder] of holders.entries()) {
      expect(fs.readFileSync(`/proc/${holder.pid}/cgroup`, 'utf8')).toContain(`0::${leaves[i]}`);
    }
    await untilKsm(() => holders.every((h) => Number(rawKsmStat(h.pid).ksm_merging_pages) >= 2048), 'the four holders merge', 12);

    // The exporter, a stand-in kube-state-metrics that knows pod A only, and Prometheus.
    const exporter = await startExporter();
    children.push(exporter.child);
    const exporterUrl = new URL(exporter.url);
    const ksmServer = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      res.end(`# HELP kube_pod_info Information about pod.\n# TYPE kube_pod_info gauge\nkube_pod_info{namespace="shop",pod="api-0",uid="${POD_A}",node="test",created_by_kind="StatefulSet",created_by_name="api"} 1\n`);
    });
    servers.push(ksmServer);
    await new Promise<void>((resolve) => ksmServer.listen(0, '127.0.0.1', () => resolve()));
    const ksmPort = (ksmServer.address() as net.AddressInfo).port;

    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'node-ksm-prom-'));
    const rules = path.join(ROOT, 'deploy', 'prometheus', 'node-ksm.rules.yml');
    fs.writeFileSync(
      path.join(tmp, 'prometheus.yml'),
      [
        'global: { scrape_interval: 1s, evaluation_interval: 1s, scrape_timeout: 1s }',
        `rule_files: [${JSON.stringify(rules)}]`,
        'scrape_configs:',
        `  - { job_name: node-ksm, static_configs: [{ targets: ["${exporterUrl.host}"] }] }`,
        `  - { job_name: kube-state-metrics, static_configs: [{ targets: ["127.0.0.1:${ksmPort}"] }] }`,
        '',
      ].join('\n'),
    );
    const port = await freePort();
    const prometheus = spawn(
      'prometheus',
      [`--config.file=${path.join(tmp, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(tmp, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    children.push(prometheus);
    let promLog = '';
    prometheus.stderr!.on('data', (chunk: Buffer) => (promLog += chunk.toString()));
    const api = `http://127.0.0.1:${port}`;
    await until('Prometheus to answer', async () => (await fetch(`${api}/-/ready`).catch(() => undefined))?.ok === true);
    await until('both targets to be scraped, five times', async () => {
      const up = await query(api, 'count_over_time(up[1m]) >= 5 and up == 1');
      return up.length === 2;
    });
    await until('the recording rules to be evaluated', async () => (await query(api, 'pod_uid:ksm_cgroup_saved_bytes:sum')).length >= 2);

    // Every expression of the dashboard and of the recording rules returns series.
    const dashboard = JSON.parse(fs.readFileSync(path.join(ROOT, 'deploy', 'grafana', 'node-ksm.json'), 'utf8')) as { panels: Array<{ title: string; targets: Array<{ expr: string }> }> };
    const exprs = dashboard.panels.flatMap((panel) => panel.targets.map((target) => ({ what: `dashboard "${panel.title}"`, expr: target.expr.replaceAll('$instance', '.+') })));
    const ruleFile = parseYaml(fs.readFileSync(rules, 'utf8')) as { groups: Array<{ rules: Array<{ record?: string; expr: string }> }> };
    for (const rule of ruleFile.groups.flatMap((g) => g.rules).filter((r) => r.record !== undefined)) {
      exprs.push({ what: `rule ${rule.record}`, expr: rule.expr }, { what: `recorded ${rule.record}`, expr: rule.record! });
    }
    for (const { what, expr } of exprs) {
      expect((await query(api, expr)).length, `${what}: ${expr}\n${promLog}`).toBeGreaterThan(0);
    }
    // The kube-state-metrics join names pod A; pod B, unknown to it, is listed by uid.
    const named = await query(api, dashboard.panels.find((p) => p.title.startsWith('Saved per pod'))!.targets[0]!.expr);
    expect(named.map((s) => `${s.metric.namespace}/${s.metric.pod}`)).toEqual(['shop/api-0']);

    // Prometheus against the SDK, read as close together as we can: steady merging, exact shares.
    const sdkPods = await profitByGroup({ by: 'pod', exact: true });
    const sdkUnits = await profitByGroup({ by: 'unit', exact: true });
    const promValue = async (expr: string): Promise<number> => {
      const result = await query(api, expr);
      expect(result, expr).toHaveLength(1);
      return Number(result[0]!.value[1]);
    };
    const figures: Record<string, { prometheus: number; sdk: number }> = {};
    for (const uid of [POD_A, POD_B]) {
      const sdk = sdkPods.groups.find((g) => g.kind === 'pod' && g.key === uid)!;
      figures[`pod ${uid}`] = { prometheus: await promValue(`pod_uid:ksm_cgroup_saved_bytes:sum{pod_uid="${uid}"}`), sdk: sdk.savedBytes };
    }
    figures[`unit ${UNIT}`] = {
      prometheus: await promValue(`sum(instance_unit:ksm_cgroup_saved_bytes:sum{unit="${UNIT}"})`),
      sdk: sdkUnits.groups.find((g) => g.kind === 'unit' && g.key === UNIT)!.savedBytes,
    };
    console.log('per-group saving, Prometheus vs SDK (bytes):', JSON.stringify(figures));
    for (const [group, { prometheus: p, sdk: s }] of Object.entries(figures)) {
      expect(within(p, s, 0.01), `${group}: Prometheus ${p} vs SDK ${s}`).toBe(true);
      // Three quarters of each holder's 8 MiB at least (their runtimes merge some more).
      expect(s, group).toBeGreaterThanOrEqual(group.startsWith(`pod ${POD_A}`) ? 12 * 1024 * 1024 * 0.99 : 6 * 1024 * 1024 * 0.99);
    }
    expect(sdkPods.groups.find((g) => g.key === POD_A)!.pids).toEqual(holders.slice(0, 2).map((h) => h.pid).sort((a, b) => a - b));

    // The groups add up to the machine's pages_sharing x page size: in Prometheus (one scrape) and in the SDK.
    const sum = await promValue('sum(ksm_cgroup_saved_bytes)');
    const sharing = await promValue(`ksm_pages_sharing * ${PAGE}`);
    console.log(`sum of groups ${sum} vs pages_sharing x page ${sharing} (Prometheus); SDK ${sdkPods.total.savedBytes} vs ${sdkPods.systemSavedBytes}`);
    expect(within(sum, sharing, 0.01), `Prometheus: sum ${sum} vs pages_sharing x page ${sharing}`).toBe(true);
    expect(within(sdkPods.total.savedBytes, sdkPods.systemSavedBytes!, 0.01)).toBe(true);

    // The CLI shows the same groups.
    const cli = JSON.parse((await runCli(['status', '--by', 'pod', '--exact', '--json'])).stdout) as StatusJson;
    const cliA = cli.groups!.find((g) => g.key === POD_A)!;
    expect(within(cliA.savedBytes!, figures[`pod ${POD_A}`]!.sdk, 0.01)).toBe(true);
  });
});
