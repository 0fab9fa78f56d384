/**
 * Terminal escape injection: a process named "\x1b]2;PWN\x07\x1b[2J" (anyone
 * may set that with PR_SET_NAME), mapping a file whose name is that string,
 * must come out escaped in every text output that shows it (status, top,
 * regions, estimate, doctor), and exact in --json (JSON.stringify escapes
 * control characters itself).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { printable } from '../../lib/cli/output.js';
import { runCli } from '../helpers/cli.js';
import { FIXTURES, rawKsmStat, requireKsm } from '../helpers/ksm.js';

// OSC 2 (set the window title) ended by BEL, then ED 2 (clear the screen): 12 bytes, within comm's 15.
const HOSTILE = '\x1b]2;PWN\x07\x1b[2J';
const ESCAPED = '\\x1b]2;PWN\\x07\\x1b[2J';

/** Controls but newline in `text`: NO_COLOR and a pipe mean no escapes of ours either. */
function controls(text: string): string[] {
  // eslint-disable-next-line no-control-regex
  return text.match(/[\x00-\x09\x0b-\x1f\x7f-\x9f]/g) ?? [];
}

function noControls(text: string): void {
  expect(controls(text)).toEqual([]);
}

/** Runs each command; per command: exit code, stderr, raw controls on stdout, and whether `expected` is there. */
async function shown(commands: string[][], expected: string): Promise<Array<Record<string, unknown>>> {
  const out = [];
  for (const args of commands) {
    const run = await runCli(args);
    out.push({ args: args.join(' '), code: run.code, stderr: run.stderr, controls: controls(run.stdout), escaped: run.stdout.includes(expected) });
  }
  return out;
}

let child: ChildProcess | undefined;
let pid = 0;
let dir = '';
let file = '';

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'node-ksm-escape-'));
  file = path.join(dir, `${HOSTILE}.bin`);
  child = spawn('python3', [path.join(FIXTURES, 'hostile-names.py'), HOSTILE, file], { stdio: ['pipe', 'pipe', 'inherit'] });
  pid = await new Promise<number>((resolve, reject) => {
    let out = '';
    child!.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      const m = /ready (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child!.once('exit', (code) => reject(new Error(`hostile-names.py exited (${code}) before ready`)));
  });
});

afterAll(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((resolve) => child!.once('exit', resolve));
    child.stdin!.end();
    await exited;
  }
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('printable()', () => {
  it('escapes C0, DEL, C1 and the Unicode reordering controls; leaves text, backslashes and non-ASCII alone', () => {
    expect(printable(HOSTILE)).toBe(ESCAPED);
    expect(printable('a\tb\nc\rd\x7f\x9b\u202e\u2066\u2028')).toBe('a\\x09b\\x0ac\\x0dd\\x7f\\x9b\\u202e\\u2066\\u2028');
    expect(printable('/usr/lib/x86_64-linux-gnu/libc.so.6 (deleted) \\x2d ünïcødé 日本')).toBe('/usr/lib/x86_64-linux-gnu/libc.so.6 (deleted) \\x2d ünïcødé 日本');
  });
});

describe('another process\'s strings in the CLI', () => {
  it('the premise: the kernel hands out the comm and the mapping path raw', (ctx) => {
    requireKsm(ctx);
    expect(fs.readFileSync(`/proc/${pid}/comm`, 'utf8')).toBe(`${HOSTILE}\n`);
    expect(fs.readFileSync(`/proc/${pid}/maps`, 'utf8')).toContain(file);
  });

  it('status and top print the comm escaped; --json keeps it exact', async (ctx) => {
    requireKsm(ctx);
    // Listed once some of its pages merged (read raw).
    const deadline = Date.now() + 90_000;
    while (Number(rawKsmStat(pid).ksm_merging_pages ?? 0) === 0) {
      if (Date.now() > deadline) throw new Error('the fixture never merged');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const commands = [['status'], ['status', '--no-fair-share'], ['top', '-n', '1', '-i', '100ms']];
    expect(await shown(commands, ESCAPED)).toEqual(
      commands.map((args) => ({ args: args.join(' '), code: 0, stderr: '', controls: [], escaped: true })),
    );
    const json = await runCli(['status', '--json']);
    noControls(json.stdout);
    const listed = (JSON.parse(json.stdout) as { processes: Array<{ pid: number; comm: string }> }).processes.find((p) => p.pid === pid);
    expect(listed?.comm).toBe(HOSTILE);
    const top = await runCli(['top', '-n', '1', '--json']);
    const topListed = (JSON.parse(top.stdout) as { processes: Array<{ pid: number; comm: string }> }).processes.find((p) => p.pid === pid);
    expect(topListed?.comm).toBe(HOSTILE);
  });

  it('regions, estimate and doctor print the mapping path escaped; --json keeps it exact', async (ctx) => {
    requireKsm(ctx);
    const escapedFile = file.replace(HOSTILE, ESCAPED);
    const commands = [['regions', String(pid)], ['estimate', String(pid), '--all-vmas'], ['doctor', '--pid', String(pid)]];
    // doctor exits 1 on an error finding; what it prints is the point here.
    const codes = (await shown(commands, escapedFile)).map(({ code: _code, ...rest }) => rest);
    expect(codes).toEqual(commands.map((args) => ({ args: args.join(' '), stderr: '', controls: [], escaped: true })));
    const regions = await runCli(['regions', String(pid), '--json']);
    noControls(regions.stdout);
    const paths = (JSON.parse(regions.stdout) as { report: { regions: Array<{ pathname: string }> } }).report.regions.map((r) => r.pathname);
    expect(paths).toContain(file);
    const estimate = await runCli(['estimate', String(pid), '--all-vmas', '--json']);
    const vmas = (JSON.parse(estimate.stdout) as { report: { processes: Array<{ vmas: Array<{ pathname: string }> }> } }).report.processes[0]!.vmas;
    expect(vmas.map((v) => v.pathname)).toContain(file);
    const doctor = await runCli(['doctor', '--pid', String(pid), '--json']);
    expect(doctor.stdout).toContain(JSON.stringify(file).slice(1, -1));
  });

  it('an error message quoting a hostile path is escaped on stderr', async () => {
    const run = await runCli(['--root', path.join(dir, HOSTILE), 'status']);
    expect(run.code).toBe(1);
    noControls(run.stderr);
    expect(run.stderr).toContain(ESCAPED);
  });
});
