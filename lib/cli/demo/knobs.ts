/**
 * The knobs the demo wrote, and putting them back. Restoring is synchronous
 * so that it also runs from process.on('exit'), the last way out.
 */
import { setKnobs, type KsmKnobs } from '../../kernel/sysfs.js';

export class KnobSession {
  /** What the demo wrote; undefined until start(). */
  set: KsmKnobs | undefined;
  /** The values read back after putting them back; undefined until restore() did. */
  restored: KsmKnobs | undefined;
  /** Why restoring failed, when it did. */
  restoreError: unknown;
  /** The values of the knobs written, as they were before. */
  before: KsmKnobs | undefined;
  private done = false;

  /**
   * Writes `knobs`. `before` is remembered first: a write that fails midway
   * (setKnobs leaves earlier writes written) is undone too.
   */
  start(knobs: KsmKnobs, before: KsmKnobs): void {
    this.before = before;
    this.set = knobs;
    setKnobs(knobs);
  }

  /** True once start() was called: there is something to put back. */
  get touched(): boolean {
    return this.before !== undefined;
  }

  /** Puts every knob start() touched back, once; never throws (restoreError says why not). */
  restore(): void {
    if (this.done || this.before === undefined) return;
    this.done = true;
    try {
      this.restored = setKnobs(this.before).after;
    } catch (error) {
      this.restoreError = error;
    }
  }
}
