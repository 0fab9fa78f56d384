/**
 * Labels given to allocMergeable / markMergeable, by address range, alive
 * exactly as long as the memory they name: each entry holds a WeakRef to
 * the ArrayBuffer that owns the memory.
 */

export interface LabelledRange {
  start: bigint;
  end: bigint;
  label: string;
}

interface Entry extends LabelledRange {
  owner: WeakRef<ArrayBufferLike>;
}

const entries = new Set<Entry>();
const registry = new FinalizationRegistry<Entry>((entry) => {
  entries.delete(entry);
});

export function addLabel(owner: ArrayBufferLike, start: bigint, end: bigint, label: string): void {
  // A range re-labelled, or memory reused after its owner died.
  for (const entry of entries) {
    if (entry.start < end && entry.end > start) {
      entries.delete(entry);
      registry.unregister(entry);
    }
  }
  const entry: Entry = { start, end, label, owner: new WeakRef(owner) };
  entries.add(entry);
  registry.register(owner, entry, entry);
}

/** Labelled ranges whose memory is still alive, by start address. */
export function liveLabels(): LabelledRange[] {
  const live: LabelledRange[] = [];
  for (const entry of entries) {
    if (entry.owner.deref() === undefined) {
      entries.delete(entry);
      continue;
    }
    live.push({ start: entry.start, end: entry.end, label: entry.label });
  }
  return live.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
}
