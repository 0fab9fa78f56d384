/** Gates for tests that need a program the machine may lack: a skip that says why, a failure under NODE_KSM_REQUIRE=1 (CI). */
import { execFileSync } from 'node:child_process';
import type { TestContext } from 'vitest';

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
  if (hasTool(tool, args)) return true;
  const reason = `${tool} is needed for this test (apt-get install ${debianPackage})`;
  if (process.env.NODE_KSM_REQUIRE === '1') throw new Error(`NODE_KSM_REQUIRE=1 but ${reason}`);
  console.warn(`skipped "${ctx.task.name}": ${reason}`);
  ctx.skip(reason);
  return false;
}
