import { execFile } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { freePorts } from "@glimpse/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startMesh, type Mesh } from "./mesh.js";

const run = promisify(execFile);
const GRPCURL = new URL("../../../.tools/bin/grpcurl", import.meta.url).pathname;

describe("the embedded mesh (separate processes, real gRPC between them)", () => {
  let mesh: Mesh;
  let ports: number[];
  const lines: string[] = [];

  beforeAll(async () => {
    ports = await freePorts(7);
    const [gw, r, t, d, rm, tm, dm] = ports.map(String) as [string, string, string, string, string, string, string];
    mesh = await startMesh({
      env: {
        GLIMPSE_DATA_DIR: mkdtempSync(join(tmpdir(), "glimpse-mesh-")),
        GLIMPSE_GATEWAY_PORT: gw,
        GLIMPSE_RANKING_PORT: r,
        GLIMPSE_TRAINING_PORT: t,
        GLIMPSE_DATA_PORT: d,
        GLIMPSE_RANKING_METRICS_PORT: rm,
        GLIMPSE_TRAINING_METRICS_PORT: tm,
        GLIMPSE_DATA_METRICS_PORT: dm,
        GLIMPSE_API_KEYS: "",
        GLIMPSE_LOG_LEVEL: "warn",
        // the supervision test's stalled archive server is on loopback
        GLIMPSE_SOURCE_ALLOWLIST: "file:,https:,http://127.0.0.1",
      },
      onLine: (c, line) => lines.push(`${c} | ${line}`),
      restart: { baseDelayMs: 100 },
    });
  }, 120_000);

  afterAll(async () => {
    await mesh?.stop();
  });

  it("generates an API key instead of running open", () => {
    expect(mesh.apiKey).toMatch(/^glk_/);
  });

  it("serves health for every service through the gateway", async () => {
    let body: { services: Record<string, { status: string }> } | undefined;
    for (let i = 0; i < 120; i++) {
      body = (await (await fetch(`${mesh.gatewayUrl}/health/detailed`)).json()) as typeof body;
      if (Object.values(body!.services).every((s) => s.status === "SERVING")) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(Object.keys(body!.services).sort()).toEqual(["data", "ranking", "training"]);
    for (const s of Object.values(body!.services)) expect(s.status).toBe("SERVING");
  });

  it("reaches each service with a Connect JSON call through the gateway", async () => {
    for (const path of [
      "glimpse.ranking.v1.RankingService/ListDemoQueries",
      "glimpse.training.v1.TrainingService/ListTrainingRuns",
      "glimpse.data.v1.DataService/ListDatasetVersions",
    ]) {
      const res = await fetch(`${mesh.gatewayUrl}/${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
      const body = (await res.json()) as Record<string, unknown>;
      expect(res.status, `${path}: ${JSON.stringify(body)}`).toBe(200);
      expect(res.headers.get("content-type")).toMatch(/^application\/json/);
      expect(body.code, path).toBeUndefined();
    }
    // the embedded default serves the demo queries from the seeded pack: a real answer, not {}
    const demo = await fetch(`${mesh.gatewayUrl}/glimpse.ranking.v1.RankingService/ListDemoQueries`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(((await demo.json()) as { queries?: unknown[] }).queries?.length).toBeGreaterThan(0);
  });

  it("lists the ranking service through reflection (grpcurl)", async () => {
    const { stdout } = await run(GRPCURL, ["-plaintext", `127.0.0.1:${ports[1]}`, "list"]);
    expect(stdout).toContain("glimpse.ranking.v1.RankingService");
  });

  it("exposes Prometheus metrics per process", async () => {
    const text = await (await fetch(`http://127.0.0.1:${ports[4]}/metrics`)).text();
    expect(text).toContain("glimpse_rpc_requests_total");
  });

  describe("supervision: kill -9 of one service under load", () => {
    const READS: Record<"ranking" | "training" | "data", string> = {
      ranking: "glimpse.ranking.v1.RankingService/ListDemoQueries",
      training: "glimpse.training.v1.TrainingService/ListTrainingRuns",
      data: "glimpse.data.v1.DataService/ListDatasetVersions",
    };
    const post = (path: string, body: unknown = {}, headers: Record<string, string> = {}) =>
      fetch(`${mesh.gatewayUrl}/${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });

    /** Two clients per service reading through the gateway until stopped; every answer recorded. */
    function load() {
      let stopped = false;
      const answers: { service: keyof typeof READS; status: number; retryAfter: string | null; body?: string }[] = [];
      const loops = (Object.keys(READS) as (keyof typeof READS)[]).flatMap((service) =>
        [0, 1].map(async () => {
          while (!stopped) {
            const res = await post(READS[service]);
            const text = await res.text();
            answers.push({ service, status: res.status, retryAfter: res.headers.get("retry-after"), ...(res.status === 200 ? {} : { body: text }) });
          }
        }),
      );
      return { answers, stop: async () => { stopped = true; await Promise.all(loops); } };
    }

    const servingAgain = async (service: string) => {
      for (;;) {
        const body = (await (await fetch(`${mesh.gatewayUrl}/health/detailed`)).json()) as { services: Record<string, { status: string }> };
        if (body.services[service]?.status === "SERVING") return;
        await new Promise((r) => setTimeout(r, 100));
      }
    };

    for (const victim of ["ranking", "training", "data"] as const) {
      it(`${victim}: restarts with backoff; requests to the others never fail; its own get 503 + Retry-After meanwhile`, async () => {
        const sup = mesh.children.get(victim)!;
        const before = sup.restarts;
        const oldPid = sup.child.pid;
        const l = load();
        while (l.answers.length < 30) await new Promise((r) => setTimeout(r, 20));
        const crashed = new Promise((r) => sup.once("crash", r));
        const respawned = new Promise((r) => sup.once("spawn", r));
        const t0 = performance.now();
        sup.child.kill("SIGKILL");
        await crashed;
        await respawned;
        await servingAgain(victim);
        // recovery time is a figure for the notes, not an assertion
        console.log(`[supervision] ${victim}: SERVING again ${Math.round(performance.now() - t0)} ms after kill -9`);
        const atRecovery = l.answers.length;
        while (l.answers.length < atRecovery + 30) await new Promise((r) => setTimeout(r, 20));
        await l.stop();
        expect(sup.restarts).toBe(before + 1);
        expect(sup.child.pid).not.toBe(oldPid);
        expect(sup.crashLoop).toBe(false);
        const others = l.answers.filter((a) => a.service !== victim);
        expect(others.filter((a) => a.status !== 200)).toEqual([]);
        for (const a of l.answers.filter((x) => x.service === victim && x.status !== 200)) expect([a.status, a.retryAfter], a.body).toEqual([503, "1"]);
        expect(l.answers.filter((a) => a.service === victim).at(-1)?.status).toBe(200);
        expect(lines.some((x) => x.startsWith(`${victim} | exited (SIGKILL); restarting in`))).toBe(true);
      }, 120_000);
    }

    it("a pipeline run in flight when Data is killed is marked failed after the restart, not left running", async () => {
      // an archive source that never finishes: the run is certainly downloading at the kill
      let reached!: () => void;
      const downloading = new Promise<void>((r) => (reached = r));
      const stalled = createHttpServer((_q, res) => {
        res.writeHead(200, { "content-length": String(1 << 30) });
        res.write(Buffer.alloc(1024));
        reached();
      });
      await new Promise<void>((r) => stalled.listen(0, "127.0.0.1", r));
      try {
        const auth = { authorization: `Bearer ${mesh.apiKey}` };
        const url = `http://127.0.0.1:${(stalled.address() as AddressInfo).port}/i.zip`;
        const started = (await (await post("glimpse.data.v1.DataService/StartPipelineRun", { params: { imagesUrl: url, captionsUrl: url } }, auth)).json()) as { run: { runId: string } };
        await downloading;
        const sup = mesh.children.get("data")!;
        const respawned = new Promise((r) => sup.once("spawn", r));
        sup.child.kill("SIGKILL");
        await respawned;
        await servingAgain("data");
        const got = (await (await post("glimpse.data.v1.DataService/GetPipelineRun", { runId: started.run.runId })).json()) as { run: { state: string; error: string } };
        expect(got.run.state).toBe("RUN_STATE_FAILED");
        expect(got.run.error).toContain("the Data service restarted while this run was in progress");
      } finally {
        stalled.closeAllConnections();
        await new Promise((r) => stalled.close(r));
      }
    }, 120_000);
  });
});
