/**
 * Connect (JSON and binary) and gRPC-Web calls of Ranking through the gateway are passed through as
 * bytes to Ranking's own port (pass.ts), never relayed over a second gRPC hop: the gateway's relay
 * counter (glimpse_gateway_relayed_total) stays at zero for them, and moves for a native gRPC call.
 * Errors come back as the relay answered them (the native gRPC call through the gateway, still
 * relayed, is the reference), and the gateway still counts each call, keeps request ids, the body
 * limit, CORS and deadlines, and answers in the caller's protocol when Ranking cannot be reached.
 * Real sockets: a Ranking server (demo model) and a gateway; a raw HTTP stand-in where the test
 * must see what the gateway sends, or make the answer break off.
 */
import { once } from "node:events";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, createClient, type Client, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { ranking, rpcDetails } from "@glimpse/api";
import { build as buildRanking, type RankingServer } from "@glimpse/ranking";
import { TEST_WRITE_KEY, testConfig } from "@glimpse/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { build, type RunningGateway } from "./server.js";

const RANKING = "glimpse.ranking.v1.RankingService";
type Ranking = Client<typeof ranking.RankingService>;

/** glimpse_* samples of a /metrics page whose labels include `labels`, summed. */
async function sample(base: string, name: string, labels: Record<string, string>): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  let sum = 0;
  for (const line of text.split("\n")) {
    const m = /^(\w+)\{([^}]*)\} (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...m[2]!.matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) sum += Number(m[3]);
  }
  return sum;
}

const failure = (p: Promise<unknown>): Promise<ConnectError> =>
  p.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (err: unknown) => ConnectError.from(err),
  );
const drain = async (it: AsyncIterable<unknown>) => {
  const out: unknown[] = [];
  for await (const m of it) out.push(m);
  return out;
};

