/**
 * Runs the rules (rules/index.ts) over the facts in three phases: the gate
 * (no KSM: that is the whole report), the rules that judge what was read,
 * then the rules that judge where the knob fixes proposed so far can be
 * applied. Findings come out errors first, then in the rules' listed order.
 */
import type { Facts } from './collect.js';
import { derive } from './derive.js';
import type { KsmFacts, Rule, RuleOptions } from './rule.js';
import { RULES } from './rules/index.js';
import type { Finding, FindingCode, Fix, Severity } from './types.js';

export type { RuleOptions } from './rule.js';

const RANK: Record<Severity, number> = { error: 0, warn: 1, info: 2 };
const ORDER: readonly FindingCode[] = RULES.flatMap((rule) => rule.meta.codes);

/** A rule's findings, held to what its meta declares: a mismatch is a bug in the rule, not in the machine. */
function checked(rule: Rule, findings: Finding[]): Finding[] {
  for (const entry of findings) {
    if (!rule.meta.codes.includes(entry.code) || !rule.meta.severities.includes(entry.severity)) {
      throw new Error(`doctor rule for ${rule.meta.codes.join('/')} reported ${entry.severity} ${entry.code}, outside its meta`);
    }
  }
  return findings;
}

function sort(findings: Finding[]): Finding[] {
  return findings.sort((a, b) => RANK[a.severity] - RANK[b.severity] || ORDER.indexOf(a.code) - ORDER.indexOf(b.code));
}

/** The knob fixes of the warnings and errors, in report order: what the environment rules say where to run. */
function pendingKnobFixes(findings: readonly Finding[]): Fix[] {
  return findings.flatMap((entry) => (entry.severity !== 'info' && entry.fix?.knobs !== undefined ? [entry.fix] : []));
}

function hasKsm(facts: Facts): facts is KsmFacts {
  return facts.ksm !== undefined;
}

export function diagnose(facts: Facts, options: RuleOptions): Finding[] {
  const derived = derive(facts);
  const gated = RULES.flatMap((rule) => (rule.phase === 'gate' ? checked(rule, rule.check(facts, derived, options)) : []));
  if (gated.length > 0 || !hasKsm(facts)) return sort(gated);
  const judged = sort(RULES.flatMap((rule) => (rule.phase === 'facts' ? checked(rule, rule.check(facts, derived, options)) : [])));
  const pending = pendingKnobFixes(judged);
  const followUps = RULES.flatMap((rule) =>
    rule.phase === 'pending-fixes' ? checked(rule, rule.check(facts, derived, options, pending)) : [],
  );
  return sort([...judged, ...followUps]);
}
