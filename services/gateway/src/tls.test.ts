import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { health } from "@glimpse/api";
import { testConfig } from "@glimpse/runtime/testing";
import { build as buildData } from "@glimpse/data";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { build, type RunningGateway } from "./server.js";
import type { RunningServer } from "@glimpse/rpc";

function selfSigned(): { cert: string; key: string } {
  const dir = mkdtempSync(join(tmpdir(), "glimpse-tls-"));
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert], { stdio: "ignore" });
  return { cert, key };
}

function httpsGet(url: string, ca: string): Promise<{ status: number; alpn: string | false; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca }, (res) => {
      const alpn = (res.socket as import("node:tls").TLSSocket).alpnProtocol ?? false;
      let body = "";
      res.on("data", (c: Buffer) => (body += c.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, alpn, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("TLS on every port", () => {
  const { cert, key } = selfSigned();
  const ca = readFileSync(cert, "utf8");
  const cfg = testConfig({ GLIMPSE_TLS_CERT: cert, GLIMPSE_TLS_KEY: key, GLIMPSE_TLS_CA: cert });
  let data: RunningServer;
  let gateway: RunningGateway;

  beforeAll(async () => {
    data = await buildData(cfg, { port: 0 });
    gateway = await build(cfg, { port: 0, targets: [{ name: "data", url: data.url }, { name: "ranking", url: data.url }, { name: "training", url: data.url }] });
  });
  afterAll(async () => {
    await gateway?.close(100);
    await data?.close(100);
  });

  it("serves gRPC over TLS on a service", async () => {
    expect(data.url).toMatch(/^https:/);
    const client = createClient(health.Health, createGrpcTransport({ baseUrl: data.url, nodeOptions: { ca } }));
    expect((await client.check({ service: "" })).status).toBe(health.HealthCheckResponse_ServingStatus.SERVING);
  });

  it("serves HTTP/1.1 over TLS on the gateway and relays to a TLS backend", async () => {
    const res = await httpsGet(`https://127.0.0.1:${gateway.port}/health/detailed`, ca);
    expect(res.alpn === false || res.alpn === "http/1.1").toBe(true);
    const body = JSON.parse(res.body) as { services: { data: { status: string } } };
    expect(body.services.data.status).toBe("SERVING");
  });

  it("serves gRPC (HTTP/2 by ALPN) over TLS on the gateway", async () => {
    const client = createClient(health.Health, createGrpcTransport({ baseUrl: `https://127.0.0.1:${gateway.port}`, nodeOptions: { ca } }));
    expect((await client.check({ service: "" })).status).toBe(health.HealthCheckResponse_ServingStatus.SERVING);
  });
});
