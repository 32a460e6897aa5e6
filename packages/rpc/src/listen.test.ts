/**
 * Draining without resetting keep-alive clients (found by `helm upgrade` under load on a real
 * cluster: requests on reused connections failed with "other side closed" while a gateway pod
 * drained). Real sockets, HTTP/1.1 keep-alive.
 */
import * as http from "node:http";
import { describe, expect, it } from "vitest";
import { listen } from "./listen.js";

function get(port: number, agent: http.Agent): Promise<{ status: number; connection: string | undefined; socket: unknown }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path: "/", agent }, (res) => {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode!, connection: res.headers.connection, socket: req.socket }));
    });
    req.on("error", reject);
  });
}

describe("listen: drain", () => {
  it("answers a request on an idle keep-alive connection after close() began, telling the client to close it", async () => {
    const server = await listen({ host: "127.0.0.1", port: 0, http1: true, handler: (_req, res) => res.end("ok") });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await get(server.port, agent);
      expect(first.status).toBe(200);
      expect(first.connection).toBe("keep-alive");
      const closing = server.close(10_000);
      await new Promise((r) => setTimeout(r, 100));
      // the client reuses its idle connection (as clients of a Service do while a pod drains):
      // it must still be there, and answer, and say it is the last answer on it
      const second = await get(server.port, agent);
      expect(second.status).toBe(200);
      expect(second.socket).toBe(first.socket);
      expect(second.connection).toBe("close");
      await closing;
    } finally {
      agent.destroy();
    }
  });
});
