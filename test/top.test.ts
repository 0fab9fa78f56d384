/**
 * `node-ksm top` in a real terminal: tmux runs it in a pty; the test reads
 * the screen after a refresh, presses q, and checks that it exited 0 and
 * gave the terminal back (alternate screen left, raw mode off).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

import { BIN, ksmStatText, makeKsmTree } from './helpers/cli.js';

function hasTmux(): boolean {
  try {
    execFileSync('tmux', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const sessions: string[] = [];
const dirs: string[] = [];
afterEach(() => {
  for (const session of sessions.splice(0)) {
    try {
      execFileSync('tmux', ['kill-session', '-t', session], { stdio: 'ignore' });
    } catch {
      /* ended already */
    }
  }
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

const tmux = (...args: string[]): string => execFileSync('tmux', args, { encoding: 'utf8' });

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
  for (const key of ['q', 'C-c']) {
    it(`refreshes, and ${key} quits and restores the terminal`, async (ctx) => {
      if (!hasTmux()) {
        if (process.env.NODE_KSM_REQUIRE === '1') throw new Error('tmux is needed for the top test (apt-get install tmux)');
        ctx.skip('tmux is not installed');
      }
      const root = makeKsmTree({}, [
        { pid: 100, comm: 'api-worker', ksmStat: ksmStatText({ rmap: 5000, zero: 0, merging: 3000, profit: 1, mergeAny: true, mergeable: true }) },
      ]);
      dirs.push(root);
      const out = fs.mkdtempSync(path.join(os.tmpdir(), 'node-ksm-top-'));
      dirs.push(out);
      const session = `node-ksm-top-${process.pid}-${key.replace(/\W/g, '')}`;
      sessions.push(session);
      // After top exits, the same shell records its exit code and the tty's
      // modes (renamed into place: the file appears only once complete).
      const script =
        `${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} --root ${JSON.stringify(root)} top --interval 200ms; ` +
        `echo $? > ${out}/rc; stty -a > ${out}/stty.part; mv ${out}/stty.part ${out}/stty; sleep 30`;
      tmux('new-session', '-d', '-s', session, '-x', '160', '-y', '40', 'sh', '-c', script);

      // Two refreshes: the second has measured rates.
      const screen = await until('a refresh with rates', () => {
        const text = tmux('capture-pane', '-p', '-t', session);
        return text.includes('pages/s visited') ? text : undefined;
      });
      expect(screen).toContain('node-ksm top');
      expect(screen).toContain('q to quit');
      expect(screen).toMatch(/KSM\s+running/);
      expect(screen).toMatch(/100\s+api-worker/);
      expect(screen).toContain('one full scan of 15,000 pages takes 300 ms');

      tmux('send-keys', '-t', session, key);
      const rc = await until('top to exit', () => (fs.existsSync(`${out}/stty`) ? fs.readFileSync(`${out}/rc`, 'utf8').trim() : undefined));
      expect(rc).toBe('0');
      // Raw mode undone: the line discipline echoes and is canonical again
      // (libuv also resets the mode at a clean exit; the screen check below is ours alone).
      const stty = fs.readFileSync(`${out}/stty`, 'utf8');
      expect(stty).toMatch(/(^|\s)icanon(\s|$)/);
      expect(stty).toMatch(/(^|\s)echo(\s|$)/);
      // The alternate screen was left: top's screen is gone from the pane.
      const after = tmux('capture-pane', '-p', '-t', session);
      expect(after).not.toContain('q to quit');
      expect(tmux('display-message', '-p', '-t', session, '#{alternate_on}').trim()).toBe('0');
    });
  }
});
