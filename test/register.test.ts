/**
 * node-ksm/register on an application that never loads node-ksm: through
 * --require, --import and NODE_OPTIONS, under `cluster` with 4 workers and
 * under pm2's cluster mode with 4 instances. Every process must end up with
 * `ksm_merge_any: yes` (read raw from its ksm_stat) and the table the
 * workers hold in common must merge (ksm_merging_pages, read raw).
 *
 * The application sits in a directory of its own with node-ksm installed as
 * a link to this checkout, so `node-ksm/register` resolves through the
 * package's `exports` as it does for a user.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { FIXTURES, PAGE, ROOT, rawKsmStat, requireKsm, untilKsm } from './helpers/ksm.js';

const TABLE_BYTES = 16 * 1024 * 1024;
const TABLE_PAGES = TABLE_BYTES / PAGE;

interface AppLine {
  pid: number;
  ppid: number;
  worker: boolean;
  registered: string | null;
  tableBytes: number;
}

let app: string;
const started: ChildProcess[] = [];

beforeAll(() => {
  app = fs.mkdtempSync(path.join(os.tmpdir(), 'node-ksm-register-'));
  fs.mkdirSync(path.join(app, 'node_modules'));
  fs.symlinkSync(ROOT, path.join(app, 'node_modules', 'node-ksm'));
  fs.copyFileSync(path.join(FIXTURES, 'register-app.cjs'), path.join(app, 'app.cjs'));
});

afterAll(async () => {
  for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await Promise.all(started.map((child) => (child.exitCode === null && child.signalCode === null ? new Promise((r) => child.once('exit', r)) : undefined)));
  if (app) fs.rmSync(app, { recursive: true, force: true });
});

/** Starts the app and resolves with its first `count` JSON lines (one per process holding the table). */
function startApp(flags: string[], env: NodeJS.ProcessEnv, count: number): Promise<{ child: ChildProcess; lines: AppLine[]; stderr: () => string }> {
  const child = spawn(process.execPath, [...flags, 'app.cjs'], {
    cwd: app,
    env: { ...process.env, APP_TABLE_BYTES: String(TABLE_BYTES), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  started.push(child);
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    const lines: AppLine[] = [];
    let buffered = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        lines.push(JSON.parse(buffered.slice(0, newline)) as AppLine);
        buffered = buffered.slice(newline + 1);
      }
      if (lines.length >= count) resolve({ child, lines, stderr: () => stderr });
    });
    child.once('exit', (code, signal) => reject(new Error(`app exited (${code ?? signal}): ${stderr}`)));
  });
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

/** Every process shares the table: each maps nearly all of its pages to KSM pages. */
async function expectTableMerged(pids: number[]): Promise<void> {
  const merged = (pid: number): number => Number(rawKsmStat(pid).ksm_merging_pages ?? 0);
  await untilKsm(() => pids.every((pid) => merged(pid) >= 0.9 * TABLE_PAGES), `the ${pids.length} processes' common table merged`);
  for (const pid of pids) expect(merged(pid), `pid ${pid}`).toBeGreaterThanOrEqual(0.9 * TABLE_PAGES);
}

