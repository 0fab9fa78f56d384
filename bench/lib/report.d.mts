// Types for test/bench-smoke.test.ts.
export interface ReportRow {
  figure: string;
  measured?: string;
  comparedWith?: string;
  ratio?: number | string;
  target?: string;
  verdict?: string;
  notes?: string;
  command?: string;
  suite?: string;
}
export interface SuiteResult {
  id: string;
  title: string;
  seconds: number;
  rows: ReportRow[];
  command?: string;
  error?: string;
  method?: string[];
  findings?: string[];
}
export interface Report {
  mode: 'full' | 'quick' | 'smoke';
  startedAt: string;
  seconds: number;
  machine: Record<string, unknown> & { knobs: Record<string, string | undefined> };
  activity: Array<{ vitest: number; ksmUsers: number }>;
  knobsOverwritten?: number;
  results: SuiteResult[];
}
export function render(report: Report): string;
