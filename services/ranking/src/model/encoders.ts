/**
 * The two ONNX encoders of a model version on onnxruntime-node: `text_encoder.onnx`
 * (token_ids int64 [N,L] + lengths int64 [N] → embedding float32 [N,D]) and
 * `image_encoder.onnx` (pixels float32 [N,3,H,W] → embedding float32 [N,D]); both
 * L2-normalised, so a dot product is the cosine similarity.
 *
 * CPU by default; `executionProvider: "cuda"` asks for the CUDA execution provider and
 * falls back to the CPU (with a warning) where onnxruntime has no CUDA build or no GPU.
 */
import * as ort from "onnxruntime-node";
import type { Logger } from "@glimpse/logging";
import type { TokenBatch } from "./tokenizer.js";

export interface EncoderOptions {
  executionProvider: "cpu" | "cuda";
  /**
   * Intra-op threads per session. 0 = onnxruntime's default, one per core, for both encoders:
   * the shipped text tower is a transformer (MiniLM-L6) whose matrices split well — measured on
   * 2 cores, one query 5.9 → 4.5 ms and batches of 8 5.3 → 3.3 ms per query with two threads
   * (the earlier biLSTM's small per-step matrices ran best on one).
   */
  intraOpThreads: number;
  interOpThreads: number;
  logger?: Logger;
}

const DEFAULT_ENCODER_OPTIONS: EncoderOptions = { executionProvider: "cpu", intraOpThreads: 0, interOpThreads: 1 };

export interface EncoderIo {
  imageInput: string;
  textIds: string;
  textLengths: string;
  output: string;
}

export class Encoders {
  private released = false;

  private constructor(
    private readonly image: ort.InferenceSession,
    private readonly text: ort.InferenceSession,
    readonly io: EncoderIo,
    readonly dim: number,
    /** The execution provider actually in use. */
    readonly provider: string,
  ) {}

  /** Creates both sessions from the model files' bytes and checks their inputs and outputs. */
  static async load(imageOnnx: Uint8Array, textOnnx: Uint8Array, opts: Partial<EncoderOptions> = {}, expected: { imageInput?: string; dim?: number } = {}): Promise<Encoders> {
    const o = { ...DEFAULT_ENCODER_OPTIONS, ...opts };
    const create = async (bytes: Uint8Array, provider: string) => {
      const so: ort.InferenceSession.SessionOptions = {
        executionProviders: provider === "cuda" ? ["cuda", "cpu"] : ["cpu"],
        graphOptimizationLevel: "all",
        interOpNumThreads: o.interOpThreads,
        executionMode: "sequential",
        // Runs are short and the CPU is shared with the gRPC server: do not let idle pool
        // threads spin after each run (measured with the text encoder on 2 threads: spinning
        // cut one query 4.6 → 3.8 ms alone, but Ranking's CPU per query went 9 → 14 ms and,
        // the cores being shared, text→image through the gateway got slower).
        extra: { session: { intra_op: { allow_spinning: "0" }, inter_op: { allow_spinning: "0" } } },
        // Errors only: loading an int8 (QDQ) encoder, onnxruntime's optimiser warns of every
        // constant its fusions leave unused (~100 lines a load) — nothing a user can act on.
        logSeverityLevel: 3,
        ...(o.intraOpThreads > 0 ? { intraOpNumThreads: o.intraOpThreads } : {}),
      };
      return ort.InferenceSession.create(bytes, so);
    };
    let provider: string = o.executionProvider;
    let image: ort.InferenceSession;
    let text: ort.InferenceSession;
    try {
      [image, text] = await Promise.all([create(imageOnnx, provider), create(textOnnx, provider)]);
    } catch (err) {
      if (provider !== "cuda") throw err;
      o.logger?.warn({ err: (err as Error).message }, "CUDA execution provider unavailable; using the CPU");
      provider = "cpu";
      [image, text] = await Promise.all([create(imageOnnx, provider), create(textOnnx, provider)]);
    }
    const imageInput = expected.imageInput ?? "pixels";
    const fail = (msg: string) => {
      void image.release();
      void text.release();
      throw new Error(msg);
    };
    if (!image.inputNames.includes(imageInput)) fail(`image_encoder.onnx has inputs ${image.inputNames.join(", ")}; expected ${imageInput}`);
    if (!text.inputNames.includes("token_ids") || !text.inputNames.includes("lengths")) fail(`text_encoder.onnx has inputs ${text.inputNames.join(", ")}; expected token_ids and lengths`);
    if (!image.outputNames.includes("embedding") || !text.outputNames.includes("embedding")) fail("both encoders must output `embedding`");
    const enc = new Encoders(image, text, { imageInput, textIds: "token_ids", textLengths: "lengths", output: "embedding" }, 0, provider);
    // The embedding size, from a one-token run (also the first, slow, warm-up run).
    const probe = await enc.runText({ ids: new BigInt64Array([1n]), lengths: new BigInt64Array([1n]), n: 1, width: 1 }, 0);
    const dim = probe.length;
    if (expected.dim !== undefined && dim !== expected.dim) fail(`text embedding has ${dim} values; the model config says ${expected.dim}`);
    return new Encoders(image, text, enc.io, dim, provider);
  }

  /** Embeddings [n × dim] of a padded token batch. */
  async encodeTokens(batch: TokenBatch): Promise<Float32Array> {
    return this.runText(batch, this.dim);
  }

  /** Embeddings [n × dim] of n preprocessed images laid out NCHW in `pixels`. */
  async encodePixels(pixels: Float32Array, n: number, size: { height: number; width: number }): Promise<Float32Array> {
    this.check();
    const feeds = { [this.io.imageInput]: new ort.Tensor("float32", pixels, [n, 3, size.height, size.width]) };
    const out = await this.image.run(feeds);
    return this.take(out, n, this.dim);
  }

  private async runText(batch: TokenBatch, dim: number): Promise<Float32Array> {
    this.check();
    const feeds = {
      [this.io.textIds]: new ort.Tensor("int64", batch.ids, [batch.n, batch.width]),
      [this.io.textLengths]: new ort.Tensor("int64", batch.lengths, [batch.n]),
    };
    const out = await this.text.run(feeds);
    return this.take(out, batch.n, dim);
  }

  private take(out: ort.InferenceSession.OnnxValueMapType, n: number, dim: number): Float32Array {
    const t = out[this.io.output]!;
    if (t.type !== "float32") throw new Error(`embedding is ${t.type}, expected float32`);
    const data = t.data as Float32Array;
    if (t.dims.length !== 2 || t.dims[0] !== n || (dim > 0 && t.dims[1] !== dim)) throw new Error(`embedding has shape [${t.dims.join(",")}], expected [${n},${dim || "D"}]`);
    // Copy out of onnxruntime's buffer so the tensor can be freed.
    return new Float32Array(data);
  }

  private check(): void {
    if (this.released) throw new Error("the model's sessions were released");
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await Promise.all([this.image.release(), this.text.release()]);
  }
}
