/**
 * The trainer's JSON-line events (model/glimpse_model/events.py) → TrainingRun fields and one
 * WatchTraining message each.
 *
 * Trainer events: start, features (backbone cache progress), features_ready, step, epoch
 * (with dev metrics), stopped, done; then the export's promotion (the quality gate's decision,
 * model/glimpse_model/promotion.py). Common fields: event, time, run; training events add
 * phase (1 = frozen features, 2 = fine-tuning), epoch, step, loss, lr, throughput, eta_s, dev.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { training } from "@glimpse/api";

/** One event line as the trainer writes it. */
export interface TrainerEvent {
  event: string;
  time?: string;
  run?: string;
  phase?: number;
  epoch?: number;
  step?: number;
  loss?: number;
  lr?: number;
  throughput?: number;
  eta_s?: number;
  dev?: DevMetrics | null;
  [k: string]: unknown;
}

interface Direction {
  r1: number;
  r5: number;
  r10: number;
  medr: number;
}

export interface DevMetrics {
  t2i: Direction;
  i2t: Direction;
  rsum?: number;
}

/** What WatchTraining sends for one event. */
export interface RunEvent {
  kind: "progress" | "epoch" | "eval" | "log" | "state";
  message: string;
  time: Timestamp;
}

/** Numbers needed to turn per-phase epochs and steps into whole-run progress. */
export interface ProgressModel {
  epochs: number;
  phase2Epochs: number;
  batchSize: number;
  phase2BatchSize: number;
  /** From the start event. */
  trainImages?: number;
  /** Phase-1 steps per epoch: exact after the first epoch event, estimated before. */
  steps1?: number;
}

/** Parses one stdout line; undefined when it is not a trainer event. */
export function parseEventLine(line: string): TrainerEvent | undefined {
  const text = line.trim();
  if (!text.startsWith("{")) return undefined;
  try {
    const value = JSON.parse(text) as unknown;
    if (value && typeof value === "object" && !Array.isArray(value) && typeof (value as { event?: unknown }).event === "string") return value as TrainerEvent;
  } catch {
    // not JSON: a plain log line
  }
  return undefined;
}

const num = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);

function eventTime(ev: TrainerEvent): Timestamp {
  const d = typeof ev.time === "string" ? new Date(ev.time) : new Date();
  return timestampFromDate(Number.isNaN(d.getTime()) ? new Date() : d);
}

function devToMetrics(dev: DevMetrics, split = "dev"): training.RetrievalMetrics {
  return create(training.RetrievalMetricsSchema, {
    split,
    t2iR1: dev.t2i.r1,
    t2iR5: dev.t2i.r5,
    t2iR10: dev.t2i.r10,
    t2iMedr: dev.t2i.medr,
    i2tR1: dev.i2t.r1,
    i2tR5: dev.i2t.r5,
    i2tR10: dev.i2t.r10,
    i2tMedr: dev.i2t.medr,
  });
}

function rsum(m: training.RetrievalMetrics): number {
  return m.t2iR1 + m.t2iR5 + m.t2iR10 + m.i2tR1 + m.i2tR5 + m.i2tR10;
}

function isDev(v: unknown): v is DevMetrics {
  const d = v as DevMetrics | null | undefined;
  return !!d && typeof d === "object" && typeof d.t2i?.r1 === "number" && typeof d.i2t?.r1 === "number";
}

/** The gate's decision from a promotion event; undefined when the event lacks its core fields. */
function promotionFromEvent(ev: TrainerEvent): training.Promotion | undefined {
  if (typeof ev["promoted"] !== "boolean" || typeof ev["reason"] !== "string") return undefined;
  const str = (k: string) => (typeof ev[k] === "string" ? ev[k] : "");
  return create(training.PromotionSchema, {
    promoted: ev["promoted"],
    reason: ev["reason"],
    metric: str("metric"),
    margin: num(ev["margin"]) ?? 0,
    candidateValue: num(ev["candidate_value"]) ?? 0,
    productionVersion: str("production_version"),
    productionValue: num(ev["production_value"]) ?? 0,
    productionReevaluated: ev["production_reevaluated"] === true,
    datasetVersion: str("dataset_version"),
  });
}

/** Phase-1 steps per epoch before the trainer reports one: 5 captions per image (Flickr8K). */
function estimateSteps1(p: ProgressModel): number | undefined {
  if (p.trainImages === undefined) return undefined;
  const captions = p.trainImages * 5;
  return Math.max(1, Math.floor(captions / Math.max(1, Math.min(p.batchSize, captions))));
}

function totalSteps(p: ProgressModel): number | undefined {
  const s1 = p.steps1 ?? estimateSteps1(p);
  if (s1 === undefined || p.trainImages === undefined) return undefined;
  const s2 = p.phase2Epochs > 0 ? Math.max(1, Math.floor(p.trainImages / Math.max(1, Math.min(p.phase2BatchSize, p.trainImages)))) : 0;
  return s1 * p.epochs + s2 * p.phase2Epochs;
}

const fmt = (v: number | undefined, digits = 4): string => (v === undefined ? "?" : Number(v.toFixed(digits)).toString());

/**
 * Applies one trainer event to `run` (in place) and describes it for watchers. Events only move
 * progress fields; the state is the executor's business.
 */
