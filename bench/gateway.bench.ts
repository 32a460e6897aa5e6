/**
 * Gateway overhead: one trivial unary RPC (TrainingService.ListTrainingRuns answering an
 * empty page from memory) called directly over gRPC and through the gateway (relayed over
 * gRPC), as gRPC and as Connect JSON, at concurrency 1 and 32. Medians of several runs.
 *
 *   npm run bench:gateway -- [--runs 5] [--requests 2000]
 */
import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { training } from "@glimpse/api";
import { createLogger } from "@glimpse/logging";
import { ApiKeys, bind, startGrpcServer } from "@glimpse/rpc";
import { testConfig } from "@glimpse/runtime/testing";
import { build } from "../services/gateway/src/server.js";
import { argValue, measure, medianStats, table, type RunStats } from "./stats.js";

const runs = Number(argValue("runs", "5"));
const requests = Number(argValue("requests", "2000"));
const logger = createLogger("bench", "silent");

const backend = await startGrpcServer({
  name: "training",
  host: "127.0.0.1",
  port: 0,
  logger,
  apiKeys: new ApiKeys([]),
  services: [bind(training.TrainingService, { listTrainingRuns: () => create(training.ListTrainingRunsResponseSchema, {}) })],
});
const cfg = testConfig({ GLIMPSE_LOG_LEVEL: "silent" });
const gateway = await build(cfg, {
  port: 0,
  logger,
  targets: [
    { name: "training", url: backend.url },
    { name: "ranking", url: backend.url },
    { name: "data", url: backend.url },
  ],
});
const gw = `http://127.0.0.1:${gateway.port}`;

const modes = {
  "direct gRPC": createClient(training.TrainingService, createGrpcTransport({ baseUrl: backend.url })),
  "gateway gRPC": createClient(training.TrainingService, createGrpcTransport({ baseUrl: gw })),
  "gateway Connect JSON (HTTP/1.1)": createClient(training.TrainingService, createConnectTransport({ baseUrl: gw, httpVersion: "1.1" })),
};

const results: Record<string, string | number>[] = [];
for (const concurrency of [1, 32]) {
  const byMode: Record<string, RunStats> = {};
  for (const [mode, client] of Object.entries(modes)) {
    for (let i = 0; i < 200; i++) await client.listTrainingRuns({}); // warm-up: connections, JIT
    const all: RunStats[] = [];
    for (let r = 0; r < runs; r++) all.push(await measure(() => client.listTrainingRuns({}), requests, concurrency));
    byMode[mode] = medianStats(all);
  }
  const direct = byMode["direct gRPC"]!;
  for (const [mode, s] of Object.entries(byMode)) {
    results.push({
      concurrency,
      mode,
      "p50 ms": s.p50,
      "p99 ms": s.p99,
      "req/s": Math.round(s.rps),
      "p50 vs direct": `${(s.p50 / direct.p50).toFixed(2)}×`,
    });
  }
}
console.log(`\nGateway overhead — medians of ${runs} runs × ${requests} requests, same process\n`);
console.log(table(results));
await gateway.close(0);
await backend.close(0);
process.exit(0);
