/**
 * The shape every doctor rule has (rules/ holds one file per family, listed
 * in rules/index.ts): a `meta` that says what it can report, and a `check`
 * from what was read to findings. A rule never reads files and never sees
 * another rule's findings, except through its phase's explicit argument.
 */
import type { SystemStat } from '../kernel/sysfs.js';
import type { Facts } from './collect.js';
import type { Derived } from './derive.js';
import type { Finding, FindingCode, Fix, Severity } from './types.js';

export interface RuleOptions {
  handlesSecrets: boolean;
  targetScanTimeSec: number;
  maxScanTimeSec: number;
}

export interface RuleMeta {
  /** The codes it reports, in the order the report lists them within a severity. */
  codes: readonly FindingCode[];
  /** The severities it can give. */
  severities: readonly Severity[];
  /** What it looks for, in one line. */
  description: string;
}

/** Facts of a kernel with KSM (the KSM sysfs directory exists). */
export type KsmFacts = Facts & { ksm: SystemStat };

/** Judged first: anything it finds is the whole report (without KSM nothing else applies). */
export interface GateRule {
  phase: 'gate';
  meta: RuleMeta;
  check(facts: Facts, derived: Derived, options: RuleOptions): Finding[];
}

/** Judged from what was read. */
export interface FactsRule {
  phase: 'facts';
  meta: RuleMeta;
  check(facts: KsmFacts, derived: Derived, options: RuleOptions): Finding[];
}

/**
 * Judged after the facts rules, from the knob fixes their warnings and
 * errors propose (in report order): where those can be applied.
 */
export interface PendingFixesRule {
  phase: 'pending-fixes';
  meta: RuleMeta;
  check(facts: KsmFacts, derived: Derived, options: RuleOptions, pending: readonly Fix[]): Finding[];
}

export type Rule = GateRule | FactsRule | PendingFixesRule;
