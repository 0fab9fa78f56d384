/**
 * Security guardrails: children from another trust domain do not inherit
 * merge-any, and sensitive views stay unmergeable. Each scenario runs in a
 * process of its own (merge-any is process-wide), read back raw from
 * /proc/self/ksm_stat and smaps.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { describe, expect, it } from 'vitest';

import { markSensitive, pageSize, spawnUnmerged } from '../../lib/index.js';
import { requireKsm } from '../helpers/ksm.js';
import { mergeAnyEnv, runFixture } from './helpers.js';

describe('spawnUnmerged', () => {
  it('the child reports ksm_merge_any: no; the parent keeps its flag and its merged pages', async (ctx) => {
    requireKsm(ctx);
    const run = await runFixture('security.cjs', ['spawn'], [], mergeAnyEnv());
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
    const r = run.result as {
      childUnmerged: { code: number; out: string };
      childPlain: { code: number; out: string };
      parentBefore: { mergeAny: string; merging: number };
      parentAfter: { mergeAny: string; merging: number };
      pages: number;
      intact: boolean;
    };
    expect(r.childUnmerged).toEqual({ code: 0, out: 'no' });
    // Control: a plain spawn() child inherits the flag (Linux 6.7+ keeps it across exec).
    expect(r.childPlain).toEqual({ code: 0, out: 'yes' });
    expect(r.parentBefore.mergeAny).toBe('yes');
    expect(r.parentAfter.mergeAny).toBe('yes');
    expect(r.parentBefore.merging).toBeGreaterThanOrEqual(r.pages - 2);
    // The buffer's pages still merge (ksm_merging_pages is process-wide: a
    // few of node's own pages merge and unmerge around it, so not equality).
    expect(r.parentAfter.merging).toBeGreaterThanOrEqual(r.pages - 2);
    expect(r.intact).toBe(true);
  });

  it('a command that cannot run is reported as spawn() reports it: error ENOENT, close -2, no exit', async (ctx) => {
    requireKsm(ctx);
    const child = spawnUnmerged('node-ksm-no-such-command', ['x'], { stdio: 'ignore' });
    const events: string[] = [];
    child.on('exit', () => events.push('exit'));
    // 'close' may follow 'error' in the same tick: listen to both first.
    const errored = new Promise<NodeJS.ErrnoException>((resolve) => child.once('error', resolve));
    const closed = new Promise<[number | null]>((resolve) => child.once('close', (c) => resolve([c])));
    const error = await errored;
    const [code] = await closed;
    expect(error).toMatchObject({ code: 'ENOENT', errno: -2, syscall: 'spawn node-ksm-no-such-command', path: 'node-ksm-no-such-command' });
    expect(error.message).toBe('spawn node-ksm-no-such-command ENOENT');
    expect(code).toBe(-2);
    expect(events).toEqual([]);
    expect(child.spawnargs).toEqual(['node-ksm-no-such-command', 'x']);
  });

  it('keeps spawn()\'s contract: args, options, stdio, exit code, shell', async (ctx) => {
    requireKsm(ctx);
    const cwd = fs.realpathSync(os.tmpdir());
    const child = spawnUnmerged(process.execPath, ['-e', 'process.stdout.write(process.argv0 + " " + process.env.X + " " + process.cwd()); process.exit(3)'], {
      env: { ...process.env, X: 'forty-two' },
      cwd,
      argv0: 'custom-argv0',
    });
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once('exit', (c, s) => resolve([c, s])));
    const closed = new Promise((resolve) => child.once('close', resolve));
    expect(await exited).toEqual([3, null]);
    await closed;
    expect(out).toBe(`custom-argv0 forty-two ${cwd}`);
    expect(child.spawnfile).toBe(process.execPath);

    const shell = spawnUnmerged('echo', ['$((6 * 7))'], { shell: true });
    let shellOut = '';
    shell.stdout!.setEncoding('utf8').on('data', (chunk: string) => (shellOut += chunk));
    await new Promise((resolve) => shell.once('close', resolve));
    expect(shellOut).toBe('42\n');
  });

  it('rejects wrong arguments before spawning', () => {
    expect(() => spawnUnmerged(42 as unknown as string)).toThrow(expect.objectContaining({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }));
    expect(() => spawnUnmerged('')).toThrow(expect.objectContaining({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }));
    expect(() => spawnUnmerged('ls', [1 as unknown as string])).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE', message: expect.stringContaining('"args[0]"') }));
    expect(() => spawnUnmerged('ls', ['a\u0000b'])).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
  });
});

describe('markSensitive', () => {
  it('keeps a secret unmergeable through enableMerge() and markMergeable(), and reports it when something re-marks it', async (ctx) => {
    requireKsm(ctx);
    const run = await runFixture('security.cjs', ['sensitive'], [], mergeAnyEnv());
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
    const page = pageSize();
    expect(run.result).toMatchObject({
      ok: true,
      // The unaligned 16-page secret touches 17 pages: all of them are covered.
      range: { length: 17 * page, label: 'api-key' },
      flagsAfterMark: [false],
      // Control: the raw prctl re-marks it...
      flagsRawPrctl: [true],
      // ...enableMerge() and markMergeable() put it back.
      flagsAfterEnable: [false],
      flagsAfterMarkMergeable: [false],
      listed: [{ length: 17 * page, label: 'api-key' }],
      violationsBefore: 0,
      // The identical public copy merged, the secret did not.
      secretKsm: 0,
      violationsAfter: ['api-key'],
      intact: true,
    });
  });

  it('rejects wrong arguments', () => {
    expect(() => markSensitive('secret' as unknown as Buffer)).toThrow(expect.objectContaining({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' }));
    expect(() => markSensitive(Buffer.alloc(1), { label: 1 as unknown as string })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
  });
});
