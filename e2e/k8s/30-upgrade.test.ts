/**
 * helm upgrade to a changed image while a small load loop runs through the gateway Service: every
 * Deployment rolls to the new image and not one request fails.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { CHART, NS, RELEASE, ROOT, env, gatewayUrl, helmAsync, imageValues, kubectlJson, unreadyPods, waitFor } from "./cluster.js";

interface Tally {
  ok: number;
  failed: string[];
  /** Connection resets answered by one retry (an idempotent GET, as browsers and HTTP clients do). */
  retried: string[];
}

/**
 * `workers` clients in a loop until `stop` resolves (and at most `max` requests each); each failure is
 * kept. A GET whose reused keep-alive connection was reset before any answer is sent again once (RFC 9110
 * §9.2.2: idempotent requests may be retried; browsers and most HTTP clients do): such resets are counted
 * apart. An HTTP error status is never retried.
 */
async function load(base: string, workers: number, stop: Promise<unknown>, max = 20_000): Promise<Tally> {
  const tally: Tally = { ok: 0, failed: [], retried: [] };
  let done = false;
  void stop.finally(() => (done = true));
  const paths = ["/demo/search?query=a%20dog%20playing%20in%20the%20snow&top_k=5", "/health", "/model/info", "/data/versions"];
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      for (let i = 0; i < max && !done; i++) {
        const path = paths[(i + w) % paths.length]!;
        const why = (err: unknown) => `${path}: ${(err as Error).cause ? String((err as Error).cause) : (err as Error).message}`;
        const once = async () => {
          const res = await fetch(`${base}${path}`, { signal: AbortSignal.timeout(15_000) });
          const body = await res.text();
          return { status: res.status, body };
        };
        let status: number;
        let body = "";
        try {
          ({ status, body } = await once());
        } catch (first) {
          try {
            ({ status, body } = await once());
            tally.retried.push(why(first));
          } catch (second) {
            tally.failed.push(why(second));
            continue;
          }
        }
        if (status === 200) tally.ok++;
        else tally.failed.push(`${path}: HTTP ${status} ${body.slice(0, 300)}`);
      }
    }),
  );
  return tally;
}

const deploymentImages = (): Record<string, string> =>
  Object.fromEntries(
    (kubectlJson("get", "deployments", "-n", NS, "-l", `app.kubernetes.io/instance=${RELEASE}`).items as { metadata: { name: string }; spec: { template: { spec: { containers: { image: string }[] } } } }[])
      .filter((d) => !d.metadata.name.endsWith("-minio"))
      .map((d) => [d.metadata.name, d.spec.template.spec.containers[0]!.image]),
  );

describe("helm upgrade under load", () => {
  it("rolls every service to a changed image with zero failed requests", async () => {
    const base = gatewayUrl();
    const before = deploymentImages();
    expect(Object.values(before).every((i) => i === env("GLIMPSE_E2E_IMAGE"))).toBe(true);
    const next = env("GLIMPSE_E2E_IMAGE_UPGRADE");

    const upgrade = helmAsync("upgrade", RELEASE, CHART, "-n", NS, "-f", join(ROOT, "e2e/k8s/values.yaml"), ...imageValues(next), "--wait", "--timeout", "10m");
    const rolled = upgrade.then(() =>
      waitFor("every pod of the new image Ready", () => {
        const pods = kubectlJson("get", "pods", "-n", NS, "-l", `app.kubernetes.io/instance=${RELEASE}`).items as { metadata: { deletionTimestamp?: string }; spec: { containers: { image: string }[] } }[];
        const stale = pods.filter((p) => p.spec.containers[0]!.image === env("GLIMPSE_E2E_IMAGE"));
        return stale.length === 0 && unreadyPods().length === 0 ? true : undefined;
      }, 300_000),
    );
    // a few seconds of load after the last old pod is gone: the new pods serve too
    const tally = await load(base, 4, rolled.then(() => new Promise((r) => setTimeout(r, 5000))));
    await rolled;

    expect(Object.values(deploymentImages()).every((i) => i === next)).toBe(true);
    expect(tally.ok).toBeGreaterThan(100);
    expect(tally.failed).toEqual([]);
    console.log(`helm upgrade under load: ${tally.ok} requests answered 200, ${tally.failed.length} failed, ${tally.retried.length} connection resets answered on one retry${tally.retried.length ? `: ${tally.retried.join("; ")}` : ""}`);
  });
});
