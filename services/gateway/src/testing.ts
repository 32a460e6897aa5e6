// The whole mesh in one process on free ports, for integration tests: the three services
// (Training and Ranking reaching Data over gRPC, as in the embedded default) behind a gateway.
import { existsSync } from "node:fs";
import { build as buildData } from "@glimpse/data";
import { build as buildRanking, type RankingServer } from "@glimpse/ranking";
import type { RunningServer } from "@glimpse/rpc";
import type { GlimpseConfig } from "@glimpse/runtime";
import { freePorts } from "@glimpse/runtime/testing";
import { build as buildTraining } from "@glimpse/training";
import { chromium, type Browser } from "playwright-core";
import { build, type RunningGateway } from "./server.js";

export interface TestMesh {
  ranking: RankingServer;
  training: RunningServer;
  data: RunningServer;
  gateway: RunningGateway;
  /** http://127.0.0.1:<gateway port> */
  base: string;
  close(): Promise<void>;
}

export interface TestMeshOptions {
  /** How often Ranking looks for new models, galleries and collections (ms); default the config's. */
  rankingPollMs?: number;
}

export async function startTestMesh(cfg: GlimpseConfig, opts: TestMeshOptions = {}): Promise<TestMesh> {
  // Data asks Ranking what search serves of a collection, and Ranking finds datasets through Data:
  // Ranking's port is chosen first so each can be told where the other is.
  const [rankingPort] = await freePorts(1);
  const rankingUrl = `http://127.0.0.1:${rankingPort}`;
  const data = await buildData({ ...cfg, rankingUrl }, { port: 0 });
  const withData = { ...cfg, dataUrl: data.url, rankingUrl };
  const [ranking, training] = await Promise.all([
    buildRanking(withData, { port: rankingPort!, ...(opts.rankingPollMs ? { pollMs: opts.rankingPollMs } : {}) }),
    buildTraining(withData, { port: 0 }),
  ]);
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

/**
 * Debian's Chromium (or GLIMPSE_CHROMIUM), headless, for the page tests. .ci/run installs it
 * (apt-get install chromium); without it a page test fails, never skips.
 */
export async function launchChromium(): Promise<Browser> {
  const executablePath = process.env["GLIMPSE_CHROMIUM"] ?? "/usr/bin/chromium";
  if (!existsSync(executablePath)) throw new Error(`no Chromium at ${executablePath}: apt-get install chromium (or set GLIMPSE_CHROMIUM)`);
  const args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];
  return chromium.launch({ executablePath, args, headless: true });
}
