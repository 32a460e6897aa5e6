// The whole mesh in one process on free ports, for integration tests: the three services
// (Training and Ranking reaching Data over gRPC, as in the embedded default) behind a gateway.
import { build as buildData } from "@glimpse/data";
import { build as buildRanking } from "@glimpse/ranking";
import type { RunningServer } from "@glimpse/rpc";
import type { GlimpseConfig } from "@glimpse/runtime";
import { build as buildTraining } from "@glimpse/training";
import { build, type RunningGateway } from "./server.js";

export interface TestMesh {
  ranking: RunningServer;
  training: RunningServer;
  data: RunningServer;
  gateway: RunningGateway;
  /** http://127.0.0.1:<gateway port> */
  base: string;
  close(): Promise<void>;
}

export async function startTestMesh(cfg: GlimpseConfig): Promise<TestMesh> {
  const data = await buildData(cfg, { port: 0 });
  const withData = { ...cfg, dataUrl: data.url };
  const [ranking, training] = await Promise.all([buildRanking(withData, { port: 0 }), buildTraining(withData, { port: 0 })]);
  const gateway = await build(cfg, {
    port: 0,
    targets: [
      { name: "ranking", url: ranking.url },
      { name: "training", url: training.url },
      { name: "data", url: data.url },
    ],
  });
  return {
    ranking,
    training,
    data,
    gateway,
    base: `http://127.0.0.1:${gateway.port}`,
    async close() {
      await gateway.close(100);
      await Promise.all([ranking, training, data].map((s) => s.close(100)));
    },
  };
}
