#!/usr/bin/env node
/**
 * The pipeline CLI's stable entry point — what every Argo step runs (argo/workflowtemplate.yaml):
 *
 *   node packages/pipeline/bin/glimpse-pipeline.mjs <step> [options]     (working dir: the repo root, /app in the image)
 *
 * It runs the compiled CLI (dist/cli.js, made by `npm run build`); the image carries only that.
 * Plain JavaScript on purpose: it needs nothing but Node.
 */
import { existsSync } from "node:fs";

const compiled = new URL("../dist/cli.js", import.meta.url);
if (!existsSync(compiled)) {
  console.error("glimpse-pipeline: packages/pipeline/dist/cli.js is missing; run `npm run build` first");
  process.exit(1);
}
const cli = await import(compiled.href);
process.exit(await cli.main(process.argv.slice(2)));
