import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { connect } from "node:http2";
import { createServer } from "node:net";
import { promisify } from "node:util";
import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { data, rpcDetails, training } from "@glimpse/api";
import type { RunningServer } from "@glimpse/rpc";
import { TEST_READ_KEY, TEST_WRITE_KEY, testConfig } from "@glimpse/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { build, type RunningGateway } from "./server.js";
import { startTestMesh, type TestMesh } from "./testing.js";

const run = promisify(execFile);
const GRPCURL = new URL("../../../.tools/bin/grpcurl", import.meta.url).pathname;

describe("gateway ↔ services over real sockets", () => {
  const cfg = testConfig();
  let services: RunningServer[] = [];
  let mesh: TestMesh;
  let gateway: RunningGateway;
  let base: string;

  beforeAll(async () => {
    mesh = await startTestMesh(cfg);
    ({ gateway, base } = mesh);
    services = [mesh.ranking, mesh.training, mesh.data];
  });

  afterAll(async () => {
    await mesh?.close();
  });

  it("aggregates gRPC health of every service", async () => {
    const res = await fetch(`${base}/health/detailed`);
    const body = (await res.json()) as { services: Record<string, { status: string }> };
    expect(Object.fromEntries(Object.entries(body.services).map(([k, v]) => [k, v.status]))).toEqual({
      ranking: "SERVING",
      training: "SERVING",
      data: "SERVING",
    });
    expect((await fetch(`${base}/health`)).status).toBe(200);
  });

  it("relays Connect JSON, Connect binary over HTTP/2, gRPC-Web and gRPC to each service", async () => {
    // A Connect JSON call as curl would make it.
    const res = await fetch(`${base}/glimpse.training.v1.TrainingService/ListTrainingRuns`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({});
    // Connect GET for side-effect-free RPCs.
    const get = await fetch(`${base}/glimpse.data.v1.DataService/ListDatasetVersions?encoding=json&message=${encodeURIComponent("{}")}`);
    expect(get.status).toBe(200);

    for (const transport of [
      createConnectTransport({ baseUrl: base, httpVersion: "2" }),
      createGrpcWebTransport({ baseUrl: base, httpVersion: "1.1" }),
      createGrpcTransport({ baseUrl: base }),
    ]) {
      const client = createClient(data.DataService, transport);
      expect((await client.listDatasetVersions({})).versions).toEqual([]);
      // Errors keep their code and details across the relay.
      const e = await client.getImage({ imageId: "../etc" }).catch((x: unknown) => ConnectError.from(x));
      expect((e as ConnectError).code).toBe(Code.InvalidArgument);
      expect((e as ConnectError).findDetails(rpcDetails.BadRequestSchema)[0]?.fieldViolations[0]?.field).toBe("image_id");
    }
  });

  it("requires a write key for mutating RPCs and accepts reads without one", async () => {
    const client = createClient(training.TrainingService, createConnectTransport({ baseUrl: base, httpVersion: "1.1" }));
    const call = (key?: string) =>
      client.startTraining({}, key ? { headers: { authorization: `Bearer ${key}` } } : {}).catch((x: unknown) => ConnectError.from(x));
    expect(((await call()) as ConnectError).code).toBe(Code.Unauthenticated);
    expect(((await call("wrong")) as ConnectError).code).toBe(Code.Unauthenticated);
    expect(((await call(TEST_READ_KEY)) as ConnectError).code).toBe(Code.PermissionDenied);
    // Past auth the call reaches the service, which refuses it for its own reason (no dataset yet).
    expect(((await call(TEST_WRITE_KEY)) as ConnectError).code).toBe(Code.FailedPrecondition);
    // REST: the same rules and HTTP statuses.
    const rest = await fetch(`${base}/training/start`, { method: "POST", body: JSON.stringify({ epochs: 3 }) });
    expect(rest.status).toBe(401);
    const read = await fetch(`${base}/training/history`);
    expect(read.status).toBe(200);
  });

  it("answers bad REST input with INVALID_ARGUMENT and field violations", async () => {
    const res = await fetch(`${base}/inference/text-to-image`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ query: "a dog", top_k: "many" }),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { code: string; details: { type: string; value: string; debug: unknown }[] };
    expect(body.code).toBe("invalid_argument");
    const detail = body.details.find((d) => d.type === "google.rpc.BadRequest")!;
    const bad = fromBinary(rpcDetails.BadRequestSchema, Buffer.from(detail.value, "base64"));
    expect(bad.fieldViolations[0]!.field).toBe("top_k");

    const notJson = await fetch(`${base}/inference/text-to-image`, { method: "POST", body: "{nope" });
    expect(notJson.status).toBe(400);
    const wrongMethod = await fetch(`${base}/inference/text-to-image`);
    expect(wrongMethod.status).toBe(405);
  });

  it("passes Ranking's REST paths through to Ranking's own REST answer: same bytes, request id and key checks", async () => {
    const body = JSON.stringify({ query: "a dog running on the grass", top_k: 4 });
    const headers = { "content-type": "application/json", "x-request-id": "pass-through-1" };
    const viaGateway = await fetch(`${base}/inference/text-to-image`, { method: "POST", headers, body });
    const direct = await fetch(`${mesh.ranking.url}/inference/text-to-image`, { method: "POST", headers, body });
    expect(viaGateway.status).toBe(200);
    expect(viaGateway.headers.get("x-request-id")).toBe("pass-through-1");
    expect(await viaGateway.text()).toBe(await direct.text());
    // GET with a query string, and a write refused without a key, by Ranking, through the gateway
    expect((await fetch(`${base}/model/status`)).status).toBe(200);
    const promote = await fetch(`${base}/model/promote`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ version: "m-0123456789abcdef" }) });
    expect(promote.status).toBe(401);
    // the demo paths are Ranking's too
    const demo = await fetch(`${base}/demo/queries`);
    expect(demo.status).toBe(200);
    // an HTTP/2 caller (h2c) gets the same answer through the pass-through
    const session = connect(base);
    try {
      const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const stream = session.request({ ":method": "POST", ":path": "/inference/text-to-image", "content-type": "application/json" });
        let status = 0;
        const chunks: Buffer[] = [];
        stream.on("response", (h) => (status = Number(h[":status"])));
        stream.on("data", (c: Buffer) => chunks.push(c));
        stream.on("end", () => resolve({ status, body: Buffer.concat(chunks).toString("utf8") }));
        stream.on("error", reject);
        stream.end(body);
      });
      expect(answer.status).toBe(200);
      expect((JSON.parse(answer.body) as { results: unknown[] }).results).toHaveLength(4);
    } finally {
      session.close();
    }
  });

  it("refuses bodies over the size limit", async () => {
    const small = testConfig({ GLIMPSE_MAX_BODY_BYTES: "2048" });
    const gw = await build(small, { port: 0, targets: [{ name: "ranking", url: services[0]!.url }, { name: "training", url: services[1]!.url }, { name: "data", url: services[2]!.url }] });
    try {
      const res = await fetch(`http://127.0.0.1:${gw.port}/inference/text-to-image`, { method: "POST", body: JSON.stringify({ query: "x".repeat(5000) }) });
      expect(res.status).toBe(429); // resource_exhausted
      expect(((await res.json()) as { code: string }).code).toBe("resource_exhausted");
    } finally {
      await gw.close(100);
    }
  });

  it("answers UNAVAILABLE (503) when a backend is down, not a deadline after waiting on it", async () => {
    const port = await freePort();
    const gw = await build(cfg, {
      port: 0,
      targets: [{ name: "ranking", url: `http://127.0.0.1:${port}` }, { name: "training", url: services[1]!.url }, { name: "data", url: services[2]!.url }],
    });
    try {
      const res = await fetch(`http://127.0.0.1:${gw.port}/model/info`);
      // a gateway that waited on the dead backend would answer deadline_exceeded (504) instead
      expect(res.status).toBe(503);
      expect(res.headers.get("retry-after")).toBe("1");
      expect(((await res.json()) as { code: string }).code).toBe("unavailable");
      // the Connect path too
      const connect = await fetch(`http://127.0.0.1:${gw.port}/glimpse.ranking.v1.RankingService/GetModelInfo`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
      expect([connect.status, connect.headers.get("retry-after")]).toEqual([503, "1"]);
      const health = await fetch(`http://127.0.0.1:${gw.port}/health/detailed`);
      expect(health.status).toBe(503);
      expect(((await health.json()) as { services: { ranking: { status: string } } }).services.ranking.status).toBe("UNREACHABLE");
    } finally {
      await gw.close(100);
    }
  });

  it("lists services through gRPC reflection with grpcurl, on a service and on the gateway", async () => {
    expect(existsSync(GRPCURL), "grpcurl missing: run scripts/install-tools.sh").toBe(true);
    const host = (url: string) => url.replace(/^http:\/\//, "");
    const { stdout } = await run(GRPCURL, ["-plaintext", host(services[0]!.url), "list"]);
    expect(stdout.split("\n")).toContain("glimpse.ranking.v1.RankingService");
    expect(stdout.split("\n")).toContain("grpc.health.v1.Health");
    const described = await run(GRPCURL, ["-plaintext", host(services[0]!.url), "describe", "glimpse.ranking.v1.SearchImagesRequest"]);
    expect(described.stdout).toContain("top_k");
    const viaGateway = await run(GRPCURL, ["-plaintext", `127.0.0.1:${gateway.port}`, "list"]);
    expect(viaGateway.stdout).toContain("glimpse.data.v1.DataService");
    const check = await run(GRPCURL, ["-plaintext", "-d", '{"service":"glimpse.data.v1.DataService"}', host(services[2]!.url), "grpc.health.v1.Health/Check"]);
    expect(check.stdout).toContain("SERVING");
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}
