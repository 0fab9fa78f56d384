/**
 * `node-ksm top` in a real terminal: test/fixtures/pty-run.py runs it in a
 * pseudo-terminal of its own (no terminal multiplexer, its version or its
 * user's configuration); the test reads the screen after a refresh, presses
 * q or Ctrl-C, and checks that top exited 0 and gave the terminal back:
 * canonical mode and echo on again, the alternate screen left.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

import { BIN, ksmStatText, makeKsmTree } from './helpers/cli.js';
import { FIXTURES } from './helpers/ksm.js';

const ENTER_ALTERNATE = '\x1b[?1049h';
const LEAVE_ALTERNATE = '\x1b[?1049l';
const HIDE_CURSOR = '\x1b[?25l';
const SHOW_CURSOR = '\x1b[?25h';
const HOME_CLEAR = '\x1b[H\x1b[2J';

interface Exit {
  code: number | null;
  signal: string | null;
  canonical: boolean;
  echo: boolean;
}

const drivers: ChildProcess[] = [];
const dirs: string[] = [];
afterEach(() => {
  // The terminal goes with the driver: top gets SIGHUP.
  for (const driver of drivers.splice(0)) if (driver.exitCode === null && driver.signalCode === null) driver.kill('SIGKILL');
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

/** `node-ksm ...args` in a 160 x 40 terminal. */
function inTerminal(args: string[]): { output: () => string; press: (keys: string) => void; exited: Promise<Exit> } {
  const driver = spawn('python3', [path.join(FIXTURES, 'pty-run.py'), '40', '160', '30', process.execPath, BIN, ...args], {
    stdio: ['pipe', 'pipe', 'inherit', 'pipe'],
    env: { ...process.env, TERM: 'xterm-256color' },
  });
  drivers.push(driver);
  let output = '';
  driver.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  let report = '';
  const results = driver.stdio[3] as NodeJS.ReadableStream;
  results.setEncoding('utf8').on('data', (chunk: string) => (report += chunk));
  const exited = new Promise<Exit>((resolve, reject) => {
    driver.once('error', reject);
    driver.once('close', (code) => {
      if (code === 0 && report.trim() !== '') resolve(JSON.parse(report) as Exit);
      else reject(new Error(`pty-run.py exited ${code}; output:\n${output}`));
    });
  });
  return { output: () => output, press: (keys) => driver.stdin!.write(keys), exited };
}

/** A frame's text as the terminal shows it: escape sequences and carriage returns out. */
function text(frame: string): string {
  // eslint-disable-next-line no-control-regex
  return frame.replace(/\x1b\[[0-?]*[ -/]*[@-~]/g, '').replace(/\r/g, '');
}

async function until<T>(what: string, fn: () => T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = fn();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('node-ksm top in a terminal', () => {
  for (const [name, key] of [['q', 'q'], ['Ctrl-C', '\x03']] as const) {
    it(`refreshes, and ${name} quits and restores the terminal`, async () => {
      const root = makeKsmTree({}, [
        { pid: 100, comm: 'api-worker', ksmStat: ksmStatText({ rmap: 5000, zero: 0, merging: 3000, profit: 1, mergeAny: true, mergeable: true }) },
      ]);
      dirs.push(root);
      const top = inTerminal(['--root', root, 'top', '--interval', '200ms']);

      // A whole frame (another one began after it) with rates: the second refresh on.
      const screen = await until('a refresh with rates', () => {
        const frames = top.output().split(HOME_CLEAR).slice(1, -1).map(text);
        return frames.find((frame) => frame.includes('pages/s visited'));
      });
      expect(top.output().indexOf(ENTER_ALTERNATE)).toBeGreaterThanOrEqual(0);
      expect(top.output().indexOf(ENTER_ALTERNATE)).toBeLessThan(top.output().indexOf(HOME_CLEAR));
      expect(screen).toContain('node-ksm top');
      expect(screen).toContain('q to quit');
      expect(screen).toMatch(/KSM\s+running/);
      expect(screen).toMatch(/100\s+api-worker/);
      expect(screen).toContain('one full scan of 15,000 pages takes 300 ms');

      top.press(key);
      const exit = await top.exited;
      expect({ code: exit.code, signal: exit.signal }).toEqual({ code: 0, signal: null });
      // Raw mode undone: the line discipline echoes and is canonical again
      // (libuv also resets the mode at a clean exit; the screen checks below are ours alone).
      expect({ canonical: exit.canonical, echo: exit.echo }).toEqual({ canonical: true, echo: true });
      // The alternate screen was left and the cursor shown again, and
      // nothing of top's was drawn on the main screen after.
      const output = top.output();
      const left = output.lastIndexOf(LEAVE_ALTERNATE);
      expect(left).toBeGreaterThan(output.lastIndexOf(ENTER_ALTERNATE));
      expect(output.lastIndexOf(SHOW_CURSOR)).toBeGreaterThan(output.lastIndexOf(HIDE_CURSOR));
      expect(text(output.slice(left))).not.toContain('q to quit');
    });
  }
});
