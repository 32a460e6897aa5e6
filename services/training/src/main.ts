import { loadConfig, runMain } from "@glimpse/runtime";
import { build } from "./server.js";

// Reads config and listens; everything else lives in server.ts so tests can start it on port 0.
const cfg = loadConfig();
await runMain("training", () => build(cfg), cfg.shutdownGraceMs);