describe("Connect and gRPC-Web to Ranking through the gateway: passed through, not relayed", () => {
  const cfg = testConfig();
  let rankingServer: RankingServer;
  let gateway: RunningGateway;
  let base: string;
  /** The protocols passed through, by name. */
  let passed: [string, Transport][];

  beforeAll(async () => {
    rankingServer = await buildRanking(cfg, { port: 0 });
    gateway = await build(cfg, { port: 0, targets: [{ name: "ranking", url: rankingServer.url }] });
    base = `http://127.0.0.1:${gateway.port}`;
    passed = [
      ["Connect JSON over HTTP/1.1", createConnectTransport({ baseUrl: base, httpVersion: "1.1", useBinaryFormat: false })],
      ["Connect JSON over HTTP/2", createConnectTransport({ baseUrl: base, httpVersion: "2", useBinaryFormat: false })],
      ["Connect binary over HTTP/2", createConnectTransport({ baseUrl: base, httpVersion: "2", useBinaryFormat: true })],
      ["gRPC-Web over HTTP/1.1", createGrpcWebTransport({ baseUrl: base, httpVersion: "1.1" })],
      ["gRPC-Web JSON over HTTP/2", createGrpcWebTransport({ baseUrl: base, httpVersion: "2", useBinaryFormat: false })],
    ];
  }, 120_000);
  afterAll(async () => {
    await gateway?.close(100);
    await rankingServer?.close(100);
  });

  it("answers unary and server-streaming calls and Connect GET without the relay; each call counted by method and code", async () => {
    const relayedBefore = await sample(base, "glimpse_gateway_relayed_total", { service: RANKING });
    const okBefore = await sample(base, "glimpse_rpc_requests_total", { service: RANKING, method: "SearchImages", code: "ok" });
    const rankingBefore = await sample(base, "glimpse_rpc_requests_total", { service: RANKING, method: "BuildIndex", code: "ok" });
    for (const [name, transport] of passed) {
      const client: Ranking = createClient(ranking.RankingService, transport);
      const found = await client.searchImages({ query: "a dog running on the grass", topK: 3 });
      expect(found.results, name).toHaveLength(3);
      expect((await client.listDemoQueries({})).queries.length, name).toBeGreaterThan(0);
      // a server stream (the stored index is reused: one "done")
      const stages = (await drain(client.buildIndex({}, { headers: { authorization: `Bearer ${TEST_WRITE_KEY}` } }))) as ranking.BuildIndexResponse[];
      expect(stages.map((s) => s.stage), name).toEqual(["done"]);
    }
    const get = await fetch(`${base}/${RANKING}/GetModelInfo?encoding=json&message=${encodeURIComponent("{}")}`);
    expect(get.status).toBe(200);
    expect(((await get.json()) as { model: { version: string } }).model.version).toMatch(/^m-/);

    expect(await sample(base, "glimpse_gateway_relayed_total", { service: RANKING })).toBe(relayedBefore);
    expect(await sample(base, "glimpse_rpc_requests_total", { service: RANKING, method: "SearchImages", code: "ok" })).toBe(okBefore + passed.length);
    expect(await sample(base, "glimpse_rpc_requests_total", { service: RANKING, method: "BuildIndex", code: "ok" })).toBe(rankingBefore + passed.length);
    expect(await sample(base, "glimpse_rpc_duration_seconds_count", { service: RANKING, method: "GetModelInfo", code: "ok" })).toBeGreaterThanOrEqual(1);

    // Native gRPC is still relayed, and the counter sees it.
    const grpc: Ranking = createClient(ranking.RankingService, createGrpcTransport({ baseUrl: base }));
    expect((await grpc.searchImages({ query: "a dog", topK: 2 })).results).toHaveLength(2);
    expect(await sample(base, "glimpse_gateway_relayed_total", { service: RANKING, method: "SearchImages" })).toBe(1);
  });

  it("answers errors as the relay did: INVALID_ARGUMENT with its BadRequest, UNAUTHENTICATED, for unary calls and streams", async () => {
    const relayed: Ranking = createClient(ranking.RankingService, createGrpcTransport({ baseUrl: base }));
    const bad = { query: "", topK: 500 };
    const reference = await failure(relayed.searchImages(bad));
    expect(reference.code).toBe(Code.InvalidArgument);
    const fields = (e: ConnectError) => e.findDetails(rpcDetails.BadRequestSchema).flatMap((d) => d.fieldViolations.map((v) => `${v.field}: ${v.description}`));
    expect(fields(reference).map((f) => f.split(":")[0])).toEqual(["query", "top_k"]);
    const unauthenticated = await failure(relayed.promoteModel({ version: "m-0123456789abcdef" }));
    expect(unauthenticated.code).toBe(Code.Unauthenticated);
    const streamRefused = await failure(drain(relayed.buildIndex({})));
    expect(streamRefused.code).toBe(Code.Unauthenticated);

    const invalidBefore = await sample(base, "glimpse_rpc_requests_total", { service: RANKING, method: "SearchImages", code: "invalid_argument" });
    const deniedBefore = await sample(base, "glimpse_rpc_requests_total", { service: RANKING, method: "PromoteModel", code: "unauthenticated" });
    const streamDeniedBefore = await sample(base, "glimpse_rpc_requests_total", { service: RANKING, method: "BuildIndex", code: "unauthenticated" });
    const relayedBefore = await sample(base, "glimpse_gateway_relayed_total", { service: RANKING });
    for (const [name, transport] of passed) {
      const client: Ranking = createClient(ranking.RankingService, transport);
      const e = await failure(client.searchImages(bad));
      expect([e.code, e.rawMessage, fields(e)], name).toEqual([reference.code, reference.rawMessage, fields(reference)]);
      const denied = await failure(client.promoteModel({ version: "m-0123456789abcdef" }));
      expect([denied.code, denied.rawMessage], name).toEqual([unauthenticated.code, unauthenticated.rawMessage]);
      const s = await failure(drain(client.buildIndex({})));
      expect([s.code, s.rawMessage], name).toEqual([streamRefused.code, streamRefused.rawMessage]);
    }
    expect(await sample(base, "glimpse_gateway_relayed_total", { service: RANKING })).toBe(relayedBefore);
    expect(await sample(base, "glimpse_rpc_requests_total", { service: RANKING, method: "SearchImages", code: "invalid_argument" })).toBe(invalidBefore + passed.length);
    expect(await sample(base, "glimpse_rpc_requests_total", { service: RANKING, method: "PromoteModel", code: "unauthenticated" })).toBe(deniedBefore + passed.length);
    expect(await sample(base, "glimpse_rpc_requests_total", { service: RANKING, method: "BuildIndex", code: "unauthenticated" })).toBe(streamDeniedBefore + passed.length);

    // As curl sees it: the Connect error JSON, its HTTP status, and the request id.
    const res = await fetch(`${base}/${RANKING}/SearchImages`, { method: "POST", headers: { "content-type": "application/json", "x-request-id": "pass-1" }, body: JSON.stringify(bad) });
    expect([res.status, res.headers.get("x-request-id")]).toEqual([400, "pass-1"]);
    expect(((await res.json()) as { code: string }).code).toBe("invalid_argument");
  });

  it("keeps the body limit and CORS", async () => {
    const gw = await build(testConfig({ GLIMPSE_MAX_BODY_BYTES: "2048", GLIMPSE_CORS_ORIGINS: "https://app.example" }), { port: 0, targets: [{ name: "ranking", url: rankingServer.url }] });
    const at = `http://127.0.0.1:${gw.port}`;
    try {
      const big = { query: "x".repeat(5000), topK: 3 };
      const res = await fetch(`${at}/${RANKING}/SearchImages`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(big) });
      expect([res.status, ((await res.json()) as { code: string }).code]).toEqual([429, "resource_exhausted"]);
      for (const transport of [createGrpcWebTransport({ baseUrl: at, httpVersion: "1.1" }), createConnectTransport({ baseUrl: at, httpVersion: "1.1" })]) {
        const client: Ranking = createClient(ranking.RankingService, transport);
        expect((await failure(client.searchImages(big))).code).toBe(Code.ResourceExhausted);
        expect((await failure(drain(client.buildIndex({ modelVersion: "m".repeat(4000) })))).code).toBe(Code.ResourceExhausted);
      }

      const preflight = await fetch(`${at}/${RANKING}/SearchImages`, { method: "OPTIONS", headers: { origin: "https://app.example", "access-control-request-method": "POST", "access-control-request-headers": "content-type,x-grpc-web,x-user-agent" } });
      expect(preflight.status).toBe(204);
      expect(preflight.headers.get("access-control-allow-headers")).toMatch(/X-Grpc-Web/i);
      const call = await fetch(`${at}/${RANKING}/ListDemoQueries`, { method: "POST", headers: { origin: "https://app.example", "content-type": "application/json" }, body: "{}" });
      expect(call.status).toBe(200);
      expect(call.headers.get("access-control-allow-origin")).toBe("https://app.example");
      expect(call.headers.get("access-control-expose-headers")).toMatch(/grpc-status/i);
      expect(call.headers.get("access-control-expose-headers")).toMatch(/x-request-id/i);
    } finally {
      await gw.close(100);
    }
  });

  it("answers UNAVAILABLE in the caller's protocol when Ranking cannot be reached", async () => {
    const dead = await new Promise<number>((resolve) => {
      const s = http.createServer().listen(0, "127.0.0.1", () => {
        const port = (s.address() as AddressInfo).port;
        s.close(() => resolve(port));
      });
    });
    const gw = await build(cfg, { port: 0, targets: [{ name: "ranking", url: `http://127.0.0.1:${dead}` }] });
    const at = `http://127.0.0.1:${gw.port}`;
    try {
      for (const transport of [createConnectTransport({ baseUrl: at, httpVersion: "1.1" }), createGrpcWebTransport({ baseUrl: at, httpVersion: "1.1" }), createConnectTransport({ baseUrl: at, httpVersion: "2", useBinaryFormat: false })]) {
        const client: Ranking = createClient(ranking.RankingService, transport);
        expect((await failure(client.getModelInfo({}))).code).toBe(Code.Unavailable);
        expect((await failure(drain(client.buildIndex({})))).code).toBe(Code.Unavailable);
      }
      expect(await sample(at, "glimpse_rpc_requests_total", { service: RANKING, method: "BuildIndex", code: "unavailable" })).toBe(3);
    } finally {
      await gw.close(100);
    }
  });
});

