/**
 * A script of this service to start in another thread or process: the compiled `.js` beside the
 * running code, or — when the running code is the TypeScript source (tests, tsx) — the `.ts` file,
 * run through tsx with the monorepo's `source` export condition.
 */
import { fileURLToPath } from "node:url";

export function serviceEntry(relative: string, from: string): { path: string; execArgv: string[] } {
  const fromSource = from.endsWith(".ts");
  return {
    path: fileURLToPath(new URL(`${relative}.${fromSource ? "ts" : "js"}`, from)),
    execArgv: fromSource ? ["--conditions=source", "--import", "tsx"] : [],
  };
}
