/**
 * A Ranking process that starts while the newest gallery has no stored index (#22): it is ready
 * at once on the previous gallery, computes the new index in the background (the embedded
 * default's local builder), and its liveness entry — what Kubernetes' liveness probe asks —
 * answers SERVING within the probe's timeout all along, as does readiness; searches never fail.
 * The service runs as its own process over real sockets, as `glimpse up` starts it.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { health, ranking } from "@glimpse/api";
import { createObjectStore } from "@glimpse/objectstore";
import { freePorts } from "@glimpse/runtime/testing";
import { afterAll, describe, expect, it } from "vitest";
import { DEFAULT_DEMO_DIR, seedDemo } from "../seed.js";
import { publishDemoImages, rankingClient } from "../testing/harness.js";

const MAIN = resolve(fileURLToPath(new URL("../main.ts", import.meta.url)));
const SERVING = health.HealthCheckResponse_ServingStatus.SERVING;
/** The chart's probe timeout (helm/glimpse/templates/deployments.yaml). */
const PROBE_TIMEOUT_MS = 5000;

describe("a Ranking process computing an index", () => {
  let child: ChildProcess | undefined;
  afterAll(() => {
    child?.kill("SIGKILL");
  });

  it("is live and ready throughout, serves the previous gallery meanwhile, then the new one", { timeout: 300_000 }, async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "glimpse-liveness-"));
    const store = createObjectStore({ kind: "fs", root: join(dataDir, "store"), bucket: "glimpse" });
    await store.init();
    await seedDemo(store, DEFAULT_DEMO_DIR);
    const fresh = await publishDemoImages(store, "flickr8k", 200);

    const [port, metrics] = (await freePorts(2)).map(String);
    let log = "";
    child = spawn(process.execPath, ["--conditions=source", "--import", "tsx", MAIN], {
      env: { ...process.env, GLIMPSE_DATA_DIR: dataDir, GLIMPSE_RANKING_PORT: port, GLIMPSE_RANKING_METRICS_PORT: metrics, GLIMPSE_ALLOW_OPEN: "true", GLIMPSE_RANKING_POLL_MS: "300", GLIMPSE_LOG_LEVEL: "info", GLIMPSE_INDEX_EXECUTOR: "local" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout!.on("data", (b: Buffer) => (log += b.toString()));
    child.stderr!.on("data", (b: Buffer) => (log += b.toString()));
    const url = `http://127.0.0.1:${port}`;
    const probe = createClient(health.Health, createGrpcTransport({ baseUrl: url }));
    const client = rankingClient(url);

    // up: the first answers (the process is starting: refused connections are retried)
    const check = async (service: string) => (await probe.check({ service }, { timeoutMs: PROBE_TIMEOUT_MS })).status;
    const end = Date.now() + 120_000;
    for (;;) {
      try {
        if ((await check(ranking.RankingService.typeName)) === SERVING) break;
      } catch (err) {
        if (Date.now() > end) throw new Error(`Ranking never became ready: ${(err as Error).message}\n${log}`);
      }
      if (Date.now() > end) throw new Error(`Ranking never became ready\n${log}`);
      await new Promise((r) => setTimeout(r, 100));
    }

    // from ready on: liveness, readiness and searches answer every round, while the index is computed
    const rounds: { live: number; ready: number; pending: boolean; datasetVersion: string; searchOk: boolean }[] = [];
    const failures: string[] = [];
    for (;;) {
      const [live, ready, st, search] = await Promise.allSettled([
        check("liveness"),
        check(ranking.RankingService.typeName),
        client.getModelStatus({}, { timeoutMs: PROBE_TIMEOUT_MS }),
        client.searchImages({ query: "a dog runs through the grass", topK: 5 }, { timeoutMs: 30_000 }),
      ]);
      for (const r of [live, ready, st, search]) if (r.status === "rejected") failures.push(String((r.reason as Error).message));
      if (st.status !== "fulfilled") break;
      rounds.push({
        live: live.status === "fulfilled" ? live.value : -1,
        ready: ready.status === "fulfilled" ? ready.value : -1,
        pending: st.value.pendingIndex !== undefined,
        datasetVersion: st.value.index?.datasetVersion ?? "",
        searchOk: search.status === "fulfilled" && search.value.results.length === 5,
      });
      if (st.value.index?.datasetVersion === fresh || rounds.length > 2000) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(failures, log.slice(-4000)).toEqual([]);
    expect(rounds.every((r) => r.live === SERVING && r.ready === SERVING && r.searchOk)).toBe(true);
    // it was ready while the index was being computed, on the earlier gallery; then it moved
    const building = rounds.filter((r) => r.pending);
    expect(building.length).toBeGreaterThan(0);
    expect(building.every((r) => r.datasetVersion !== fresh)).toBe(true);
    expect(rounds.at(-1)!.datasetVersion).toBe(fresh);
    expect(log).toContain("index computed and stored");
    const st = await client.getModelStatus({});
    expect(Number(st.index?.images)).toBe(200);
  });
});
