#!/usr/bin/env node
/**
 * The pipeline CLI's stable entry point — what every Argo step runs (argo/workflowtemplate.yaml):
 *
 *   node packages/pipeline/bin/glimpse-pipeline.mjs <step> [options]     (working dir: the repo root, /app in the image)
 *
 * It runs the compiled CLI when the package has been built to dist/cli.js, else the TypeScript
 * source through tsx, so the command stays the same whichever way the image runs the code.
 * Plain JavaScript on purpose: it needs nothing but Node.
 */
import { existsSync } from "node:fs";

const compiled = new URL("../dist/cli.js", import.meta.url);
let cli;
if (existsSync(compiled)) {
  cli = await import(compiled.href);
} else {
  const { register } = await import("tsx/esm/api");
  register();
  cli = await import(new URL("../src/cli.ts", import.meta.url).href);
}
process.exit(await cli.main(process.argv.slice(2)));
