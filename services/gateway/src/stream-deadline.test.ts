/**
 * A watch through the gateway lives as long as the caller wants it, not as long as the gateway's
 * deadline for unary backend calls (GLIMPSE_BACKEND_TIMEOUT_MS): found on a real cluster, where
 * WatchTraining through the gateway died with DEADLINE_EXCEEDED in the middle of a training run.
 * Real sockets: a stand-in Training service (gRPC) behind a real gateway (Connect).
 */
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { training } from "@glimpse/api";
import { bind, type RunningServer } from "@glimpse/rpc";
import { serve } from "@glimpse/runtime";
import { testConfig } from "@glimpse/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { build, type RunningGateway } from "./server.js";

const BACKEND_DEADLINE_MS = 300;
const MESSAGES = 8;
const EVERY_MS = 100; // 8 × 100 ms: well past the 300 ms deadline

describe("server streams through the gateway", () => {
  let backend: RunningServer;
  let gateway: RunningGateway;

  beforeAll(async () => {
    const cfg = testConfig({ GLIMPSE_BACKEND_TIMEOUT_MS: String(BACKEND_DEADLINE_MS) });
    backend = await serve({
      name: "training",
      cfg,
      port: 0,
      servingOnStart: true,
      bindings: [
        bind(training.TrainingService, {
          async *watchTraining(req) {
            for (let i = 1; i <= MESSAGES; i++) {
              await new Promise((r) => setTimeout(r, EVERY_MS));
              yield create(training.WatchTrainingResponseSchema, { event: "epoch", message: `${req.runId} ${i}` });
            }
          },
        }),
      ],
    });
    const gwCfg = testConfig({ GLIMPSE_BACKEND_TIMEOUT_MS: String(BACKEND_DEADLINE_MS), GLIMPSE_TRAINING_URL: `http://127.0.0.1:${backend.port}` });
    gateway = await build(gwCfg, { port: 0 });
  });
  afterAll(async () => {
    await gateway?.close();
    await backend?.close();
  });

  it("relays a watch past the backend deadline when the caller sets none", async () => {
    const client = createClient(training.TrainingService, createConnectTransport({ baseUrl: `http://127.0.0.1:${gateway.port}`, httpVersion: "1.1" }));
    const got: string[] = [];
    for await (const m of client.watchTraining({ runId: "r1" })) got.push(m.message);
    expect(got).toEqual(Array.from({ length: MESSAGES }, (_, i) => `r1 ${i + 1}`));
  });

  it("still ends a watch at the caller's own deadline", async () => {
    const client = createClient(training.TrainingService, createConnectTransport({ baseUrl: `http://127.0.0.1:${gateway.port}`, httpVersion: "1.1" }));
    const got: string[] = [];
    await expect(async () => {
      for await (const m of client.watchTraining({ runId: "r2" }, { timeoutMs: 250 })) got.push(m.message);
    }).rejects.toThrow(/deadline|timed out/i);
    expect(got.length).toBeLessThan(MESSAGES);
  });
});
