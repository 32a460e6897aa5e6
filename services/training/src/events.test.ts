import { create } from "@bufbuild/protobuf";
import { training } from "@glimpse/api";
import { describe, expect, it } from "vitest";
import { applyEvent, parseEventLine, progressModel } from "./events.js";

// Lines as the real trainer printed them (tiny dataset, 2 epochs, batch 8).
const LINES = `{"event": "start", "time": "2026-11-26T09:38:57+00:00", "run": "t1", "phase": 0, "device": "cpu", "amp": false, "resumed": false, "dataset": "store:fs:/tmp/tt/store/glimpse/datasets/flickr8k", "dataset_version": "ea4f89f76b3ad668", "train_images": 16, "dev_images": 8}
{"event": "features", "time": "2026-11-26T09:38:57+00:00", "run": "t1", "phase": 1, "split": "train", "done": 16, "total": 16, "throughput": 227.9, "eta_s": 0.0}
{"event": "features_ready", "time": "2026-11-26T09:38:57+00:00", "run": "t1", "phase": 1, "seconds": 0.1, "grid": [32, 2, 2]}
{"event": "step", "time": "2026-11-26T09:39:03+00:00", "run": "t1", "phase": 1, "epoch": 1, "step": 10, "loss": 1.99211, "lr": 0.001100927758562886, "temperature": 0.07093, "throughput": 258.6, "eta_s": 0.3}
{"event": "epoch", "time": "2026-11-26T09:39:03+00:00", "run": "t1", "phase": 1, "epoch": 1, "step": 10, "loss": 2.06375, "dev": {"t2i": {"r1": 25.0, "r5": 72.5, "r10": 100.0, "medr": 3.0, "meanr": 3.67}, "i2t": {"r1": 25.0, "r5": 50.0, "r10": 87.5, "medr": 6.0, "meanr": 5.75}, "rsum": 360.0, "n_images": 8, "n_captions": 40}, "best_rsum": 360.0, "epoch_s": 0.3, "elapsed_s": 6.0, "checkpoint": "/tmp/tt/runs/t1/checkpoint.pt"}
not json: a plain log line
{"event": "done", "time": "2026-11-26T09:39:05+00:00", "run": "t1", "phase": 1, "epoch": 2, "step": 20, "dev": {"t2i": {"r1": 15.0, "r5": 97.5, "r10": 100.0, "medr": 3.0, "meanr": 3.27}, "i2t": {"r1": 37.5, "r5": 50.0, "r10": 87.5, "medr": 4.0, "meanr": 6.38}, "rsum": 387.5, "n_images": 8, "n_captions": 40}, "wall_s": 6.2, "best": "/tmp/tt/runs/t1/best.pt"}`;

describe("trainer events", () => {
  it("fill the run's progress fields", () => {
    const run = create(training.TrainingRunSchema, { runId: "t1" });
    const p = progressModel({ epochs: 2, phase2Epochs: 0, batchSize: 8, phase2BatchSize: 128 });
    const events = LINES.split("\n").map(parseEventLine);
    expect(events[5]).toBeUndefined();
    const out = events.filter((e) => e !== undefined).map((e) => ({ ...applyEvent(run, e, p), run: { ...run } }));
    expect(out.map((o) => o.kind)).toEqual(["log", "progress", "log", "progress", "epoch", "eval"]);
    expect(out[0]!.run).toMatchObject({ phase: "features", datasetVersion: "ea4f89f76b3ad668", totalSteps: 20n, totalEpochs: 2 });
    expect(out[3]!.run).toMatchObject({ phase: "train", epoch: 1, step: 10n, totalSteps: 20n, loss: 1.99211, throughput: 258.6, etaSeconds: 0.3 });
    expect(out[3]!.message).toBe("epoch 1/2 step 10/20: loss 1.9921");
    expect(out[4]!.run).toMatchObject({ loss: 2.06375, devMetrics: { split: "dev", t2iR1: 25, t2iR5: 72.5, t2iR10: 100, t2iMedr: 3, i2tR1: 25, i2tR5: 50, i2tR10: 87.5, i2tMedr: 6 } });
    expect(out[5]!.run).toMatchObject({ phase: "evaluate", etaSeconds: 0, devMetrics: { t2iR1: 15, i2tR1: 37.5 } });
    expect(out[0]!.time.seconds).toBe(BigInt(Date.parse("2026-11-26T09:38:57Z") / 1000));
  });

  it("count phase-2 epochs after phase 1", () => {
    const run = create(training.TrainingRunSchema, {});
    const p = progressModel({ epochs: 5, phase2Epochs: 2, batchSize: 10, phase2BatchSize: 4 });
    applyEvent(run, { event: "start", train_images: 8 }, p);
    expect(run.totalSteps).toBe(BigInt(4 * 5 + 2 * 2));
    applyEvent(run, { event: "step", phase: 2, epoch: 1, step: 22, loss: 1 }, p);
    expect(run).toMatchObject({ phase: "finetune", epoch: 6, totalEpochs: 7, step: 22n });
  });
});
