/**
 * Labels given to allocMergeable / markMergeable, by address range, alive
 * exactly as long as the memory they name.
 */
import { WeakRanges } from './weak-ranges.js';

export interface LabelledRange {
  start: bigint;
  end: bigint;
  label: string;
}

const labels = new WeakRanges<LabelledRange>();

export function addLabel(owner: ArrayBufferLike, start: bigint, end: bigint, label: string): void {
  // A range re-labelled, or memory reused after its owner died.
  labels.removeOverlapping(start, end);
  labels.add(owner, { start, end, label });
}

/** Labelled ranges whose memory is still alive, by start address. */
export function liveLabels(): LabelledRange[] {
  return labels.sorted().map(({ start, end, label }) => ({ start, end, label }));
}
