/** Reading doctor() findings in tests. */
import { expect } from 'vitest';

import type { Finding, FindingCode } from '../../lib/index.js';

/** The one finding with `code`; fails, listing every code, unless there is exactly one. */
export function findingOf(findings: Finding[], code: FindingCode): Finding {
  const matches = findings.filter((entry) => entry.code === code);
  expect(matches.map((entry) => entry.code), JSON.stringify(findings.map((f) => f.code))).toEqual([code]);
  return matches[0]!;
}

/** The value of the evidence item `key`, if the finding has one. */
export function evidence(entry: Finding, key: string): number | string | boolean | undefined {
  return entry.evidence.find((item) => item.key === key)?.value;
}

/** Every warn and error finding as "CODE: message" (empty on a healthy machine). */
export function problems(findings: Finding[]): string[] {
  return findings.filter((entry) => entry.severity !== 'info').map((entry) => `${entry.code}: ${entry.message}`);
}
