/**
 * waitForMerge() when KSM is not running: stops KSM for a moment (run=0),
 * restores it in finally. Serial: `run` is global.
 */
import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';

import { KsmError, KsmNotRunningError, waitForMerge } from '../lib/index.js';
import { requireKsm } from './helpers/ksm.js';

const RUN = '/sys/kernel/mm/ksm/run';

describe('waitForMerge() and a stopped KSM', () => {
  it('rejects with KsmNotRunningError when run is 0 at the call, and when it drops to 0 while waiting', async (ctx) => {
    requireKsm(ctx);
    const saved = fs.readFileSync(RUN, 'utf8').trim();
    try {
      let atCall: unknown;
      for (let attempt = 0; attempt < 5; attempt++) {
        fs.writeFileSync(RUN, '0');
        atCall = await waitForMerge({ timeoutMs: 10_000 }).catch((e: unknown) => e);
        if (atCall instanceof Error) break;
        // It resolved: another run on this machine started KSM again in
        // between (its setup writes run=1). Stop it again and retry.
        expect(fs.readFileSync(RUN, 'utf8').trim()).not.toBe('0');
      }
      expect(atCall).toBeInstanceOf(KsmNotRunningError);
      expect(atCall).toBeInstanceOf(KsmError);
      expect(atCall).toMatchObject({ name: 'KsmNotRunningError', code: 'ERR_KSM_NOT_RUNNING', run: 0 });
      expect((atCall as Error).message).toMatch(/echo 1 > \/sys\/kernel\/mm\/ksm\/run/);

      fs.writeFileSync(RUN, '1');
      const waiting = waitForMerge({ fullScans: 1_000_000, timeoutMs: 60_000 }).catch((e: unknown) => e);
      await new Promise((resolve) => setTimeout(resolve, 50));
      fs.writeFileSync(RUN, '0');
      expect(await waiting).toMatchObject({ code: 'ERR_KSM_NOT_RUNNING', run: 0 });
    } finally {
      fs.writeFileSync(RUN, saved);
    }
    expect(fs.readFileSync(RUN, 'utf8').trim()).toBe(saved);
  });
});
