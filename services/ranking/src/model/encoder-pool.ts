/**
 * The encoders in worker threads: `workers` sets of sessions, each in its own thread
 * (encoder-worker.ts), a run going to the one with the fewest runs in flight. The main thread
 * keeps serving — reading requests, searching, answering — while the encoders compute, and on
 * more than one core two runs (a text batch and an upload, or two uploads) go at once, as the
 * separate processes of a multi-worker Python server do.
 *
 * The same calls as Encoders (model.ts uses either); inputs are copied to the worker, embeddings
 * handed back without a copy.
 */
import { Worker } from "node:worker_threads";
import { serviceEntry } from "../entry.js";
import type { EncoderOptions, Encoders } from "./encoders.js";
import type { TokenBatch } from "./tokenizer.js";
import type { WorkerInit, WorkerReply, WorkerRequest } from "./encoder-worker.js";

/** What model.ts needs of a set of encoders, in process (Encoders) or in workers (EncoderPool). */
export type EncoderRuns = Pick<Encoders, "dim" | "provider" | "io" | "encodeTokens" | "encodePixels" | "release">;

interface Pending {
  resolve: (out: Float32Array) => void;
  reject: (err: Error) => void;
}

class EncoderThread {
  readonly pending = new Map<number, Pending>();
  private failure: Error | undefined;

  constructor(readonly worker: Worker) {
    worker.on("message", (m: WorkerReply) => {
      if (!("id" in m)) return;
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if ("out" in m) p?.resolve(m.out);
      else p?.reject(new Error(m.error));
    });
    const fail = (err: Error) => {
      this.failure ??= err;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    worker.on("error", fail);
    worker.on("exit", (code) => fail(new Error(`an encoder worker exited (code ${code})`)));
  }

  run(req: WorkerRequest): Promise<Float32Array> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.pending.set(req.id, { resolve, reject });
      this.worker.postMessage(req);
    });
  }
}

export class EncoderPool implements EncoderRuns {
  private next = 0;
  private released = false;

  private constructor(
    private readonly threads: EncoderThread[],
    readonly dim: number,
    readonly provider: string,
    readonly io: Encoders["io"],
  ) {}

  /** Starts `workers` threads, each loading both encoders; fails (and stops them) if any fails to load. */
  static async load(imageOnnx: Uint8Array, textOnnx: Uint8Array, workers: number, opts: Partial<EncoderOptions> = {}, expected: WorkerInit["expected"] = {}): Promise<EncoderPool> {
    const { logger, ...rest } = opts;
    // parallelism comes from the workers: one intra-op thread each unless asked otherwise
    const init: WorkerInit = { imageOnnx, textOnnx, opts: { executionProvider: "cpu", interOpThreads: 1, ...rest, intraOpThreads: rest.intraOpThreads || 1 }, expected };
    const entry = serviceEntry("./encoder-worker", import.meta.url);
    const started = Array.from({ length: workers }, () => new Worker(entry.path, { workerData: init, ...(entry.execArgv.length ? { execArgv: entry.execArgv } : {}) }));
    const ready = await Promise.allSettled(started.map((w) => readyOf(w)));
    const failed = ready.find((r) => r.status === "rejected");
    if (failed) {
      await Promise.all(started.map((w) => w.terminate()));
      throw (failed as PromiseRejectedResult).reason as Error;
    }
    const first = (ready[0] as PromiseFulfilledResult<Extract<WorkerReply, { kind: "ready" }>>).value;
    if (first.provider !== (rest.executionProvider ?? "cpu")) logger?.warn("CUDA execution provider unavailable; using the CPU");
    return new EncoderPool(started.map((w) => new EncoderThread(w)), first.dim, first.provider, first.io);
  }

  async encodeTokens(batch: TokenBatch): Promise<Float32Array> {
    return this.pick().run({ id: this.next++, kind: "text", batch });
  }

  async encodePixels(pixels: Float32Array, n: number, size: { height: number; width: number }): Promise<Float32Array> {
    return this.pick().run({ id: this.next++, kind: "image", pixels, n, size: { height: size.height, width: size.width } });
  }

  /** The thread with the fewest runs in flight (the first of them on a tie). */
  private pick(): EncoderThread {
    if (this.released) throw new Error("the model's sessions were released");
    return this.threads.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    // each worker releases its sessions and closes its port; terminate() ends what is left
    await Promise.all(this.threads.map(async ({ worker }) => {
      const exited = new Promise<void>((r) => worker.once("exit", () => r()));
      worker.postMessage({ kind: "release" });
      const timer = setTimeout(() => void worker.terminate(), 5_000);
      await exited;
      clearTimeout(timer);
    }));
  }
}

function readyOf(w: Worker): Promise<Extract<WorkerReply, { kind: "ready" }>> {
  return new Promise((resolve, reject) => {
    w.once("message", (m: WorkerReply) => ("kind" in m && m.kind === "ready" ? resolve(m) : reject(new Error("kind" in m && m.kind === "failed" ? m.error : "an encoder worker sent no ready message"))));
    w.once("error", reject);
    w.once("exit", (code) => reject(new Error(`an encoder worker exited (code ${code}) while loading`)));
  });
}
