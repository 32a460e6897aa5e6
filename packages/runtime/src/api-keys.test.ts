import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { apiKeysFromConfig, loadConfig } from "./index.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const TSX = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href;

/** Runs a service's main.ts with env; resolves with its exit code and output, or kills it after timeoutMs. */
function runMain(service: string, env: Record<string, string>, timeoutMs = 60_000): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    // only what the service needs: no GLIMPSE_* from the caller's shell
    const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("GLIMPSE_") && !k.startsWith("MINIO_")));
    const child = spawn(process.execPath, ["--conditions=source", "--import", TSX, join(ROOT, "services", service, "src", "main.ts")], {
      env: { ...base, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d));
    child.stderr.on("data", (d: Buffer) => (out += d));
    const timer = setTimeout(() => {
      out += `\n[test] still running after ${timeoutMs} ms: killed`;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

describe("API keys are required unless running open is asked for", () => {
  it("apiKeysFromConfig refuses an empty key list, accepts keys or GLIMPSE_ALLOW_OPEN", () => {
    expect(() => apiKeysFromConfig(loadConfig({ GLIMPSE_API_KEYS: "" }))).toThrow(/no API keys configured: set GLIMPSE_API_KEYS/);
    expect(apiKeysFromConfig(loadConfig({ GLIMPSE_API_KEYS: "k1:write" }))).toBeDefined();
    expect(apiKeysFromConfig(loadConfig({ GLIMPSE_ALLOW_OPEN: "true" }))).toBeDefined();
  });

  // Each service's real entry point, as Kubernetes runs it: it must exit non-zero naming the
  // fix, not start listening with every RPC open.
  for (const [service, port] of [["gateway", "GLIMPSE_GATEWAY_PORT"], ["data", "GLIMPSE_DATA_PORT"], ["training", "GLIMPSE_TRAINING_PORT"], ["ranking", "GLIMPSE_RANKING_PORT"]] as const) {
    it(`${service}: main exits 1 without keys`, async () => {
      const dir = mkdtempSync(join(tmpdir(), `glimpse-keys-${service}-`));
      const { code, out } = await runMain(service, {
        GLIMPSE_DATA_DIR: dir,
        [port]: "0",
        GLIMPSE_RANKING_METRICS_PORT: "0",
        GLIMPSE_TRAINING_METRICS_PORT: "0",
        GLIMPSE_DATA_METRICS_PORT: "0",
      });
      expect(out).toContain("no API keys configured");
      expect(code).toBe(1);
    }, 90_000);
  }
});
