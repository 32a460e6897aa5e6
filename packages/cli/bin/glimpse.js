#!/usr/bin/env node
// `npx glimpse …`: the compiled CLI (npm run build makes it; npm start builds first).
import { existsSync } from "node:fs";
const main = new URL("../dist/main.js", import.meta.url);
if (!existsSync(main)) {
  console.error("glimpse: packages/cli/dist/main.js is missing; run `npm run build` first");
  process.exit(1);
}
await import(main.href);
