/**
 * Values the API would refuse are usage errors on the command line (exit 2,
 * the bad value named), not the API's RangeError from deep inside (exit 1).
 */
import { describe, expect, it } from 'vitest';

import { runCli } from '../helpers/cli.js';

describe('out-of-range option values are usage errors', () => {
  for (const [args, named] of [
    [['estimate', '--interval', '100000000', String(process.pid)], '--interval'],
    [['estimate', '--min-region', '99999999999999999999', String(process.pid)], '--min-region'],
    [['regions', '99999999999999999999'], 'pid'],
    [['estimate', '--interval', '25h', String(process.pid)], '--interval'],
  ] as const) {
    it(`node-ksm ${args.join(' ')}`, async () => {
      const result = await runCli([...args]);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(named);
      expect(result.stderr).toMatch(/out of range/);
      expect(result.stderr).not.toMatch(/RangeError|ERR_OUT_OF_RANGE|at .*\.js:\d+/);
    });
  }
});
