/**
 * knobAccess(): whether this process may write the KSM knobs, as access(2)
 * answers for fixture trees: a writable one, a missing one, one mounted
 * read-only (a mount namespace), and the real one as a user without root.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { knobAccess } from '../lib/kernel/knob-access.js';
import { ROOT, requireKsm } from './helpers/ksm.js';

const trees: string[] = [];
afterAll(() => {
  for (const tree of trees) fs.rmSync(tree, { recursive: true, force: true });
});

function tree(withRun: boolean): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'node-ksm-access-'));
  trees.push(root);
  const dir = path.join(root, 'sys', 'kernel', 'mm', 'ksm');
  fs.mkdirSync(dir, { recursive: true });
  if (withRun) fs.writeFileSync(path.join(dir, 'run'), '0\n');
  return root;
}

/** knobAccess() of the built package in a child, under `wrap` (a command prefix). */
function childAccess(wrap: string[], root: string): string {
  const script = `process.stdout.write(require(${JSON.stringify(path.join(ROOT, 'dist', 'kernel', 'knob-access.js'))}).knobAccess({ root: ${JSON.stringify(root)} }))`;
  const [command, ...args] = [...wrap, process.execPath, '-e', script];
  return execFileSync(command!, args, { encoding: 'utf8' });
}

describe('knobAccess', () => {
  it('tells a writable tree (ours) from one without the knobs', () => {
    expect(knobAccess({ root: tree(true) })).toBe('writable');
    expect(knobAccess({ root: tree(false) })).toBe('missing');
    expect(knobAccess({ root: path.join(os.tmpdir(), 'node-ksm-no-such-root') })).toBe('missing');
    expect(() => knobAccess({ root: '' })).toThrow(RangeError);
  });

  it('says read-only for a /sys mounted read-only, even to root', (ctx) => {
    requireKsm(ctx);
    const root = tree(true);
    const dir = path.join(root, 'sys');
    const wrap = ['unshare', '-m', 'sh', '-c', 'mount --bind -o ro "$0" "$0" && exec "$@"', dir];
    expect(childAccess(wrap, root)).toBe('read-only');
  });

  it('says not-permitted to a user without root on the real knobs', (ctx) => {
    requireKsm(ctx);
    const nobody = execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).trim();
    // CAP_DAC_READ_SEARCH: the checkout is readable wherever it lives; writing still needs root.
    const wrap = ['setpriv', '--reuid', nobody, '--regid', nobody, '--clear-groups', '--inh-caps=+dac_read_search', '--ambient-caps=+dac_read_search'];
    expect(childAccess(wrap, '/')).toBe('not-permitted');
  });
});
