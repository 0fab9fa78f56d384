/**
 * Address ranges tied to the ArrayBuffer that owns their memory: an entry
 * lives exactly as long as that buffer (WeakRef + FinalizationRegistry), so a
 * later mapping at the same address is never taken for the old one.
 */

export interface OwnedRange {
  start: bigint;
  end: bigint;
}

interface Held<T extends OwnedRange> {
  value: T;
  owner: WeakRef<ArrayBufferLike>;
}

export class WeakRanges<T extends OwnedRange> {
  readonly #held = new Set<Held<T>>();
  readonly #registry = new FinalizationRegistry<Held<T>>((held) => {
    this.#held.delete(held);
  });

  add(owner: ArrayBufferLike, value: T): void {
    const held: Held<T> = { value, owner: new WeakRef(owner) };
    this.#held.add(held);
    this.#registry.register(owner, held, held);
  }

  /** Drops every entry overlapping [start, end). */
  removeOverlapping(start: bigint, end: bigint): void {
    for (const held of this.#held) {
      if (held.value.start < end && held.value.end > start) {
        this.#held.delete(held);
        this.#registry.unregister(held);
      }
    }
  }

  /** Entries whose owner is alive, with it, in insertion order. */
  *alive(): Generator<[T, ArrayBufferLike]> {
    for (const held of this.#held) {
      const owner = held.owner.deref();
      if (owner === undefined) {
        this.#held.delete(held);
        continue;
      }
      yield [held.value, owner];
    }
  }

  /** Live entries by start address. */
  sorted(): T[] {
    return [...this.alive()].map(([value]) => value).sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  }
}
