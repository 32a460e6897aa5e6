/**
 * The gateway's view of a backend's health survives a rolling update: found on a real cluster
 * (e2e/k8s/30-upgrade), where /health answered 503 "degraded" once mid-upgrade. A draining
 * replica answers NOT_SERVING to a check it received just before it closed its connection; the
 * Service's other replica serves. Real sockets: a stand-in grpc.health.v1 server whose answers
 * are scripted (the draining replica's, then the next one's).
 */
import { once } from "node:events";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { create } from "@bufbuild/protobuf";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { health } from "@glimpse/api";
import { afterEach, describe, expect, it } from "vitest";
import { checkBackends, connectBackends } from "./backends.js";

const { SERVING, NOT_SERVING } = health.HealthCheckResponse_ServingStatus;

describe("checkBackends", () => {
  let server: http2.Http2Server | undefined;
  const sessions = new Set<http2.ServerHttp2Session>();
  afterEach(async () => {
    const closed = server && new Promise((r) => server!.close(r));
    for (const s of sessions) s.destroy(); // the clients' keep-alive connections
    sessions.clear();
    await closed;
    server = undefined;
  });

  /** A health server answering `answers` in turn (the last one from then on); returns its URL and the checks seen. */
  async function healthServer(answers: health.HealthCheckResponse_ServingStatus[]): Promise<{ url: string; checks: string[] }> {
    const checks: string[] = [];
    server = http2.createServer(
      connectNodeAdapter({
        routes: (r) =>
          r.service(health.Health, {
            check(req) {
              checks.push(req.service);
              return create(health.HealthCheckResponseSchema, { status: answers[Math.min(checks.length, answers.length) - 1] });
            },
          }),
      }),
    );
    server.on("session", (s: http2.ServerHttp2Session) => sessions.add(s));
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, checks };
  }

  it("asks again when a backend answers NOT_SERVING: a draining replica's last answer is not the Service's", async () => {
    const { url, checks } = await healthServer([NOT_SERVING, SERVING]);
    const got = await checkBackends(connectBackends([{ name: "ranking", url }], { timeoutMs: 2_000 }));
    expect(got["ranking"]?.status).toBe("SERVING");
    expect(checks).toEqual(["glimpse.ranking.v1.RankingService", "glimpse.ranking.v1.RankingService"]);
  });

  it("reports a backend that answers NOT_SERVING again", async () => {
    const { url, checks } = await healthServer([NOT_SERVING]);
    const got = await checkBackends(connectBackends([{ name: "ranking", url }], { timeoutMs: 2_000 }));
    expect(got["ranking"]?.status).toBe("NOT_SERVING");
    expect(checks).toHaveLength(2);
  });

  it("reports a backend that cannot be reached (after asking again)", async () => {
    const { url } = await healthServer([SERVING]);
    const gone = url.replace(/:\d+$/, ":1"); // nothing listens on port 1
    const got = await checkBackends(connectBackends([{ name: "ranking", url: gone }], { timeoutMs: 2_000 }));
    expect(got["ranking"]).toMatchObject({ status: "UNREACHABLE", url: gone });
    expect(got["ranking"]?.error).toMatch(/ECONNREFUSED/);
  });

  it("asks a serving backend once", async () => {
    const { url, checks } = await healthServer([SERVING]);
    const got = await checkBackends(connectBackends([{ name: "ranking", url }], { timeoutMs: 2_000 }));
    expect(got["ranking"]?.status).toBe("SERVING");
    expect(checks).toHaveLength(1);
  });
});
