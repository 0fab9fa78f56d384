/** isSupported() / supportInfo() on this machine, checked against what the OS says. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { describe, expect, it } from 'vitest';

import { isSupported, supportInfo } from '../lib/index.js';
import { PAGE, rawKsmStat, requireKsm } from './helpers/ksm.js';

describe('support on this machine', () => {
  it('isSupported() is true', (ctx) => {
    requireKsm(ctx);
    expect(isSupported()).toBe(true);
  });

  it('supportInfo() says what the OS says', (ctx) => {
    requireKsm(ctx);
    const info = supportInfo();
    expect(info).toEqual({
      supported: true,
      reason: undefined,
      platform: 'linux',
      arch: process.arch,
      kernelRelease: os.release(),
      addon: { loaded: true, error: undefined },
      ksmSysfs: fs.statSync('/sys/kernel/mm/ksm').isDirectory(),
      prctlMerge: { available: true, reason: undefined },
      pageSize: PAGE,
      root: process.getuid!() === 0,
    });
    expect(info.kernelRelease).toBe(fs.readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim());
    // Plain data: it goes into logs and --json output as is.
    expect(JSON.parse(JSON.stringify(info))).toEqual(JSON.parse(JSON.stringify(info)));
  });

  it('probing prctl only reads the flag: merge-any stays as it was', (ctx) => {
    requireKsm(ctx);
    const before = rawKsmStat().ksm_merge_any;
    for (let i = 0; i < 3; i++) supportInfo();
    expect(rawKsmStat().ksm_merge_any).toBe(before);
  });
});
