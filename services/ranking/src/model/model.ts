/**
 * A loaded model version: tokenizer + preprocessing + both ONNX encoders, with concurrent
 * calls micro-batched into single runs and a small cache of query embeddings.
 */
import type { Logger } from "@glimpse/logging";
import { MicroBatcher } from "./batcher.js";
import { EncoderPool, type EncoderRuns } from "./encoder-pool.js";
import { Encoders, type EncoderOptions } from "./encoders.js";
import { DEFAULT_RUN_OVERHEAD, groupByLength } from "./grouping.js";
import { Preprocessor, type DecodedPixels } from "./preprocess.js";
import { loadTokenizer, type TextTokenizer } from "./tokenizer.js";
import { parseQueryBank, type QueryBank } from "./querybank.js";

/** The files of a model version this module reads (bytes as stored in the registry). */
export interface ModelFiles {
  "image_encoder.onnx": Uint8Array;
  "text_encoder.onnx": Uint8Array;
  "vocab.json": Uint8Array;
  "preprocess.json": Uint8Array;
  "config.json": Uint8Array;
  /** Query-bank normalisation (optional; querybank.ts). */
  "querybank.json"?: Uint8Array;
  "querybank_images.f32"?: Uint8Array;
  "querybank_captions.f32"?: Uint8Array;
}

export interface ModelOptions extends Partial<EncoderOptions> {
  /** Most queries gathered into one micro-batch (1 = no micro-batching). */
  maxBatch?: number;
  /**
   * A text-encoder run's fixed cost in tokens of padded input (default 12, measured): a gathered
   * batch of queries is split into the runs that compute the fewest padded tokens plus this per
   * run, so a short query is not padded to a long neighbour's length (model/grouping.ts).
   */
  textRunOverhead?: number;
  /** Most images per image-encoder run (default 1: batching images measured no faster per image on CPU). */
  maxImageBatch?: number;
  /**
   * Encoder threads (encoder-pool.ts): each holds both encoders and runs one batch at a time,
   * beside the main thread. 0 = the encoders on the main thread (one run at a time).
   */
  encoderWorkers?: number;
  /** Query embeddings kept (by token ids). */
  cacheSize?: number;
  logger?: Logger;
}

export interface ImageEmbedding {
  embedding: Float32Array;
  width: number;
  height: number;
}

export class LoadedModel {
  readonly textBatcher: MicroBatcher<number[], Float32Array>;
  readonly imageBatcher: MicroBatcher<Float32Array, Float32Array>;
  private readonly cache = new Map<string, Float32Array>();
  private readonly cacheSize: number;
  private readonly textRunOverhead: number;

  private constructor(
    readonly version: string,
    readonly tokenizer: TextTokenizer,
    readonly preprocessor: Preprocessor,
    readonly encoders: EncoderRuns,
    readonly config: Record<string, unknown>,
    opts: ModelOptions,
    /** The model's query bank, when it ships one: gallery items get biases from it. */
    readonly queryBank?: QueryBank,
  ) {
    const maxBatch = opts.maxBatch ?? 32;
    // as many runs of each encoder at once as there are threads to run them
    const runs = Math.max(1, opts.encoderWorkers ?? 0);
    this.cacheSize = opts.cacheSize ?? 1024;
    this.textRunOverhead = Math.max(0, opts.textRunOverhead ?? DEFAULT_RUN_OVERHEAD);
    // one encoder run per group of similar lengths, shortest first
    this.textBatcher = new MicroBatcher(
      (seqs) => this.runText(seqs),
      maxBatch,
      (seqs) => groupByLength(seqs.map((q) => q.length), { overhead: this.textRunOverhead }),
      runs,
    );
    this.imageBatcher = new MicroBatcher((px) => this.runImages(px), Math.max(1, Math.min(maxBatch, opts.maxImageBatch ?? 1)), undefined, runs);
  }

