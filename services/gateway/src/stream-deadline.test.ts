/**
 * A watch through the gateway lives as long as the caller wants it, not as long as the gateway's
 * deadline for unary backend calls (GLIMPSE_BACKEND_TIMEOUT_MS): found on a real cluster, where
 * WatchTraining through the gateway died with DEADLINE_EXCEEDED in the middle of a training run.
 * Real sockets: a stand-in Training service (gRPC) behind a real gateway (Connect). And a watch whose
 * connection to the service is cut mid-stream ends UNAVAILABLE (retry), not CANCELED: seen on a real
 * cluster as "http/2 stream closed with error code CANCEL", which no client retries.
 */
import * as http2 from "node:http2";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { encodeEnvelope } from "@connectrpc/connect/protocol";
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

describe("a watch whose connection to the service is cut", () => {
  let backend: http2.Http2Server;
  let gateway: RunningGateway;

  beforeAll(async () => {
    // A gRPC server that sends one message, then ends its connection with CANCEL: the relay's
    // client reports exactly what the cluster showed ("http/2 stream closed with error code CANCEL").
    backend = http2.createServer();
    backend.on("stream", (stream, headers) => {
      if (headers[":path"] !== "/glimpse.training.v1.TrainingService/WatchTraining") return stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      stream.respond({ ":status": 200, "content-type": "application/grpc+proto" });
      const msg = toBinary(training.WatchTrainingResponseSchema, create(training.WatchTrainingResponseSchema, { event: "epoch", message: "one" }));
      stream.write(encodeEnvelope(0, msg), () => setTimeout(() => stream.session?.destroy(undefined, http2.constants.NGHTTP2_CANCEL), 50));
    });
    await new Promise<void>((r) => backend.listen(0, "127.0.0.1", r));
    const port = (backend.address() as { port: number }).port;
    gateway = await build(testConfig({ GLIMPSE_TRAINING_URL: `http://127.0.0.1:${port}` }), { port: 0 });
  });
  afterAll(async () => {
    await gateway?.close();
    await new Promise((r) => backend?.close(r));
  });

  it("ends UNAVAILABLE, which the caller retries, after the messages that came", async () => {
    const client = createClient(training.TrainingService, createConnectTransport({ baseUrl: `http://127.0.0.1:${gateway.port}`, httpVersion: "1.1" }));
    const got: string[] = [];
    let error: ConnectError | undefined;
    try {
      for await (const m of client.watchTraining({ runId: "r3" })) got.push(m.message);
    } catch (err) {
      error = ConnectError.from(err);
    }
    expect(got).toEqual(["one"]);
    expect(error?.code, error?.message).toBe(Code.Unavailable);
    expect(error?.rawMessage).toMatch(/connection to training was cut: .*CANCEL/);
  });
});
