/**
 * Reading the labels another process published (kernel/label-file.ts): the
 * file is trusted only when it is a plain file at one of the process's
 * uid's places, owned by that uid or root, and names the process's pid and
 * start time. The start time is read here from /proc/PID/stat itself
 * (helpers/ksm.ts rawStartTimeTicks()).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { labelDirs, pruneLabelFiles, readLabelFile } from '../lib/kernel/label-file.js';
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

/** A pid no process has now: that of a process run to its end (checked gone). */
function deadPid(): number {
  const run = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  const gone = Number(run.stdout);
  expect(fs.existsSync(`/proc/${gone}`)).toBe(false);
  return gone;
}

describe('pruneLabelFiles()', () => {
  it('removes the files no live process stands behind, and nothing else', (ctx) => {
    const place = fs.mkdtempSync(path.join(os.tmpdir(), 'node-ksm-prune-'));
    try {
      const ticks = rawStartTimeTicks(pid);
      const dead = deadPid();
      const deadWriter = deadPid();
      const put = (name: string, text: string): string => {
        fs.writeFileSync(path.join(place, name), text);
        return name;
      };
      const stale = [
        put(`${dead}.json`, body(dead, 1)), // its process is gone
        put(`${pid}.json`, body(pid, ticks - 1)), // an earlier process with the pid (another start time)
        put(`${deadWriter}.json.${deadWriter}.tmp`, body(deadWriter, 1)), // a write its writer never finished
      ];
      const kept = [
        put(`${process.pid}.json`, body(process.pid, 1)), // this process's own, whatever it says
        put(`${pid}.json.${pid}.tmp`, body(pid, ticks)), // a writer still there may be writing it
        put(`${process.ppid}.json`, '{"not": "a label file"'), // a live process's, naming no start time: no evidence it is stale
        put('notes.txt', 'not a label file'),
        put('abc.json', body(dead, 1)),
      ];
      fs.symlinkSync(path.join(place, `${dead}.json`), path.join(place, `${dead + 1}.json`));
      kept.push(`${dead + 1}.json`); // a symlink: not a plain file of ours
      const removed = pruneLabelFiles(place);
      expect(removed.map((file) => path.basename(file)).sort()).toEqual([...stale].sort());
      for (const name of stale) expect(fs.existsSync(path.join(place, name)), name).toBe(false);
      for (const name of kept) expect(fs.lstatSync(path.join(place, name), { throwIfNoEntry: false }), name).toBeDefined();
      // The live process's own file, naming its start time, stays; so does a stale one another uid owns.
      put(`${pid}.json`, body(pid, ticks));
      expect(pruneLabelFiles(place)).toEqual([]);
      if (uid === 0) {
        put(`${dead}.json`, body(dead, 1));
        fs.chownSync(path.join(place, `${dead}.json`), 65534, 65534);
        expect(pruneLabelFiles(place)).toEqual([]);
        expect(fs.existsSync(path.join(place, `${dead}.json`))).toBe(true);
      } else {
        ctx.annotate('not root: the other-uid case needs chown');
      }
      expect(pruneLabelFiles(path.join(place, 'nonexistent'))).toEqual([]);
    } finally {
      fs.rmSync(place, { recursive: true, force: true });
    }
  });

  it("a publisher clears what processes killed without 'exit' left beside its file, and writes its own again when it goes", async () => {
    const root = path.join(__dirname, '..');
    const script = `const ksm = require(${JSON.stringify(path.join(root, 'dist', 'index.js'))});
      process.stdout.write(ksm.publishLabels() + '\\n');
      setInterval(() => {}, 1000);`;
    const children: ChildProcess[] = [];
    const publisher = async (): Promise<{ proc: ChildProcess; file: string }> => {
      const proc = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      children.push(proc);
      let out = '';
      const file = await new Promise<string>((resolve, reject) => {
        proc.stdout!.on('data', (chunk: Buffer) => {
          out += chunk.toString();
          if (out.includes('\n')) resolve(out.trim());
        });
        proc.once('exit', (code) => reject(new Error(`publisher exited (${code}) before it said its file`)));
      });
      return { proc, file };
    };
    const until = async (what: string, holds: () => boolean): Promise<void> => {
      for (const deadline = Date.now() + 10_000; !holds(); ) {
        if (Date.now() > deadline) throw new Error(`not within 10 s: ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };
    try {
      const first = await publisher();
      expect(path.basename(first.file)).toBe(`${first.proc.pid}.json`);
      // Killed: no 'exit' runs, and the file stays (until a prune: other tests' publishers may make one meanwhile).
      first.proc.kill('SIGKILL');
      await new Promise((resolve) => first.proc.once('exit', resolve));
      const leftover = path.join(path.dirname(first.file), `${deadPid()}.json`);
      fs.writeFileSync(leftover, body(Number(path.basename(leftover, '.json')), 1));
      const second = await publisher();
      expect(path.dirname(second.file)).toBe(path.dirname(first.file));
      await until('the killed publisher\'s file and the leftover removed', () => !fs.existsSync(first.file) && !fs.existsSync(leftover));
      expect(fs.existsSync(second.file)).toBe(true);
      // Its own file, removed: written again within its check interval (2 s).
      fs.rmSync(second.file);
      await until('the publisher\'s file written again', () => fs.existsSync(second.file));
      expect(JSON.parse(fs.readFileSync(second.file, 'utf8'))).toMatchObject({ pid: second.proc.pid, startTimeTicks: rawStartTimeTicks(second.proc.pid!) });
      // SIGTERM ends it without 'exit' too: its file is a prune's.
      second.proc.kill('SIGTERM');
      await new Promise((resolve) => second.proc.once('exit', resolve));
      pruneLabelFiles(path.dirname(second.file));
      expect(fs.existsSync(second.file)).toBe(false);
    } finally {
      for (const proc of children) proc.kill('SIGKILL');
    }
  });
});