export function applyEvent(run: training.TrainingRun, ev: TrainerEvent, p: ProgressModel): RunEvent {
  const time = eventTime(ev);
  const phaseNo = num(ev.phase);
  const globalEpoch = (e: number | undefined) => (e === undefined ? undefined : phaseNo === 2 ? p.epochs + e : e);
  const setTraining = () => {
    if (phaseNo === 1) run.phase = "train";
    else if (phaseNo === 2) run.phase = "finetune";
    const e = globalEpoch(num(ev.epoch));
    if (e !== undefined) run.epoch = e;
    const step = num(ev.step);
    if (step !== undefined) run.step = BigInt(Math.round(step));
    const total = totalSteps(p);
    if (total !== undefined) run.totalSteps = BigInt(Math.max(total, Number(run.step)));
  };
  run.totalEpochs = p.epochs + p.phase2Epochs;

  switch (ev.event) {
    case "start": {
      const images = num(ev["train_images"]);
      if (images !== undefined) p.trainImages = images;
      run.phase = "features";
      const total = totalSteps(p);
      if (total !== undefined) run.totalSteps = BigInt(total);
      if (typeof ev["dataset_version"] === "string" && ev["dataset_version"] && !run.datasetVersion) run.datasetVersion = ev["dataset_version"];
      const message = `started on ${String(ev["device"] ?? "?")}: dataset version ${String(ev["dataset_version"] ?? "?")}, ${String(ev["train_images"] ?? "?")} train / ${String(ev["dev_images"] ?? "?")} dev images${ev["resumed"] ? " (resumed from the checkpoint)" : ""}`;
      return { kind: "log", message, time };
    }
    case "features": {
      run.phase = "features";
      const t = num(ev.throughput);
      if (t !== undefined) run.throughput = t;
      const eta = num(ev.eta_s);
      if (eta !== undefined) run.etaSeconds = eta;
      return { kind: "progress", message: `caching backbone features (${String(ev["split"] ?? "?")}): ${String(ev["done"] ?? "?")}/${String(ev["total"] ?? "?")}`, time };
    }
    case "features_ready":
      return { kind: "log", message: `feature cache ready (${String(ev["seconds"] ?? "?")} s computing)`, time };
    case "step": {
      setTraining();
      const loss = num(ev.loss);
      if (loss !== undefined) run.loss = loss;
      const lr = num(ev.lr);
      if (lr !== undefined) run.learningRate = lr;
      const t = num(ev.throughput);
      if (t !== undefined) run.throughput = t;
      const eta = num(ev.eta_s);
      if (eta !== undefined) run.etaSeconds = eta;
      return { kind: "progress", message: `epoch ${run.epoch}/${run.totalEpochs} step ${run.step}/${run.totalSteps}: loss ${fmt(loss)}`, time };
    }
    case "epoch": {
      const e = num(ev.epoch);
      const step = num(ev.step);
      // Global steps count from the first phase-1 epoch (also after --resume): exact steps per epoch.
      if (phaseNo === 1 && e && step) p.steps1 = Math.max(1, Math.round(step / e));
      setTraining();
      const loss = num(ev.loss);
      if (loss !== undefined) run.loss = loss;
      let dev = "";
      if (isDev(ev.dev)) {
        const m = devToMetrics(ev.dev);
        if (!run.devMetrics || rsum(m) >= rsum(run.devMetrics)) run.devMetrics = m;
        dev = `; dev R@1 t2i ${fmt(m.t2iR1, 2)} i2t ${fmt(m.i2tR1, 2)}, R@10 t2i ${fmt(m.t2iR10, 2)} i2t ${fmt(m.i2tR10, 2)}`;
      }
      if (run.epoch >= run.totalEpochs) run.etaSeconds = 0;
      return { kind: "epoch", message: `epoch ${run.epoch}/${run.totalEpochs} done: mean loss ${fmt(loss)}${dev}`, time };
    }
    case "stopped":
      return { kind: "log", message: `trainer stopped after epoch ${String(ev.epoch ?? "?")} (${String(ev["reason"] ?? "?")})`, time };
    case "done": {
      run.phase = "evaluate";
      run.etaSeconds = 0;
      if (isDev(ev.dev)) run.devMetrics = devToMetrics(ev.dev);
      const m = run.devMetrics;
      const best = m ? `t2i R@1/5/10 ${fmt(m.t2iR1, 2)}/${fmt(m.t2iR5, 2)}/${fmt(m.t2iR10, 2)}, i2t ${fmt(m.i2tR1, 2)}/${fmt(m.i2tR5, 2)}/${fmt(m.i2tR10, 2)}` : "no dev metrics";
      return { kind: "eval", message: `training done; best dev (phase ${String(ev.phase ?? "?")} epoch ${String(ev.epoch ?? "?")}): ${best}`, time };
    }
    case "promotion": {
      const p = promotionFromEvent(ev);
      if (!p) return { kind: "log", message: JSON.stringify(ev), time };
      run.promotion = p;
      return { kind: "eval", message: `${p.promoted ? "promoted to production" : "not promoted"}: ${p.reason}`, time };
    }
    default:
      return { kind: "log", message: JSON.stringify(ev), time };
  }
}

/** The initial progress model of a run, from its validated plan. */
export function progressModel(plan: { epochs: number; phase2Epochs: number; batchSize: number; phase2BatchSize: number }): ProgressModel {
  return { epochs: plan.epochs, phase2Epochs: plan.phase2Epochs, batchSize: plan.batchSize, phase2BatchSize: plan.phase2BatchSize };
}
