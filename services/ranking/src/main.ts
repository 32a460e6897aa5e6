import { loadConfig, runMain } from "@glimpse/runtime";
import { build } from "./server.js";

// Reads config and listens; everything else lives in server.ts so tests can start it on port 0.
// Listens at once; gRPC health says NOT_SERVING until the production model is loaded.
const cfg = loadConfig();
await runMain("ranking", () => build(cfg, { readyTimeoutMs: 0 }), cfg.shutdownGraceMs);
