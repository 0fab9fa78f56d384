/** How a finding is written: its constructors, the files it cites, and figures in words. */
import { KSM_DIR } from '../kernel/names.js';
import type { SmapsSummary } from '../kernel/smaps.js';
import type { Evidence, Finding, FindingCode, Fix, Severity } from './types.js';

/** Where every KSM knob and counter lives, as evidence names it. */
export const KSM = KSM_DIR;
/** At most this many mappings are listed as evidence per finding. */
export const MAX_LISTED = 5;

export function finding(
  code: FindingCode,
  severity: Severity,
  message: string,
  evidence: Evidence[],
  fix: Fix | undefined,
  alternatives: Fix[] = [],
): Finding {
  return { code, severity, message, evidence, fix, alternatives };
}

export function ev(source: string, key: string, value: number | string | boolean, unit?: Evidence['unit']): Evidence {
  return unit === undefined ? { source, key, value } : { source, key, value, unit };
}

export function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(bytes >= 10 * 1048576 ? 0 : 1)} MiB`;
}

export function seconds(value: number): string {
  if (value >= 3600) return `${(value / 3600).toFixed(1)} h`;
  if (value >= 120) return `${(value / 60).toFixed(1)} min`;
  return `${value.toFixed(value >= 10 ? 0 : 1)} s`;
}

export function hex(value: bigint): string {
  return `0x${value.toString(16)}`;
}

/** `0x7f..-0x7f.. /path`: a VMA as the messages and evidence keys name it. */
export function vmaName(vma: SmapsSummary): string {
  return `${hex(vma.start)}-${hex(vma.end)}${vma.pathname ? ` ${vma.pathname}` : ''}`;
}
