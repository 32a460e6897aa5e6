/**
 * The Training service over a real socket with the REAL trainer (model/, through uv) on a tiny
 * generated dataset version in a temporary folder store: progress streams through
 * WatchTraining, the run succeeds and registers a model version under models/; StopTraining
 * ends a running trainer's process group; with promote, the quality gate promotes a better model
 * and keeps production when a worse one is trained (registered, not promoted, the status says why).
 *
 * The trainer is the production command with the smallest model its own tests use
 * (backbone "tiny", the from-scratch biLSTM text tower, 32 px images, narrow heads, no extra views
 * or query bank) added as flags to GLIMPSE_TRAINER_COMMAND: a run at its random initialisation
 * is then truly weak, which the gate test needs (the pretrained MiniLM default scores well untrained).
 */
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { training } from "@glimpse/api";
import { getJson, putJson } from "@glimpse/objectstore";
import { TEST_WRITE_KEY, testConfig } from "@glimpse/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { groupAlive, LocalExecutor } from "./local.js";
import { build, type TrainingServer } from "./server.js";
import { publishTinyDataset } from "./testing/dataset.js";
import { build as buildData } from "@glimpse/data";
import type { RunningServer } from "@glimpse/rpc";

const State = training.TrainingState;

const TINY_MODEL = "--backbone tiny --backbone-weights none --image-size 32 --text-encoder bilstm --word-dim 8 --text-hidden 8 --image-hidden 16 --vocab-min-count 1 --max-len 8 --num-threads 1 --warmup-steps 1 --tta-zoom 0 --qb-beta 0";

