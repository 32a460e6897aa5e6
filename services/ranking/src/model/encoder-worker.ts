/**
 * A worker thread holding one set of encoder sessions (encoder-pool.ts). onnxruntime-node runs a
 * session synchronously on the thread that calls it, so encoders on the main thread stop the gRPC
 * server, the searches and every other request for the length of each run; here they run beside it.
 */
import { parentPort, workerData } from "node:worker_threads";
import { Encoders, type EncoderOptions } from "./encoders.js";
import type { TokenBatch } from "./tokenizer.js";

export interface WorkerInit {
  imageOnnx: Uint8Array;
  textOnnx: Uint8Array;
  opts: Omit<EncoderOptions, "logger">;
  expected: { imageInput?: string; dim?: number };
}
export type WorkerRequest =
  | { id: number; kind: "text"; batch: TokenBatch }
  | { id: number; kind: "image"; pixels: Float32Array; n: number; size: { height: number; width: number } };
export type WorkerReply =
  | { kind: "ready"; dim: number; provider: string; io: Encoders["io"] }
  | { kind: "failed"; error: string }
  | { id: number; out: Float32Array }
  | { id: number; error: string };

const port = parentPort!;
const init = workerData as WorkerInit;
const post = (m: WorkerReply, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);

try {
  const enc = await Encoders.load(init.imageOnnx, init.textOnnx, init.opts, init.expected);
  port.on("message", (m: WorkerRequest | { kind: "release" }) => {
    if (m.kind === "release") {
      void enc.release().then(() => port.close());
      return;
    }
    const run = m.kind === "text" ? enc.encodeTokens(m.batch) : enc.encodePixels(m.pixels, m.n, m.size);
    // the embeddings are a fresh copy out of onnxruntime's buffer: handed over, not copied again
    run.then((out) => post({ id: m.id, out }, [out.buffer as ArrayBuffer]), (err: unknown) => post({ id: m.id, error: (err as Error).message }));
  });
  post({ kind: "ready", dim: enc.dim, provider: enc.provider, io: enc.io });
} catch (err) {
  post({ kind: "failed", error: (err as Error).message });
}
