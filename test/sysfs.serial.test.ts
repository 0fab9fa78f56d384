/**
 * setKnobs() on this machine's real /sys/kernel/mm/ksm: one harmless knob,
 * written, read back raw, and restored. Serial: the knob is global.
 */
import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';

import { setKnobs, systemStat } from '../lib/index.js';
import { requireKsm } from './helpers/ksm.js';

const FILE = '/sys/kernel/mm/ksm/stable_node_chains_prune_millisecs';

describe('setKnobs() on the real sysfs', () => {
  it('writes stable_node_chains_prune_millisecs, reads it back, and it is restored', (ctx) => {
    requireKsm(ctx);
    const saved = fs.readFileSync(FILE, 'utf8').trim();
    const next = Number(saved) + 1;
    try {
      const change = setKnobs({ stableNodeChainsPruneMillisecs: next });
      expect(change.before).toEqual({ stableNodeChainsPruneMillisecs: Number(saved) });
      expect(change.after).toEqual({ stableNodeChainsPruneMillisecs: next });
      expect(fs.readFileSync(FILE, 'utf8').trim()).toBe(String(next));
      expect(systemStat().stableNodeChainsPruneMillisecs).toBe(next);
    } finally {
      fs.writeFileSync(FILE, saved);
    }
    expect(fs.readFileSync(FILE, 'utf8').trim()).toBe(saved);
  });
});
