/**
 * Where doctor() learns which memory of this process must never merge. The
 * module that marks views sensitive (markSensitive, issue 8) registers a
 * source here once; doctor() reads every source on each call, so it never
 * holds the views itself and never keeps them alive.
 */
import type { SensitiveRange } from './types.js';

type Source = () => Iterable<SensitiveRange>;

const sources = new Set<Source>();

/** Internal: adds a source of sensitive ranges; returns the call that removes it. */
export function registerSensitiveSource(source: Source): () => void {
  sources.add(source);
  return () => {
    sources.delete(source);
  };
}

/** Every sensitive range of this process, by start address. */
export function sensitiveRanges(): SensitiveRange[] {
  const out: SensitiveRange[] = [];
  for (const source of sources) out.push(...source());
  return out.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
}