  static async load(version: string, files: ModelFiles, opts: ModelOptions = {}): Promise<LoadedModel> {
    const tokenizer = loadTokenizer(Buffer.from(files["vocab.json"]));
    const preprocessor = Preprocessor.fromJson(Buffer.from(files["preprocess.json"]));
    const config = JSON.parse(Buffer.from(files["config.json"]).toString("utf8")) as Record<string, unknown>;
    const dim = typeof config["embed_dim"] === "number" ? config["embed_dim"] : undefined;
    const expected = { imageInput: preprocessor.inputName, ...(dim === undefined ? {} : { dim }) };
    const workers = opts.encoderWorkers ?? 0;
    const encoders: EncoderRuns = workers > 0
      ? await EncoderPool.load(files["image_encoder.onnx"], files["text_encoder.onnx"], workers, opts, expected)
      : await Encoders.load(files["image_encoder.onnx"], files["text_encoder.onnx"], opts, expected);
    let queryBank: QueryBank | undefined;
    try {
      queryBank = parseQueryBank(files as unknown as Record<string, Uint8Array | undefined>, encoders.dim);
    } catch (err) {
      await encoders.release();
      throw err;
    }
    return new LoadedModel(version, tokenizer, preprocessor, encoders, config, opts, queryBank);
  }

  get dim(): number {
    return this.encoders.dim;
  }

  /** One text's embedding (micro-batched with concurrent queries; cached by token ids). */
  async embedText(text: string): Promise<Float32Array> {
    const ids = this.tokenizer.encode(text);
    const key = ids.join(",");
    const hit = this.cache.get(key);
    if (hit) {
      // Refresh its place in the LRU order.
      this.cache.delete(key);
      this.cache.set(key, hit);
      return hit;
    }
    const emb = await this.textBatcher.submit(ids);
    if (this.cacheSize > 0) {
      this.cache.set(key, emb);
      if (this.cache.size > this.cacheSize) this.cache.delete(this.cache.keys().next().value!);
    }
    return emb;
  }

  /** Many texts in as few runs as possible (index builds, batch requests). Not cached. */
  async embedTexts(texts: string[], runSize = 256): Promise<Float32Array> {
    const dim = this.dim;
    const seqs = texts.map((t) => this.tokenizer.encode(t));
    // Similar lengths together: less padding, same embeddings (the encoder ignores padding).
    const out = new Float32Array(texts.length * dim);
    for (const idx of groupByLength(seqs.map((q) => q.length), { overhead: this.textRunOverhead, maxRun: runSize })) {
      const emb = await this.encoders.encodeTokens(this.tokenizer.pad(idx.map((j) => seqs[j]!)));
      idx.forEach((j, r) => out.set(emb.subarray(r * dim, (r + 1) * dim), j * dim));
    }
    return out;
  }

  /** Decodes and embeds one encoded image (micro-batched with concurrent uploads). */
  async embedImage(bytes: Uint8Array): Promise<ImageEmbedding> {
    const px = await this.preprocessor.fromEncoded(bytes);
    return { embedding: await this.imageBatcher.submit(px.data), width: px.width, height: px.height };
  }

  /** Embeddings [n × dim] of already preprocessed images (index builds). */
  async embedPixels(images: DecodedPixels[]): Promise<Float32Array> {
    const p = this.preprocessor;
    const all = new Float32Array(images.length * p.size);
    images.forEach((im, i) => all.set(im.data, i * p.size));
    return this.encoders.encodePixels(all, images.length, p);
  }

  /** One encoder run of a group of queries (the batcher's grouping keeps their lengths close). */
  private async runText(seqs: number[][]): Promise<Float32Array[]> {
    const d = this.dim;
    const emb = await this.encoders.encodeTokens(this.tokenizer.pad(seqs));
    return seqs.map((_, i) => emb.slice(i * d, (i + 1) * d));
  }

  private async runImages(pixels: Float32Array[]): Promise<Float32Array[]> {
    const p = this.preprocessor;
    const all = pixels.length === 1 ? pixels[0]! : new Float32Array(pixels.length * p.size);
    if (pixels.length > 1) pixels.forEach((px, i) => all.set(px, i * p.size));
    const emb = await this.encoders.encodePixels(all, pixels.length, p);
    const d = this.dim;
    return pixels.map((_, i) => emb.slice(i * d, (i + 1) * d));
  }

  release(): Promise<void> {
    return this.encoders.release();
  }
}
