/**
 * Reading the labels another process published (kernel/label-file.ts): the
 * file is trusted only when it is a plain file at one of the process's
 * uid's places, owned by that uid or root, and names the process's pid and
 * start time. The start time is read here from /proc/PID/stat itself
 * (helpers/ksm.ts rawStartTimeTicks()).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { labelDirs, readLabelFile } from '../lib/kernel/label-file.js';
import { resolveTarget } from '../lib/kernel/target.js';
import { labelFileText, rawStartTimeTicks } from './helpers/ksm.js';
import { needs } from './helpers/needs.js';

const uid = process.geteuid!();

function body(pid: number, ticks: number): string {
  return labelFileText(pid, ticks, [
    { start: 0x7f0000002000n, end: 0x7f0000003000n, label: 'second' },
    { start: 0x7f0000000000n, end: 0x7f0000001000n, label: 'first' },
  ]);
}

let child: ChildProcess;
let pid: number;
// The last of the places (under the temp dir): one any uid may create.
let dir: string;
let file: string;
let createdDir = false;

beforeAll(async () => {
  child = spawn('sleep', ['60'], { stdio: 'ignore' });
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  pid = child.pid!;
  dir = labelDirs(uid).at(-1)!;
  createdDir = !fs.existsSync(dir);
  fs.mkdirSync(dir, { recursive: true });
  file = path.join(dir, `${pid}.json`);
});

afterAll(() => {
  child?.kill('SIGKILL');
  if (file !== undefined) fs.rmSync(file, { force: true });
  fs.rmSync(`${file}.elsewhere`, { force: true });
  if (createdDir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('readLabelFile()', () => {
  it('reads a file naming the process and its start time, in address order, with or without the uid given', () => {
    fs.writeFileSync(file, body(pid, rawStartTimeTicks(pid)));
    const want = [
      { start: 0x7f0000000000n, end: 0x7f0000001000n, label: 'first' },
      { start: 0x7f0000002000n, end: 0x7f0000003000n, label: 'second' },
    ];
    expect(readLabelFile('/', pid)).toEqual(want);
    expect(readLabelFile('/', pid, uid)).toEqual(want);
  });

  it('gives none where there is no file, or it names another start time (an earlier process with the pid)', () => {
    fs.rmSync(file, { force: true });
    expect(readLabelFile('/', pid)).toEqual([]);
    fs.writeFileSync(file, body(pid, rawStartTimeTicks(pid) - 1));
    expect(readLabelFile('/', pid)).toEqual([]);
  });

  it('does not follow a symlink put at the place', () => {
    fs.rmSync(file, { force: true });
    fs.writeFileSync(`${file}.elsewhere`, body(pid, rawStartTimeTicks(pid)));
    fs.symlinkSync(`${file}.elsewhere`, file);
    expect(readLabelFile('/', pid)).toEqual([]);
  });

  it("does not trust a file another uid owns (neither the process's nor root)", (ctx) => {
    needs(ctx, uid === 0, 'root (to give the file to another uid)');
    fs.rmSync(file, { force: true });
    fs.writeFileSync(file, body(pid, rawStartTimeTicks(pid)));
    expect(readLabelFile('/', pid)).toHaveLength(2);
    fs.chownSync(file, 65534, 65534);
    expect(readLabelFile('/', pid)).toEqual([]);
  });

  it('reads nothing of a fixture root', () => {
    expect(readLabelFile('/nonexistent-root', pid)).toEqual([]);
  });
});

describe('resolveTarget() keeps the euid its status read gave', () => {
  it("a process's own; none for a thread id (a thread's credentials can differ)", async () => {
    expect(resolveTarget(pid, undefined).euid).toBe(uid);
    const node = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    try {
      await new Promise<void>((resolve, reject) => {
        node.once('spawn', resolve);
        node.once('error', reject);
      });
      // Node starts its platform threads at once; wait for one to be listed.
      let tid: number | undefined;
      for (let i = 0; i < 100 && tid === undefined; i++) {
        tid = fs.readdirSync(`/proc/${node.pid}/task`).map(Number).find((t) => t !== node.pid);
        if (tid === undefined) await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(tid).toBeDefined();
      const target = resolveTarget(tid, undefined);
      expect(target.pid).toBe(node.pid);
      expect(target.thread).toBe(tid);
      expect(target.euid).toBeUndefined();
    } finally {
      node.kill('SIGKILL');
    }
  });
});
