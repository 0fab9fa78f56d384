/**
 * Every doctor rule, in the order the report lists their codes within a
 * severity (errors first, then warnings, then information). A new rule is a
 * file in this folder and a line here; a new code is also a member of the
 * public FindingCode type (types.ts) and a row in the README's table.
 */
import type { Rule } from '../rule.js';
import { trackedPages, volatilePages } from './efficiency.js';
import { notRoot, sysfsReadOnly } from './environment.js';
import { ksmChurn } from './churn.js';
import { mergeAnyInherited, mergeAnyLost } from './inheritance.js';
import { ksmNotBuilt, ksmStopped } from './ksmd.js';
import { merging } from './merging.js';
import { notMergeable, nothingMergeable, untouchedRegion } from './mergeable.js';
import { numaCrossNode } from './numa.js';
import { prctl } from './prctl.js';
import { advisorAvailable, scanTooSlow } from './scan.js';
import { sideChannelRisk } from './security.js';
import { processesSkipped } from './skipped.js';
import { thpInMergeable } from './thp.js';

export const RULES: readonly Rule[] = [
  ksmNotBuilt,
  ksmStopped,
  sideChannelRisk,
  prctl,
  nothingMergeable,
  notMergeable,
  untouchedRegion,
  scanTooSlow,
  mergeAnyLost,
  ksmChurn,
  trackedPages,
  volatilePages,
  thpInMergeable,
  mergeAnyInherited,
  numaCrossNode,
  sysfsReadOnly,
  notRoot,
  advisorAvailable,
  processesSkipped,
  merging,
];
