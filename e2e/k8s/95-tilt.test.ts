/**
 * The development loop: `tilt ci` brings the chart up from the repository's Tiltfile against the cluster,
 * building the image with the daemonless builder (no Docker here), and exits 0 once every workload is
 * healthy; `tilt down` removes it again.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT, env, kubectl, kubectlJson, waitFor } from "./cluster.js";

describe("tilt", () => {
  it("tilt ci brings the chart up from the Tiltfile and exits 0", async () => {
    const tilt = env("GLIMPSE_E2E_TILT");
    const state = mkdtempSync(join(tmpdir(), "glimpse-tilt-"));
    const tiltEnv = {
      ...process.env,
      TILT_DISABLE_ANALYTICS: "1",
      DOCKER_HOST: "unix:///nonexistent",
      TILT_DEV_DIR: join(state, "dev"),
      XDG_CACHE_HOME: join(state, "cache"),
      XDG_DATA_HOME: join(state, "data"),
      XDG_CONFIG_HOME: join(state, "config"),
      GLIMPSE_TILT_CONTEXT: kubectl("config", "current-context").trim(),
      GLIMPSE_TILT_REGISTRY: env("GLIMPSE_E2E_REGISTRY"),
      GLIMPSE_TILT_BUILDER: "buildah",
      GLIMPSE_TRAINER_IMAGE: env("GLIMPSE_E2E_TRAINER_IMAGE"),
      GLIMPSE_MINIO_IMAGE: env("GLIMPSE_E2E_MINIO_IMAGE"),
    };
    try {
      const ci = spawnSync(tilt, ["ci", "--file", join(ROOT, "Tiltfile"), "--port", "10350", "--web-mode", "prod", "--timeout", "10m"], {
        cwd: ROOT, env: tiltEnv, encoding: "utf8", maxBuffer: 64 << 20, timeout: 720_000,
      });
      const out = `${ci.stdout}\n${ci.stderr}`;
      expect(ci.status, out.slice(-6000)).toBe(0);
      expect(out).toMatch(/SUCCESS\. All workloads are healthy/);
      // the gateway Tilt deployed runs the image Tilt built (pushed to the cluster's registry)
      const gw = kubectlJson("get", "deployment", "glimpse-gateway", "-n", "glimpse");
      expect(gw.spec.template.spec.containers[0].image).toMatch(new RegExp(`^${env("GLIMPSE_E2E_REGISTRY")}/glimpse:tilt-`));
    } finally {
      spawnSync(tilt, ["down", "--file", join(ROOT, "Tiltfile"), "--delete-namespaces"], { cwd: ROOT, env: tiltEnv, encoding: "utf8", timeout: 300_000 });
    }
    await waitFor("namespace glimpse to be gone", () => {
      try {
        kubectl("get", "namespace", "glimpse");
        return undefined;
      } catch {
        return true;
      }
    }, 300_000);
  });
});
