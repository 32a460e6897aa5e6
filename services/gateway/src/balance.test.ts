/**
 * Requests, not connections, are spread over Ranking's replicas: the gateway resolves the backend's
 * name (a fake resolver here, as a headless Service's DNS would answer) and sends each call to the
 * next address — the REST and Connect/gRPC-Web pass-through and the native gRPC relay alike. A
 * replica that stops answering costs no failed call, one that leaves the records is no longer asked,
 * and over TLS the certificate is checked against the Service's name, not the pod's address.
 * Real sockets: two stand-in Ranking servers on one port at 127.0.0.1 and 127.0.0.2 (as two pods).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { createClient, type Client, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { ranking } from "@glimpse/api";
import { createLogger } from "@glimpse/logging";
import { ApiKeys, bind, startGrpcServer, type RunningServer, type TlsFiles } from "@glimpse/rpc";
import { testConfig } from "@glimpse/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Resolve } from "./endpoints.js";
import { build, type RunningGateway } from "./server.js";

const PODS = ["127.0.0.1", "127.0.0.2"];

/** A stand-in Ranking replica: answers GetModelInfo (and its REST path) and BuildIndex, counting the calls. */
async function replica(host: string, port: number, calls: Map<string, number>, tls?: TlsFiles): Promise<RunningServer> {
  const count = () => calls.set(host, (calls.get(host) ?? 0) + 1);
  return startGrpcServer({
    name: "ranking",
    host,
    port,
    logger: createLogger("ranking", "warn"),
    apiKeys: new ApiKeys([]),
    tls,
    services: [
      bind(ranking.RankingService, {
        getModelInfo() {
          count();
          return create(ranking.GetModelInfoResponseSchema, { model: { version: `m-${host}` } });
        },
        async *buildIndex() {
          count();
          yield create(ranking.BuildIndexResponseSchema, { stage: "done" });
        },
      }),
    ],
    rest: { services: { ranking: ranking.RankingService }, maxBodyBytes: 1 << 20, timeoutMs: 5_000 },
  });
}

/** Each way in: REST, Connect JSON, gRPC-Web (passed through) and native gRPC (relayed). */
function callers(base: string): [string, () => Promise<string>][] {
  const client = (t: Transport): Client<typeof ranking.RankingService> => createClient(ranking.RankingService, t);
  const connect = client(createConnectTransport({ baseUrl: base, httpVersion: "1.1", useBinaryFormat: false }));
  const web = client(createGrpcWebTransport({ baseUrl: base, httpVersion: "1.1" }));
  const grpc = client(createGrpcTransport({ baseUrl: base }));
  return [
    ["REST", async () => {
      const res = await fetch(`${base}/model/info`);
      if (res.status !== 200) throw new Error(`HTTP ${res.status} ${await res.text()}`);
      return ((await res.json()) as { model: { version: string } }).model.version;
    }],
    ["Connect JSON", async () => (await connect.getModelInfo({})).model!.version],
    ["gRPC-Web", async () => (await web.getModelInfo({})).model!.version],
    ["gRPC (relayed)", async () => (await grpc.getModelInfo({})).model!.version],
    ["Connect stream", async () => {
      for await (const m of connect.buildIndex({})) return m.stage;
      return "";
    }],
  ];
}

describe("request-level balancing over a backend's addresses", () => {
  const calls = new Map<string, number>();
  let records = [...PODS];
  const resolve: Resolve = async (host) => {
    if (host !== "ranking.test") throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: "ENOTFOUND" });
    return records;
  };
  let port: number;
  let pods: RunningServer[];
  let gateway: RunningGateway;
  let base: string;

  beforeAll(async () => {
    const first = await replica(PODS[0]!, 0, calls);
    port = first.port;
    pods = [first, await replica(PODS[1]!, port, calls)];
    gateway = await build(testConfig({ GLIMPSE_BACKEND_RESOLVE_MS: "100" }), { port: 0, resolve, targets: [{ name: "ranking", url: `http://ranking.test:${port}` }] });
    base = `http://127.0.0.1:${gateway.port}`;
    await new Promise((r) => setTimeout(r, 50)); // the first resolution
  });
  afterAll(async () => {
    await gateway?.close(100);
    await Promise.all(pods.map((p) => p.close(100)));
  });

  it("sends each call to the next replica, whatever the protocol", async () => {
    for (const [name, call] of callers(base)) {
      calls.clear();
      for (let i = 0; i < 20; i++) await call();
      expect(Object.fromEntries(calls), name).toEqual({ "127.0.0.1": 10, "127.0.0.2": 10 });
    }
  });

  it("loses no call when a replica stops answering, and spreads again over the records' new set", async () => {
    await pods[1]!.close(100);
    calls.clear();
    for (const [name, call] of callers(base)) for (let i = 0; i < 10; i++) expect(await call(), name).toMatch(/^(m-127\.0\.0\.1|done)$/);
    expect(Object.fromEntries(calls)).toEqual({ "127.0.0.1": 50 });

    // The pod leaves the records, a new one comes up at the same address and joins them.
    records = [PODS[0]!];
    await new Promise((r) => setTimeout(r, 300));
    pods[1] = await replica(PODS[1]!, port, calls);
    records = [...PODS];
    await new Promise((r) => setTimeout(r, 300));
    for (const [name, call] of callers(base)) {
      calls.clear();
      for (let i = 0; i < 20; i++) await call();
      expect(Object.fromEntries(calls), name).toEqual({ "127.0.0.1": 10, "127.0.0.2": 10 });
    }
  });
});

describe("request-level balancing over TLS", () => {
  const dir = mkdtempSync(join(tmpdir(), "glimpse-tls-"));
  const [cert, key] = [join(dir, "cert.pem"), join(dir, "key.pem")];
  // the certificate names the Service, not an address
  execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=ranking.test", "-addext", "subjectAltName=DNS:ranking.test", "-keyout", key, "-out", cert], { stdio: "ignore" });
  const calls = new Map<string, number>();
  let pods: RunningServer[];
  let gateway: RunningGateway;

  beforeAll(async () => {
    const tls = { cert: readFileSync(cert, "utf8"), key: readFileSync(key, "utf8") };
    const first = await replica(PODS[0]!, 0, calls, tls);
    pods = [first, await replica(PODS[1]!, first.port, calls, tls)];
    // the URL names the ClusterIP Service, whose name the certificate holds; the pods are found by the headless one
    const resolve: Resolve = async (host) => (host === "ranking-headless.test" ? PODS : Promise.reject(Object.assign(new Error(host), { code: "ENOTFOUND" })));
    gateway = await build(testConfig({ GLIMPSE_TLS_CA: cert }), { port: 0, resolve, targets: [{ name: "ranking", url: `https://ranking.test:${first.port}`, dnsName: "ranking-headless.test" }] });
    await new Promise((r) => setTimeout(r, 50));
  });
  afterAll(async () => {
    await gateway?.close(100);
    await Promise.all(pods.map((p) => p.close(100)));
  });

  it("checks each replica's certificate against the Service's name", async () => {
    for (const [name, call] of callers(`http://127.0.0.1:${gateway.port}`)) {
      calls.clear();
      for (let i = 0; i < 4; i++) await call();
      expect(Object.fromEntries(calls), name).toEqual({ "127.0.0.1": 2, "127.0.0.2": 2 });
    }
  });
});
