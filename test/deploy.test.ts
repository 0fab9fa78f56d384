/**
 * deploy/: the Prometheus rules checked and unit-tested by promtool, the
 * Kubernetes manifests and the systemd unit read back with a YAML parser,
 * the Grafana dashboard's shape, and the capabilities the DaemonSet and the
 * unit grant tried for real: which of them read another user's process, and
 * which mode (estimated or exact) each set gives.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

import type { StatusJson } from '../lib/index.js';
import { BIN } from './helpers/cli.js';
import { ROOT, requireKsm, untilKsm, rawKsmStat, type Holder } from './helpers/ksm.js';
import { packageForNobody } from './helpers/nobody.js';
import { requireTool } from './helpers/tools.js';

const DEPLOY = path.join(ROOT, 'deploy');

function run(command: string, args: string[], cwd = ROOT): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

function manifests(file: string): Array<Record<string, any>> {
  const docs = parseAllDocuments(fs.readFileSync(path.join(DEPLOY, 'kubernetes', file), 'utf8'));
  for (const doc of docs) expect(doc.errors, file).toEqual([]);
  return docs.map((doc) => doc.toJS() as Record<string, any>);
}

describe('deploy/prometheus', () => {
  it('promtool check rules: the rules file is valid', async (ctx) => {
    if (!requireTool(ctx, 'promtool', 'prometheus')) return;
    const result = await run('promtool', ['check', 'rules', path.join(DEPLOY, 'prometheus', 'node-ksm.rules.yml')]);
    expect(result.stdout + result.stderr).toMatch(/SUCCESS: 9 rules found/);
    expect(result.code).toBe(0);
  });

  it('promtool test rules: recorded values and alerts as the tests expect', async (ctx) => {
    if (!requireTool(ctx, 'promtool', 'prometheus')) return;
    const result = await run('promtool', ['test', 'rules', 'node-ksm.rules.test.yml'], path.join(DEPLOY, 'prometheus'));
    expect(result.stdout + result.stderr).toMatch(/SUCCESS/);
    expect(result.code).toBe(0);
  });
});

describe('deploy/kubernetes and deploy/systemd', () => {
  it('the DaemonSet: host pids, root with only DAC_READ_SEARCH and SYS_PTRACE, TLS and auth from the web config', () => {
    const [ds] = manifests('daemonset.yaml');
    expect(ds).toMatchObject({ apiVersion: 'apps/v1', kind: 'DaemonSet' });
    const spec = ds!.spec.template.spec;
    expect(spec.hostPID).toBe(true);
    const [container] = spec.containers;
    expect(container.securityContext).toMatchObject({ runAsUser: 0, privileged: false, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true });
    expect(container.securityContext.capabilities).toEqual({ drop: ['ALL'], add: ['DAC_READ_SEARCH', 'SYS_PTRACE'] });
    expect(container.args).toEqual(expect.arrayContaining(['exporter', '--host=0.0.0.0', '--web.config.file=/etc/node-ksm/web-config.yml']));
    expect(container.volumeMounts[0].mountPath).toBe('/etc/node-ksm');
    const port = container.ports[0];
    const [service] = manifests('service.yaml');
    const [monitor] = manifests('servicemonitor.yaml');
    expect(service!.spec.clusterIP).toBe('None');
    expect(service!.spec.ports[0]).toMatchObject({ name: port.name, targetPort: port.name });
    expect(container.args).toContain(`--port=${port.containerPort}`);
    expect(monitor).toMatchObject({ apiVersion: 'monitoring.coreos.com/v1', kind: 'ServiceMonitor' });
    expect(monitor!.spec.endpoints[0]).toMatchObject({ port: port.name, scheme: 'https' });
    expect(monitor!.spec.selector.matchLabels).toEqual(service!.metadata.labels);
    expect(ds!.spec.selector.matchLabels).toEqual(service!.spec.selector);
  });

  it('the systemd unit bounds the same capabilities and keeps /proc visible; the drop-in sets MemoryKSM', () => {
    const unit = fs.readFileSync(path.join(DEPLOY, 'systemd', 'node-ksm-exporter.service'), 'utf8');
    expect(unit).toMatch(/^CapabilityBoundingSet=CAP_DAC_READ_SEARCH CAP_SYS_PTRACE$/m);
    expect(unit).toMatch(/^ExecStart=\S+ exporter --host=127\.0\.0\.1 /m);
    expect(unit).toMatch(/^ProtectProc=default$/m);
    expect(fs.readFileSync(path.join(DEPLOY, 'systemd', 'memory-ksm.conf'), 'utf8')).toMatch(/^\[Service\]\nMemoryKSM=yes$/m);
  });
});

describe('deploy/grafana', () => {
  it('the dashboard: a datasource and an instance variable, every panel with PromQL targets', () => {
    const dashboard = JSON.parse(fs.readFileSync(path.join(DEPLOY, 'grafana', 'node-ksm.json'), 'utf8'));
    expect(dashboard.uid).toBe('node-ksm');
    expect(dashboard.templating.list.map((v: { name: string }) => v.name)).toEqual(['datasource', 'instance']);
    expect(dashboard.panels.length).toBeGreaterThanOrEqual(8);
    for (const panel of dashboard.panels) {
      expect(panel.targets.length, panel.title).toBeGreaterThan(0);
      for (const target of panel.targets) expect(target.expr, panel.title).toMatch(/ksm_/);
    }
    const exprs = dashboard.panels.flatMap((p: { targets: Array<{ expr: string }> }) => p.targets.map((t) => t.expr)).join('\n');
    for (const needed of ['ksm_saved_bytes', 'pod_uid:ksm_cgroup_saved_bytes:sum', 'kube_pod_info', 'instance_unit:ksm_cgroup_saved_bytes:sum', 'ksm_full_scan_seconds', 'instance:ksm_ksmd_cpu:rate5m']) {
      expect(exprs).toContain(needed);
    }
  });
});

describe('the capabilities the deployments grant, tried for real', () => {
  let holder: Holder | undefined;
  afterEach(async () => {
    await holder?.kill();
    holder = undefined;
  });

  it('as root with only DAC_READ_SEARCH + SYS_PTRACE: another user\'s process, estimated; with SYS_ADMIN: exact; less: unreadable', async (ctx) => {
    requireKsm(ctx);
    if (!requireTool(ctx, 'setpriv', 'util-linux')) return;
    // A merging process of another user (nobody), started through setpriv,
    // from where that user can read the package.
    const pkg = packageForNobody(ctx);
    const { spawn } = await import('node:child_process');
    const child = spawn('setpriv', [`--reuid=${pkg.as.uid}`, `--regid=${pkg.as.gid}`, '--clear-groups', process.execPath, path.join(pkg.fixtures, 'twin-holder.cjs'), String(Math.floor(Math.random() * 1e9))], {
      cwd: pkg.as.cwd,
      env: pkg.env,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    holder = {
      child,
      pid: child.pid!,
      send: () => Promise.reject(new Error('no ipc')),
      kill: async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        await exited;
      },
    };
    await new Promise<void>((resolve, reject) => {
      child.stdout!.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`twin-holder.cjs as nobody exited (${code})`)));
    });
    const pid = child.pid!;
    await untilKsm(() => fs.existsSync(`/proc/${pid}/ksm_stat`) && Number(rawKsmStat(pid).ksm_merging_pages ?? 0) >= 1024, 'the nobody holder merges with itself');

    const status = async (caps: string[], extra: string[] = []): Promise<{ row: StatusJson['processes'][number] | undefined; unreadable: string | undefined }> => {
      const set = ['-all', ...caps.map((c) => `+${c}`)].join(',');
      const result = await run('setpriv', [`--inh-caps=${set}`, `--ambient-caps=${set}`, `--bounding-set=${set}`, process.execPath, BIN, 'status', '--json', ...extra]);
      expect(result.code, result.stderr).toBe(0);
      const json = JSON.parse(result.stdout) as StatusJson;
      return { row: json.processes.find((p) => p.pid === pid), unreadable: json.unreadable.find((u) => u.pid === pid)?.code };
    };
    expect(await status([])).toMatchObject({ row: undefined, unreadable: 'EACCES' });
    expect(await status(['dac_read_search'])).toMatchObject({ row: { savedBytes: null }, unreadable: 'EACCES' });
    const estimated = await status(['dac_read_search', 'sys_ptrace']);
    expect(estimated.unreadable).toBeUndefined();
    expect(estimated.row).toMatchObject({ savedExact: false });
    expect(estimated.row!.savedBytes).toBeGreaterThan(0);
    expect(await status(['dac_read_search', 'sys_ptrace'], ['--exact'])).toMatchObject({ row: { savedBytes: null }, unreadable: 'EPERM' });
    const exact = await status(['dac_read_search', 'sys_ptrace', 'sys_admin'], ['--exact']);
    expect(exact.unreadable).toBeUndefined();
    expect(exact.row).toMatchObject({ savedExact: true });
    expect(exact.row!.savedBytes).toBeGreaterThan(0);
  });
});