describe("Training service with the real trainer", () => {
  const cfg = testConfig({
    GLIMPSE_TRAINER_COMMAND: `uv run --frozen --project model python -m glimpse_model.train ${TINY_MODEL}`,
    GLIMPSE_TRAINER_EXPORT_COMMAND: "uv run --frozen --project model python -m glimpse_model.export --num-threads 1",
    GLIMPSE_TRAINING_STOP_GRACE_MS: "3000",
  });
  let server: TrainingServer;
  let client: Client<typeof training.TrainingService>;
  const auth = { headers: { authorization: `Bearer ${TEST_WRITE_KEY}` } };

  let dataServer: RunningServer;

  beforeAll(async () => {
    // Training resolves dataset versions through a real Data service on the same store.
    dataServer = await buildData(cfg, { port: 0 });
    server = await build({ ...cfg, dataUrl: dataServer.url }, { port: 0, persistIntervalMs: 200 });
    await publishTinyDataset(server.store, { train: 16, dev: 8, test: 4, size: 32 });
    client = createClient(training.TrainingService, createGrpcTransport({ baseUrl: server.url }));
  });

  afterAll(async () => {
    await server?.close(100);
    await dataServer?.close(100);
    rmSync(cfg.dataDir, { recursive: true, force: true });
  });

  it("streams progress, succeeds and registers (and promotes) a model version", { timeout: 180_000 }, async () => {
    const t0 = Date.now();
    const { run } = await client.startTraining({ config: { epochs: 2, batchSize: 8, promote: true } }, auth);
    expect(run!.state).toBe(State.RUNNING);
    const messages: training.WatchTrainingResponse[] = [];
    for await (const m of client.watchTraining({ runId: run!.runId }, auth)) messages.push(m);
    const last = messages.at(-1)!;
    expect(last.event, last.message).toBe("state");
    expect(last.run!.state, `${last.message}\n${messages.map((m) => `${m.event}: ${m.message}`).join("\n")}`).toBe(State.SUCCEEDED);

    const kinds = messages.map((m) => m.event);
    expect(kinds[0]).toBe("state");
    expect(kinds).toContain("progress");
    expect(kinds.filter((k) => k === "epoch")).toHaveLength(2);
    expect(kinds).toContain("eval");
    const progress = messages.find((m) => m.event === "progress" && m.run!.phase === "train")!;
    expect(progress.run!.step).toBeGreaterThan(0n);
    expect(progress.run!.totalSteps).toBeGreaterThanOrEqual(progress.run!.step);
    expect(progress.run!.loss).toBeGreaterThan(0);
    expect(messages.some((m) => m.run!.phase === "export")).toBe(true);

    const done = last.run!;
    expect(done).toMatchObject({ epoch: 2, totalEpochs: 2, error: "", executor: "local" });
    expect(done.devMetrics?.split).toBe("dev");
    expect(done.modelVersion).toMatch(/^m-[0-9a-f]{16}$/);
    const store = server.store;
    for (const f of ["image_encoder.onnx", "text_encoder.onnx", "vocab.json", "preprocess.json", "config.json", "checksums.json"]) {
      expect(await store.stat(`models/${done.modelVersion}/${f}`), f).toBeDefined();
    }
    expect(await getJson(store, "models/aliases/production.json")).toEqual({ version: done.modelVersion, previous: [] });
    expect(done.promotion).toMatchObject({ promoted: true, reason: "no production model yet (first model)", productionVersion: "" });
    expect(await getJson<{ run_name: string }>(store, `models/${done.modelVersion}/config.json`)).toMatchObject({ run_name: done.runId });

    const status = (await client.getTrainingStatus({}, auth)).run!;
    expect(status).toMatchObject({ runId: done.runId, state: State.SUCCEEDED, modelVersion: done.modelVersion });
    expect((await client.listTrainingRuns({}, auth)).runs[0]!.runId).toBe(done.runId);
    console.log(`real trainer: start → SUCCEEDED in ${((Date.now() - t0) / 1000).toFixed(1)} s, ${messages.length} watch messages`);
  });

  it("promotes a better model; a worse one is registered but not promoted, and the run says why", { timeout: 300_000 }, async () => {
    const store = server.store;
    const alias = () => getJson<{ version: string }>(store, "models/aliases/production.json");
    const train = async (config: Parameters<typeof client.startTraining>[0]["config"]) => {
      const { run } = await client.startTraining({ config }, auth);
      const messages: training.WatchTrainingResponse[] = [];
      for await (const m of client.watchTraining({ runId: run!.runId }, auth)) messages.push(m);
      const last = messages.at(-1)!;
      expect(last.run!.state, `${last.message}\n${messages.map((m) => `${m.event}: ${m.message}`).join("\n")}`).toBe(State.SUCCEEDED);
      return { run: last.run!, message: last.message };
    };
    // A run left at its random initialisation (one epoch at lr 1e-6), made production by hand (as PromoteModel would).
    const weak = await train({ epochs: 1, batchSize: 8, learningRate: 1e-6 });
    expect(weak.run.promotion).toBeUndefined();
    await putJson(store, "models/aliases/production.json", { version: weak.run.modelVersion });

    // A trained run is better on dev: promoted, and the run says against what.
    const good = await train({ epochs: 30, batchSize: 8, learningRate: 0.01, promote: true });
    const p = good.run.promotion!;
    expect(p).toMatchObject({ promoted: true, metric: "rsum", margin: 0, productionVersion: weak.run.modelVersion, productionReevaluated: false, datasetVersion: good.run.datasetVersion });
    expect(p.candidateValue).toBeGreaterThan(p.productionValue);
    expect(good.message).toBe(`SUCCEEDED: model ${good.run.modelVersion} registered and promoted to production (${p.reason})`);
    expect(await alias()).toEqual({ version: good.run.modelVersion, previous: [weak.run.modelVersion] });

    // Another untrained run (another seed, so another version): registered, not promoted, the status says why.
    const worse = await train({ epochs: 1, batchSize: 8, learningRate: 1e-6, seed: 7n, promote: true });
    const q = worse.run.promotion!;
    expect(worse.run.modelVersion).not.toBe(weak.run.modelVersion);
    expect(q).toMatchObject({ promoted: false, metric: "rsum", productionVersion: good.run.modelVersion, productionValue: p.candidateValue });
    expect(q.reason).toBe(`dev rsum ${q.candidateValue} < production ${good.run.modelVersion} ${q.productionValue} + margin 0`);
    expect(worse.message).toBe(`SUCCEEDED: model ${worse.run.modelVersion} registered, not promoted: ${q.reason}`);
    expect(await alias()).toEqual({ version: good.run.modelVersion, previous: [weak.run.modelVersion] });
    expect(await store.stat(`models/${worse.run.modelVersion}/checksums.json`)).toBeDefined();
    // the decision is part of the run's record, not only of the stream
    expect((await client.getTrainingStatus({ runId: worse.run.runId }, auth)).run!.promotion).toEqual(q);
    console.log(`gate: weak ${p.productionValue} → good ${p.candidateValue} promoted; worse ${q.candidateValue} kept out`);
  });

  it("stops a running trainer: STOPPED, its process group gone, the checkpoint kept", { timeout: 120_000 }, async () => {
    const { run } = await client.startTraining({ config: { epochs: 500, batchSize: 8 } }, auth);
    const id = run!.runId;
    const executor = server.executor as LocalExecutor;
    const pgid = executor.processGroup(id)!;
    expect(groupAlive(pgid)).toBe(true);

    // Wait for the first finished epoch (a checkpoint exists), then stop. (Cancel through the
    // signal: leaving a connect stream with `break` does not cancel the call.)
    const abort = new AbortController();
    const seen: training.WatchTrainingResponse[] = [];
    await (async () => {
      for await (const m of client.watchTraining({ runId: id }, { ...auth, signal: abort.signal })) {
        seen.push(m);
        if (m.event === "epoch") abort.abort();
        if (m.event === "state" && m.run!.state !== State.RUNNING) throw new Error(`run ended early: ${m.message}`);
      }
    })().catch((e: unknown) => {
      if (ConnectError.from(e).code !== Code.Canceled) throw e;
    });
    expect(seen.at(-1)!.event).toBe("epoch");
    const watchRest = (async () => {
      const rest: training.WatchTrainingResponse[] = [];
      for await (const m of client.watchTraining({ runId: id }, auth)) rest.push(m);
      return rest;
    })();
    const t0 = Date.now();
    const stopped = (await client.stopTraining({ runId: id }, auth)).run!;
    const stopMs = Date.now() - t0;
    expect(stopped.state).toBe(State.STOPPED);
    expect(stopped.finishedAt).toBeDefined();
    expect(groupAlive(pgid)).toBe(false);
    expect(existsSync(join(executor.runDir(id), "checkpoint.pt"))).toBe(true);
    const rest = await watchRest;
    expect(rest.at(-1)).toMatchObject({ event: "state", run: { state: State.STOPPED } });
    // Stopping again, or with no active run, returns the stopped run unchanged.
    expect((await client.stopTraining({ runId: id }, auth)).run).toEqual(stopped);
    expect((await client.stopTraining({}, auth)).run!.runId).toBe(id);
    const again = await client.startTraining({ config: {} }, {}).catch((e: unknown) => ConnectError.from(e));
    expect((again as ConnectError).code).toBe(Code.Unauthenticated);
    console.log(`stop: SIGTERM → STOPPED in ${stopMs} ms after ${seen.filter((m) => m.event === "epoch").length} epoch(s)`);
  });
});