describe('node-ksm/register', () => {
  it.for([
    ['--require', ['--require', 'node-ksm/register'], {}],
    ['--import', ['--import', 'node-ksm/register'], {}],
    ['NODE_OPTIONS=--require', [], { NODE_OPTIONS: '--require node-ksm/register' }],
    ['NODE_OPTIONS=--import', [], { NODE_OPTIONS: '--import node-ksm/register' }],
  ] as const)('%s opts an unmodified application in', async ([, flags, env], ctx) => {
    requireKsm(ctx);
    expect(rawKsmStat('self')['ksm_merge_any'], 'the test process itself does not merge').toBe('no');
    const { child, lines } = await startApp([...flags], env, 1);
    try {
      expect(lines[0]!.registered).toBe('enabled');
      expect(rawKsmStat(lines[0]!.pid)['ksm_merge_any']).toBe('yes');
    } finally {
      await stop(child);
    }
  });

  it('NODE_KSM_REGISTER=off leaves the process as it was', async (ctx) => {
    requireKsm(ctx);
    expect(rawKsmStat('self')['ksm_merge_any']).toBe('no');
    const { child, lines } = await startApp(['--require', 'node-ksm/register'], { NODE_KSM_REGISTER: 'off' }, 1);
    try {
      expect(lines[0]!.registered).toBe('off');
      expect(rawKsmStat(lines[0]!.pid)['ksm_merge_any']).toBe('no');
    } finally {
      await stop(child);
    }
  });

  it('cluster with 4 workers: each worker registers itself and their common table merges', async (ctx) => {
    requireKsm(ctx);
    const { child, lines } = await startApp(['--require', 'node-ksm/register'], { APP_WORKERS: '4' }, 4);
    try {
      expect(rawKsmStat(child.pid!)['ksm_merge_any'], 'the primary').toBe('yes');
      const pids = lines.map((line) => line.pid);
      expect(new Set(pids).size).toBe(4);
      for (const line of lines) {
        expect(line.worker).toBe(true);
        expect(line.ppid).toBe(child.pid);
        // Loaded again in the worker (the primary's execArgv): the flag set there, not only inherited.
        expect(line.registered).toBe('enabled');
        expect(rawKsmStat(line.pid)['ksm_merge_any']).toBe('yes');
      }
      await expectTableMerged(pids);
    } finally {
      await stop(child);
    }
  });
});

describe('node-ksm/register under pm2', () => {
  let home: string;
  let reports: string;
  const pm2 = path.join(ROOT, 'node_modules', 'pm2', 'bin', 'pm2');
  const pm2Env = (): NodeJS.ProcessEnv => ({ ...process.env, PM2_HOME: home, APP_REPORT_DIR: reports, APP_TABLE_BYTES: String(TABLE_BYTES) });
  const runPm2 = (args: string[]): Promise<string> =>
    new Promise((resolve, reject) => {
      execFile(process.execPath, [pm2, ...args], { cwd: app, env: pm2Env(), maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
        if (error) reject(new Error(`pm2 ${args.join(' ')}: ${error.message}\n${stdout}\n${stderr}`));
        else resolve(stdout);
      });
    });

  beforeAll(() => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), 'node-ksm-pm2-home-'));
    reports = fs.mkdtempSync(path.join(os.tmpdir(), 'node-ksm-pm2-reports-'));
  });

  afterAll(async () => {
    // Its daemon never outlives the test: killed with its own PM2_HOME.
    if (home) await runPm2(['kill']).catch(() => undefined);
    for (const dir of [home, reports]) if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('cluster mode with 4 instances: every instance merges-any and their common table merges', async (ctx) => {
    requireKsm(ctx);
    await runPm2(['start', 'app.cjs', '--name', 'ksm-app', '-i', '4', '--node-args=--require node-ksm/register']);
    const deadline = Date.now() + 60_000;
    while (fs.readdirSync(reports).length < 4) {
      if (Date.now() > deadline) throw new Error(`pm2 started ${fs.readdirSync(reports).length} of 4 instances`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const lines = fs.readdirSync(reports).map((file) => JSON.parse(fs.readFileSync(path.join(reports, file), 'utf8')) as AppLine);
    const listed = (JSON.parse(await runPm2(['jlist'])) as Array<{ pid: number; pm2_env: { exec_mode: string } }>).filter((p) => p.pid > 0);
    expect(listed.map((p) => p.pm2_env.exec_mode)).toEqual(['cluster_mode', 'cluster_mode', 'cluster_mode', 'cluster_mode']);
    expect(lines.map((l) => l.pid).sort()).toEqual(listed.map((p) => p.pid).sort());
    for (const line of lines) {
      expect(line.worker, 'a cluster worker of the pm2 daemon').toBe(true);
      expect(line.registered).toBe('enabled');
      expect(rawKsmStat(line.pid)['ksm_merge_any']).toBe('yes');
    }
    await expectTableMerged(lines.map((l) => l.pid));
  });
});
