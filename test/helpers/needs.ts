/**
 * The one way a test says it needs something this machine may lack (root,
 * a tool, a kernel feature). With NODE_KSM_REQUIRE=1 (CI) a missing need is
 * a failure that names it; elsewhere the test is skipped, saying why. No
 * test skips any other way.
 */
import type { TestContext } from 'vitest';

export function needs(ctx: TestContext, have: boolean, what: string): asserts have {
  if (have) return;
  if (process.env.NODE_KSM_REQUIRE === '1') throw new Error(`NODE_KSM_REQUIRE=1 and this test needs ${what}`);
  console.warn(`skipped "${ctx.task.name}": it needs ${what}`);
  ctx.skip(`needs ${what}`);
}
