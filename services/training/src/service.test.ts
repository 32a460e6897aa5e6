/**
 * The Training service's RPCs through connect's in-memory router transport, with a fake executor
 * (the integration test, training.test.ts, runs the real trainer).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { rpcDetails, training } from "@glimpse/api";
import { createLogger } from "@glimpse/logging";
import { FsObjectStore, getJson } from "@glimpse/objectstore";
import { HealthRegistry, routesFor } from "@glimpse/rpc";
import { afterEach, describe, expect, it } from "vitest";
import { TrainingManager } from "./manager.js";
import { runKey, type RunRecord } from "./records.js";
import { trainingBinding } from "./routes.js";
import { DEFAULT_SEED } from "./trainer-config.js";
import { publishTinyDataset } from "./testing/dataset.js";
import { FakeExecutor } from "./testing/fake-executor.js";

const State = training.TrainingState;
const logger = createLogger("training-test", "silent");
const dirs: string[] = [];

afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function setup(opts: { dir?: string; dataset?: boolean; executor?: FakeExecutor } = {}) {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), "glimpse-training-unit-"));
  if (!opts.dir) dirs.push(dir);
  const store = new FsObjectStore(dir, "glimpse", { fsync: false });
  await store.init();
  const version = opts.dataset === false ? undefined : await publishTinyDataset(store, { train: 2, dev: 1, test: 1, size: 4 });
  const executor = opts.executor ?? new FakeExecutor();
  const manager = new TrainingManager({ store, executor, logger, persistIntervalMs: 10 });
  await manager.init();
  const transport = createRouterTransport(routesFor([trainingBinding(manager)], new HealthRegistry([])));
  const client = createClient(training.TrainingService, transport);
  return { dir, store, executor, manager, client, version };
}

async function failure(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to fail");
}

function violations(err: ConnectError): Record<string, string> {
  const bad = err.findDetails(rpcDetails.BadRequestSchema)[0];
  return Object.fromEntries((bad?.fieldViolations ?? []).map((v) => [v.field, v.reason]));
}

async function collect<T>(it: AsyncIterable<T>, until: (m: T) => boolean = () => false): Promise<T[]> {
  const out: T[] = [];
  for await (const m of it) {
    out.push(m);
    if (until(m)) break;
  }
  return out;
}

const waitFor = async (cond: () => boolean, ms = 2000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 5));
  }
};

describe("StartTraining validation", () => {
  it("names every bad field in google.rpc.BadRequest", async () => {
    const { client, executor } = await setup();
    const err = await failure(
      client.startTraining({
        config: {
          epochs: 501,
          batchSize: 5000,
          learningRate: 1.5,
          dataset: "Not A Name",
          datasetVersion: "latest",
          imageEncoder: "resnet50",
          loss: 7 as training.Loss,
          seed: -1n,
          device: "tpu",
          overrides: { no_such_key: 1, lr: 0.1, run_name: "x", max_len: "long", image_head: "max", dropout: true, phase2_epochs: 2 },
        },
      }),
    );
    expect(err.code).toBe(Code.InvalidArgument);
    expect(violations(err)).toEqual({
      "config.epochs": "OUT_OF_RANGE",
      "config.batch_size": "OUT_OF_RANGE",
      "config.learning_rate": "OUT_OF_RANGE",
      "config.dataset": "BAD_FORMAT",
      "config.dataset_version": "BAD_FORMAT",
      "config.image_encoder": "BAD_VALUE",
      "config.loss": "BAD_ENUM",
      "config.seed": "OUT_OF_RANGE",
      "config.device": "BAD_VALUE",
      "config.overrides.no_such_key": "UNKNOWN_KEY",
      "config.overrides.lr": "CONFLICT",
      "config.overrides.run_name": "NOT_ALLOWED",
      "config.overrides.max_len": "BAD_TYPE",
      "config.overrides.image_head": "BAD_VALUE",
      "config.overrides.dropout": "BAD_TYPE",
      "config.overrides.phase2_epochs": "CONFLICT",
    });
    expect(executor.launched).toHaveLength(0);

    for (const [config, field] of [
      [{ epochs: -1 }, "config.epochs"],
      [{ batchSize: 4097 }, "config.batch_size"],
      [{ learningRate: -0.001 }, "config.learning_rate"],
      [{ learningRate: Number.NaN }, "config.learning_rate"],
      [{ overrides: { backbone_weights: "/etc/passwd" } }, "config.overrides.backbone_weights"],
      [{ overrides: { warmup_steps: 1.5 } }, "config.overrides.warmup_steps"],
      [{ overrides: { init_from: "/etc/hosts" } }, "config.overrides.init_from"],
      // removed with the MobileNetV1 port and the word-vector text tower (#25): no longer a trainer key
      [{ overrides: { word_vectors: "" } }, "config.overrides.word_vectors"],
      [{ overrides: { pretrained_dir: "" } }, "config.overrides.pretrained_dir"],
      [{ overrides: { phase2_epochs: -1 } }, "config.overrides.phase2_epochs"],
      [{ promote: true, promotionMetric: "mAP" }, "config.promotion_metric"],
      [{ promotionMetric: "t2i_r10" }, "config.promotion_metric"],
      [{ promote: true, promotionMargin: 600.5 }, "config.promotion_margin"],
      [{ promote: true, promotionMetric: "i2t_r5", promotionMargin: -100.5 }, "config.promotion_margin"],
      [{ promote: true, promotionMargin: Number.POSITIVE_INFINITY }, "config.promotion_margin"],
      [{ promotionMargin: 1 }, "config.promotion_margin"],
    ] as const) {
      const e = await failure(client.startTraining({ config }));
      expect(Object.keys(violations(e)), JSON.stringify(config)).toEqual([field]);
    }
  });

  it("accepts the bounds and passes the trainer its config document", async () => {
    const { client, executor, version } = await setup();
    const { run } = await client.startTraining({
      config: {
        epochs: 500,
        batchSize: 4096,
        learningRate: 1,
        imageEncoder: "mobilenet_v3_small",
        device: "cuda",
        loss: training.Loss.VSE_HARDEST,
        fineTuneBackbone: true,
        overrides: { warmup_steps: 10, dropout: 0.2, bidirectional: false, phase2_epochs: 2 },
      },
    });
    expect(run!.state).toBe(State.RUNNING);
    expect(run!.datasetVersion).toBe(version);
    expect(run!.totalEpochs).toBe(502);
    expect(run!.executor).toBe("local");
    expect(run!.runId).toMatch(/^tr-\d{17}-[0-9a-f]{6}$/);
    expect(executor.launched[0]!.plan).toMatchObject({
      dataset: "flickr8k",
      promote: false,
      promotionMetric: "rsum",
      promotionMargin: 0,
      trainerConfig: { epochs: 500, batch_size: 4096, lr: 1, backbone: "mobilenet_v3_small", device: "cuda", loss: "vsepp", seed: DEFAULT_SEED, warmup_steps: 10, dropout: 0.2, bidirectional: false, phase2_epochs: 2 },
    });
  });

  it("resolves the dataset's latest version, and refuses without a published one", async () => {
    const { client, store } = await setup({ dataset: false });
    const none = await failure(client.startTraining({ config: {} }));
    expect(none.code).toBe(Code.FailedPrecondition);
    expect(none.rawMessage).toContain("no published dataset version: run the pipeline first");

    const version = await publishTinyDataset(store, { train: 1, dev: 1, test: 1, size: 4 });
    const unknown = await failure(client.startTraining({ config: { datasetVersion: "0123456789abcdef" } }));
    expect(unknown.code).toBe(Code.NotFound);
    const other = await failure(client.startTraining({ config: { dataset: "coco" } }));
    expect(other.code).toBe(Code.FailedPrecondition);
    const { run } = await client.startTraining({ config: { datasetVersion: version } });
    expect(run!.datasetVersion).toBe(version);
  });
});

describe("runs", () => {
  it("allows one active run at a time", async () => {
    const { client, executor } = await setup();
    const { run } = await client.startTraining({ config: { epochs: 1 } });
    const busy = await failure(client.startTraining({ config: { epochs: 1 } }));
    expect(busy.code).toBe(Code.FailedPrecondition);
    expect(busy.rawMessage).toContain(run!.runId);
    // Two concurrent starts: exactly one wins.
    executor.sink(run!.runId).finished({ state: "succeeded", modelVersion: "m-0123456789abcdef" });
    const both = await Promise.allSettled([client.startTraining({ config: {} }), client.startTraining({ config: {} })]);
    expect(both.map((r) => r.status).sort()).toEqual(["fulfilled", "rejected"]);
  });

  it("records a trainer that could not start as FAILED and frees the slot", async () => {
    const { client, executor } = await setup();
    executor.failLaunch = new Error("spawn uv ENOENT");
    const err = await failure(client.startTraining({ config: {} }));
    expect(err.code).toBe(Code.Unavailable);
    const { run } = await client.getTrainingStatus({});
    expect(run!.state).toBe(State.FAILED);
    expect(run!.error).toContain("spawn uv ENOENT");
    await expect(client.startTraining({ config: {} })).resolves.toBeDefined();
  });

  it("lists newest first with opaque page tokens", async () => {
    const { client, executor } = await setup();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const { run } = await client.startTraining({ config: { epochs: i + 1 } });
      ids.push(run!.runId);
      executor.sink(run!.runId).finished({ state: "failed", error: "test" });
    }
    const seen: string[] = [];
    let token = "";
    let pages = 0;
    do {
      const res = await client.listTrainingRuns({ pageSize: 2, pageToken: token });
      expect(res.runs.length).toBeLessThanOrEqual(2);
      seen.push(...res.runs.map((r) => r.runId));
      token = res.nextPageToken;
      pages++;
    } while (token);
    expect(pages).toBe(3);
    expect(seen).toEqual([...ids].reverse());
    const all = await client.listTrainingRuns({});
    expect(all.runs.map((r) => r.runId)).toEqual([...ids].reverse());
    expect(all.nextPageToken).toBe("");

    expect((await client.listTrainingRuns({ pageSize: 101 })).runs).toHaveLength(5); // above the max reads as the max
    expect(violations(await failure(client.listTrainingRuns({ pageSize: -1 })))).toEqual({ page_size: "OUT_OF_RANGE" });
    expect(violations(await failure(client.listTrainingRuns({ pageToken: "bm9wZQ" })))).toEqual({ page_token: "BAD_PAGE_TOKEN" });
  });

  it("answers NOT_FOUND for unknown runs and INVALID_ARGUMENT for malformed ids", async () => {
    const { client } = await setup();
    expect((await failure(client.getTrainingStatus({}))).code).toBe(Code.NotFound);
    expect((await failure(client.getTrainingStatus({ runId: "tr-00000000000000000-000000" }))).code).toBe(Code.NotFound);
    expect((await failure(client.stopTraining({ runId: "tr-00000000000000000-000000" }))).code).toBe(Code.NotFound);
    expect((await failure(client.stopTraining({}))).code).toBe(Code.NotFound);
    expect((await failure(collect(client.watchTraining({ runId: "tr-00000000000000000-000000" })))).code).toBe(Code.NotFound);
    expect(violations(await failure(client.getTrainingStatus({ runId: "../etc" })))).toEqual({ run_id: "BAD_FORMAT" });
  });

  it("stops the active run; stopping a finished run returns it unchanged", async () => {
    const { client, executor } = await setup();
    const { run } = await client.startTraining({ config: {} });
    const stopped = (await client.stopTraining({})).run!;
    expect(stopped.runId).toBe(run!.runId);
    expect(stopped.state).toBe(State.STOPPED);
    expect(stopped.finishedAt).toBeDefined();
    const again = (await client.stopTraining({ runId: run!.runId })).run!;
    expect(again).toEqual(stopped);

    const { run: second } = await client.startTraining({ config: {} });
    executor.sink(second!.runId).finished({ state: "succeeded", modelVersion: "m-0123456789abcdef" });
    const done = (await client.stopTraining({ runId: second!.runId })).run!;
    expect(done.state).toBe(State.SUCCEEDED);
    expect(done.modelVersion).toBe("m-0123456789abcdef");
  });
});

describe("training runs as resources (Create/Get/Watch/CancelTrainingRun)", () => {
  it("creates, gets, watches and cancels a run by its name, with *_time fields and eta", async () => {
    const { client, executor, version } = await setup();
    const { trainingRun: run } = await client.createTrainingRun({ trainingRun: { config: { epochs: 2, batchSize: 8 } } });
    expect(run!.name).toBe(`trainingRuns/${run!.runId}`);
    expect(run!.datasetVersion).toBe(version);
    expect(run!.createTime).toEqual(run!.createdAt); // the deprecated field stays for one release
    const got = (await client.getTrainingRun({ name: run!.name })).trainingRun!;
    expect(got).toMatchObject({ name: run!.name, runId: run!.runId, state: State.RUNNING });
    expect(got.startTime).toBeDefined();

    const messages: training.WatchTrainingRunResponse[] = [];
    const watching = (async () => {
      for await (const m of client.watchTrainingRun({ name: run!.name })) messages.push(m);
    })();
    await waitFor(() => messages.length === 1);
    executor.sink(run!.runId).event({ event: "step", phase: 1, epoch: 1, step: 10, loss: 1.9, lr: 0.001, throughput: 250, eta_s: 3.5 });
    await waitFor(() => messages.length === 2);
    expect(messages[1]!.trainingRun).toMatchObject({ name: run!.name, etaSeconds: 3.5, eta: { seconds: 3n, nanos: 500_000_000 } });

    const cancelled = (await client.cancelTrainingRun({ name: run!.name })).trainingRun!;
    expect(cancelled).toMatchObject({ name: run!.name, state: State.STOPPED });
    expect(cancelled.endTime).toBeDefined();
    await watching;
    expect(messages.at(-1)!.trainingRun!.state).toBe(State.STOPPED);
    // Cancelling an ended run returns it as it is.
    expect((await client.cancelTrainingRun({ name: run!.name })).trainingRun!.state).toBe(State.STOPPED);
  });

  it("refuses a bad name or config with field violations on the request's own paths; NOT_FOUND for no such run", async () => {
    const { client } = await setup();
    expect(violations(await failure(client.getTrainingRun({ name: "tr-1" })))).toEqual({ name: "BAD_FORMAT" });
    expect(violations(await failure(client.getTrainingRun({ name: "" })))).toEqual({ name: "REQUIRED" });
    expect(violations(await failure(client.createTrainingRun({})))).toEqual({ training_run: "REQUIRED" });
    expect(violations(await failure(client.createTrainingRun({ trainingRun: { config: { epochs: 501, overrides: { no_such_key: 1 } } } })))).toEqual({
      "training_run.config.epochs": "OUT_OF_RANGE",
      "training_run.config.overrides.no_such_key": "UNKNOWN_KEY",
    });
    expect((await failure(client.getTrainingRun({ name: "trainingRuns/tr-nope" }))).code).toBe(Code.NotFound);
  });
});

describe("WatchTraining", () => {
  it("sends a snapshot, then one message per event, and ends with the run", async () => {
    const { client, executor, manager } = await setup();
    const { run } = await client.startTraining({ config: { epochs: 2, batchSize: 8 } });
    const id = run!.runId;
    const messages: training.WatchTrainingResponse[] = [];
    const watching = (async () => {
      for await (const m of client.watchTraining({ runId: id })) messages.push(m);
    })();
    await waitFor(() => messages.length === 1);
    expect(messages[0]).toMatchObject({ event: "state", run: { state: State.RUNNING } });

    const sink = executor.sink(id);
    const dev = { t2i: { r1: 20, r5: 60, r10: 90, medr: 3 }, i2t: { r1: 25, r5: 50, r10: 80, medr: 4 }, rsum: 325 };
    sink.event({ event: "start", phase: 0, device: "cpu", dataset_version: run!.datasetVersion, train_images: 16, dev_images: 8 });
    sink.event({ event: "features", phase: 1, split: "train", done: 16, total: 16, throughput: 200, eta_s: 0 });
    sink.event({ event: "step", phase: 1, epoch: 1, step: 10, loss: 1.9, lr: 0.001, throughput: 250, eta_s: 3 });
    sink.event({ event: "epoch", phase: 1, epoch: 1, step: 10, loss: 2.0, dev });
    sink.event({ event: "epoch", phase: 1, epoch: 2, step: 20, loss: 1.8, dev: { ...dev, t2i: { ...dev.t2i, r1: 10 } } });
    sink.event({ event: "done", phase: 1, epoch: 1, step: 20, dev });
    sink.phase("export", "exporting");
    sink.finished({ state: "succeeded", modelVersion: "m-00000000000000aa" });
    await watching;

    expect(messages.map((m) => m.event)).toEqual(["state", "log", "progress", "progress", "epoch", "epoch", "eval", "log", "state"]);
    const step = messages[3]!.run!;
    expect(step).toMatchObject({ phase: "train", epoch: 1, totalEpochs: 2, step: 10n, totalSteps: 20n, loss: 1.9, learningRate: 0.001, throughput: 250, etaSeconds: 3 });
    // Best dev metrics so far: epoch 2 was worse.
    expect(messages[5]!.run!.devMetrics).toMatchObject({ split: "dev", t2iR1: 20, i2tR10: 80 });
    expect(messages[7]!.run!.phase).toBe("export");
    const last = messages.at(-1)!;
    expect(last.run).toMatchObject({ state: State.SUCCEEDED, modelVersion: "m-00000000000000aa", epoch: 2 });
    expect(last.message).toContain("m-00000000000000aa");
    expect(manager.watcherCount(id)).toBe(0);

    // A finished run: the snapshot alone.
    const after = await collect(client.watchTraining({ runId: id }));
    expect(after.map((m) => [m.event, m.run!.state])).toEqual([["state", State.SUCCEEDED]]);
  });

  it("ends cleanly when the client cancels", async () => {
    const { client, manager } = await setup();
    const { run } = await client.startTraining({ config: {} });
    const abort = new AbortController();
    const got: training.WatchTrainingResponse[] = [];
    const err = await (async () => {
      for await (const m of client.watchTraining({ runId: run!.runId }, { signal: abort.signal })) {
        got.push(m);
        abort.abort();
      }
    })().catch((e: unknown) => ConnectError.from(e));
    expect(got).toHaveLength(1);
    expect((err as ConnectError).code).toBe(Code.Canceled);
    await waitFor(() => manager.watcherCount(run!.runId) === 0);
  });
});

describe("promotion", () => {
  const decision = { event: "promotion", metric: "rsum", margin: 0, dataset_version: "0123456789abcdef", production_version: "m-00000000000000bb", production_reevaluated: false };

  it("takes the gate's metric and margin (defaults from the proto: rsum, 0)", async () => {
    const { client, executor, manager } = await setup();
    const { run } = await client.startTraining({ config: { promote: true } });
    expect(executor.launched[0]!.plan).toMatchObject({ promote: true, promotionMetric: "rsum", promotionMargin: 0 });
    executor.sink(run!.runId).finished({ state: "failed", error: "test" });
    const { run: second } = await client.startTraining({ config: { promote: true, promotionMetric: "i2t_r10", promotionMargin: -0.5 } });
    expect(executor.launched[1]!.plan).toMatchObject({ promote: true, promotionMetric: "i2t_r10", promotionMargin: -0.5 });
    executor.sink(second!.runId).finished({ state: "failed", error: "test" });
    // the whole range of rsum: promote whatever the comparison says
    await client.startTraining({ config: { promote: true, promotionMargin: -600 } });
    expect(executor.launched[2]!.plan).toMatchObject({ promotionMetric: "rsum", promotionMargin: -600 });
    expect(manager.activeRunId()).toBeDefined();
  });

  it("reports a model not promoted: the run's promotion field and its final message say why", async () => {
    const { client, executor, manager } = await setup();
    const { run } = await client.startTraining({ config: { promote: true } });
    const watching = collect(client.watchTraining({ runId: run!.runId }));
    await waitFor(() => manager.watcherCount(run!.runId) === 1);
    const sink = executor.sink(run!.runId);
    const reason = "dev rsum 301.2 < production m-00000000000000bb 310.5 + margin 0";
    sink.event({ ...decision, promoted: false, reason, model_version: "m-00000000000000aa", candidate_value: 301.2, production_value: 310.5 });
    sink.finished({ state: "succeeded", modelVersion: "m-00000000000000aa" });
    const messages = await watching;
    const done = (await client.getTrainingStatus({ runId: run!.runId })).run!;
    expect(done.state).toBe(State.SUCCEEDED);
    expect(done.promotion).toMatchObject({ promoted: false, reason, metric: "rsum", margin: 0, candidateValue: 301.2, productionVersion: "m-00000000000000bb", productionValue: 310.5, productionReevaluated: false, datasetVersion: "0123456789abcdef" });
    expect(messages.at(-1)!.message).toBe(`SUCCEEDED: model m-00000000000000aa registered, not promoted: ${reason}`);
  });

  it("reports a promoted model, and a run that asked but got no decision", async () => {
    const { client, executor, manager } = await setup();
    const { run } = await client.startTraining({ config: { promote: true } });
    const id = run!.runId;
    const watching = collect(client.watchTraining({ runId: id }));
    await waitFor(() => manager.watcherCount(id) === 1);
    executor.sink(id).event({ ...decision, promoted: true, reason: "no production model yet (first model)", production_version: "", candidate_value: 250 });
    executor.sink(id).finished({ state: "succeeded", modelVersion: "m-00000000000000aa" });
    const messages = await watching;
    expect(messages.find((m) => m.event === "eval")!.message).toBe("promoted to production: no production model yet (first model)");
    expect(messages.at(-1)!.message).toBe("SUCCEEDED: model m-00000000000000aa registered and promoted to production (no production model yet (first model))");
    expect(messages.at(-1)!.run!.promotion).toMatchObject({ promoted: true, productionVersion: "" });

    const { run: second } = await client.startTraining({ config: { promote: true } });
    const watchingSecond = collect(client.watchTraining({ runId: second!.runId }));
    await waitFor(() => manager.watcherCount(second!.runId) === 1);
    executor.sink(second!.runId).finished({ state: "succeeded", modelVersion: "m-00000000000000cc" });
    expect((await watchingSecond).at(-1)!.message).toBe("SUCCEEDED: model m-00000000000000cc registered; the export reported no promotion decision");
    expect((await client.getTrainingStatus({ runId: second!.runId })).run!.promotion).toBeUndefined();
    // without promote there is nothing to report
    const { run: third } = await client.startTraining({ config: {} });
    executor.sink(third!.runId).finished({ state: "succeeded", modelVersion: "m-00000000000000dd" });
    expect((await client.getTrainingStatus({ runId: third!.runId })).run!.promotion).toBeUndefined();
  });
});

describe("run records", () => {
  it("persist in the store; a run active at a restart is FAILED (local) or followed again", async () => {
    const first = await setup();
    const { run } = await first.client.startTraining({ config: { epochs: 3 } });
    const id = run!.runId;
    const rec = await getJson<RunRecord>(first.store, runKey(id));
    expect(rec).toMatchObject({ schema: "glimpse.training.run/v1", run: { runId: id, state: "TRAINING_STATE_RUNNING" } });

    // The Kubernetes executor follows its Job again.
    const reattaching = new FakeExecutor();
    reattaching.reattach = true;
    const second = await setup({ dir: first.dir, dataset: false, executor: reattaching });
    expect(second.manager.activeRunId()).toBe(id);
    expect((await second.client.getTrainingStatus({ runId: id })).run!.state).toBe(State.RUNNING);

    // The local executor cannot: FAILED "service restarted", and the record says so.
    const third = await setup({ dir: first.dir, dataset: false });
    const after = (await third.client.getTrainingStatus({})).run!;
    expect(after).toMatchObject({ runId: id, state: State.FAILED, error: "service restarted" });
    expect(third.manager.activeRunId()).toBeUndefined();
    expect((await getJson<RunRecord>(third.store, runKey(id))).run).toMatchObject({ state: "TRAINING_STATE_FAILED", error: "service restarted" });
    expect((await third.client.listTrainingRuns({})).runs.map((r) => r.runId)).toEqual([id]);
  });
});
