/** Gates for tests that need a program the machine may lack, through needs(): a skip that says why, a failure under NODE_KSM_REQUIRE=1 (CI). */
import { execFileSync } from 'node:child_process';
import type { TestContext } from 'vitest';

import { needs } from './needs.js';

export function hasTool(tool: string, args: string[] = ['--version']): boolean {
  try {
    execFileSync(tool, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** True when `tool` runs; else skips the test (or fails it in CI) naming the Debian package to install. */
export function requireTool(ctx: TestContext, tool: string, debianPackage: string, args?: string[]): boolean {
  needs(ctx, hasTool(tool, args), `${tool} (apt-get install ${debianPackage})`);
  return true;
}