describe("what the gateway sends on, and a deadline or an answer that breaks off (a stand-in Ranking)", () => {
  const cfg = testConfig({ GLIMPSE_BACKEND_TIMEOUT_MS: "4000" });
  let stand: http.Server;
  let gateway: RunningGateway;
  let base: string;
  const seen: http.IncomingHttpHeaders[] = [];
  /** How the stand-in answers the next call. */
  let answer: (req: http.IncomingMessage, res: http.ServerResponse) => void = () => {};

  beforeAll(async () => {
    stand = http.createServer((req, res) => {
      seen.push(req.headers);
      req.resume();
      req.on("end", () => answer(req, res));
    });
    stand.listen(0, "127.0.0.1");
    await once(stand, "listening");
    gateway = await build(cfg, { port: 0, targets: [{ name: "ranking", url: `http://127.0.0.1:${(stand.address() as AddressInfo).port}` }] });
    base = `http://127.0.0.1:${gateway.port}`;
  });
  afterAll(async () => {
    await gateway?.close(100);
    stand?.closeAllConnections();
    await new Promise((r) => stand?.close(r));
  });

  const envelope = (flags: number, json: unknown) => {
    const data = Buffer.from(JSON.stringify(json));
    const head = Buffer.alloc(5);
    head[0] = flags;
    head.writeUInt32BE(data.length, 1);
    return Buffer.concat([head, data]);
  };

  it("sends on the protocol's headers, the key and the request id, and the gateway's deadline for a unary call that brings none", async () => {
    answer = (_req, res) => res.writeHead(200, { "content-type": "application/json" }).end("{}");
    const unary = (headers: Record<string, string>) => fetch(`${base}/${RANKING}/GetModelInfo`, { method: "POST", headers: { "content-type": "application/json", "connect-protocol-version": "1", ...headers }, body: "{}" });
    seen.length = 0;
    expect((await unary({ authorization: "Bearer k", "x-request-id": "id-1", "accept-encoding": "gzip" })).status).toBe(200);
    expect(seen[0]).toMatchObject({ authorization: "Bearer k", "x-request-id": "id-1", "connect-protocol-version": "1", "connect-timeout-ms": "4000", "accept-encoding": "gzip", "content-type": "application/json" });
    await unary({ "connect-timeout-ms": "1234" });
    expect(seen[1]!["connect-timeout-ms"]).toBe("1234");

    answer = (_req, res) => res.writeHead(200, { "content-type": "application/grpc-web+proto", "grpc-status": "0" }).end();
    await fetch(`${base}/${RANKING}/GetModelInfo`, { method: "POST", headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1", "x-user-agent": "grpc-web-javascript/0.1" }, body: Buffer.alloc(5) });
    expect(seen[2]).toMatchObject({ "x-grpc-web": "1", "x-user-agent": "grpc-web-javascript/0.1", "grpc-timeout": "4000m" });

    // a stream gets no deadline it did not ask for (a watch lives as long as its caller wants)
    answer = (_req, res) => res.writeHead(200, { "content-type": "application/connect+json" }).end(envelope(2, {}));
    await (await fetch(`${base}/${RANKING}/BuildIndex`, { method: "POST", headers: { "content-type": "application/connect+json" }, body: envelope(0, {}) })).arrayBuffer();
    expect(seen[3]!["connect-timeout-ms"]).toBeUndefined();
  });

  it("gives up on a service that does not answer within the caller's deadline: DEADLINE_EXCEEDED, in the caller's protocol", async () => {
    answer = () => {}; // never answers
    const started = Date.now();
    const res = await fetch(`${base}/${RANKING}/GetModelInfo`, { method: "POST", headers: { "content-type": "application/json", "connect-timeout-ms": "100" }, body: "{}" });
    expect([res.status, ((await res.json()) as { code: string }).code]).toEqual([504, "deadline_exceeded"]);
    expect(Date.now() - started).toBeLessThan(3_000);
    const web = await fetch(`${base}/${RANKING}/GetModelInfo`, { method: "POST", headers: { "content-type": "application/grpc-web+proto", "grpc-timeout": "100m" }, body: Buffer.alloc(5) });
    expect([web.status, web.headers.get("grpc-status")]).toEqual([200, String(Code.DeadlineExceeded)]);
    expect(await sample(base, "glimpse_rpc_requests_total", { service: RANKING, method: "GetModelInfo", code: "deadline_exceeded" })).toBe(2);
  });

  it("ends a stream that breaks off with a last message saying so, and counts it", async () => {
    answer = (_req, res) => {
      res.writeHead(200, { "content-type": "application/connect+json" });
      res.write(envelope(0, { stage: "images", done: "1", total: "2" }), () => setTimeout(() => res.destroy(), 50));
    };
    const client: Ranking = createClient(ranking.RankingService, createConnectTransport({ baseUrl: base, httpVersion: "1.1", useBinaryFormat: false }));
    const got: string[] = [];
    const e = await failure((async () => {
      for await (const m of client.buildIndex({})) got.push(m.stage);
    })());
    expect(got).toEqual(["images"]);
    expect(e.code).toBe(Code.Unavailable);
    expect(await sample(base, "glimpse_rpc_requests_total", { service: RANKING, method: "BuildIndex", code: "unavailable" })).toBe(1);
  });
});
