/**
 * A stand-in Kubernetes API server over HTTP for unit tests of code that calls the API: every
 * request is recorded and answered by the test's handler, and the KubeConfig points a real
 * @kubernetes/client-node at it.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import * as k8s from "@kubernetes/client-node";

export interface ApiRequest {
  method: string;
  /** Without the query string. */
  path: string;
  contentType: string | undefined;
  body: string;
}

export type Send = (status: number, obj: unknown) => void;

export interface FakeApi {
  kc: k8s.KubeConfig;
  requests: ApiRequest[];
  close(): Promise<void>;
}

export async function fakeKubernetesApi(handle: (req: ApiRequest, send: Send) => void): Promise<FakeApi> {
  const requests: ApiRequest[] = [];
  const server: Server = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      const r = { method: req.method!, path: req.url!.split("?")[0]!, contentType: req.headers["content-type"], body };
      requests.push(r);
      handle(r, (status, obj) => void res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(obj)));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const kc = new k8s.KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "c", server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true }],
    users: [{ name: "u", token: "t" }],
    contexts: [{ name: "x", cluster: "c", user: "u" }],
    currentContext: "x",
  });
  return { kc, requests, close: () => new Promise<void>((r) => server.close(() => r())) };
}
