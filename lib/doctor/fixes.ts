/**
 * Fixes that are knob writes: the shell commands, in the order setKnobs()
 * writes them (knobWriteOrder, one definition for both), the tmpfiles.d
 * lines that replay them at boot, and the fixes several rules share.
 */
import { KNOB_FILES, knobWriteOrder, type KsmKnobs } from '../kernel/sysfs.js';
import { KSM } from './finding.js';
import type { Fix } from './types.js';

type KnobWrite = [file: string, value: string];

/** The sysfs file and the text written to it, per knob, in write order. */
function knobWrites(knobs: KsmKnobs): KnobWrite[] {
  const entries = Object.entries(knobs).filter(([, value]) => value !== undefined) as Array<[keyof KsmKnobs, unknown]>;
  return knobWriteOrder(entries).map(([name, value]) => [
    `${KSM}/${KNOB_FILES[name]}`,
    typeof value === 'boolean' ? (value ? '1' : '0') : String(value),
  ]);
}

/** `echo V > <KSM sysfs>/F` lines for knobs, in the order setKnobs() writes them. */
export function knobCommands(knobs: KsmKnobs): string[] {
  return knobWrites(knobs).map(([file, value]) => `echo ${value} > ${file}`);
}

/** tmpfiles.d lines that replay the same writes at boot. */
export function tmpfilesLines(knobs: KsmKnobs): string[] {
  return knobWrites(knobs).map(([file, value]) => `/etc/tmpfiles.d/ksm.conf: w ${file} - - - - ${value}`);
}

/** A fix that is knob writes: the commands, the same writes for setKnobs(), and the boot-time lines. */
export function knobFix(summary: string, knobs: KsmKnobs): Fix {
  return { summary, commands: knobCommands(knobs), knobs, persist: tmpfilesLines(knobs) };
}

/** The kernel's scan-time advisor (6.8+), aimed at `targetSec` (it takes whole seconds, at least 1). */
export function advisorFix(targetSec: number): Fix {
  const seconds = Math.max(1, Math.round(targetSec));
  return knobFix(
    `Let the kernel's scan-time advisor (6.8+) size pages_to_scan for a ${seconds} s full scan, within advisor_max_cpu`,
    { advisorTargetScanTimeSec: seconds, advisorMode: 'scan-time' },
  );
}

/** madvise works on every KSM kernel: the way in when prctl does not. */
export function allocFix(): Fix {
  return {
    summary: 'Put the data that repeats in allocMergeable() buffers (or markMergeable() an existing view): madvise works on every KSM kernel',
    commands: [],
    call: 'allocMergeable(size)',
  };
}
