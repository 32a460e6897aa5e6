/**
 * Query-bank normalisation (QB-Norm, inverted softmax; model/glimpse_model/querybank.py).
 *
 * A model may ship a bank of train-split query embeddings (querybank.json + two float32
 * matrices). Each gallery item then gets a bias, lower for "hub" items close to many bank
 * queries: bias(item) = -(1/β) · ln Σ_b exp(β · bank_b · item). Images are biased with the
 * caption bank (text queries search images), captions with the image bank. Rankings order by
 * cosine + bias; the reported score stays the cosine.
 */
import { rowLogSumExp } from "../index/similarity.js";
import { toF32 } from "../index/topk.js";

export const QUERYBANK_FILES = ["querybank.json", "querybank_images.f32", "querybank_captions.f32"] as const;

export interface QueryBank {
  beta: number;
  dim: number;
  /** Bank of image queries [n × dim]: biases captions. */
  images: Float32Array;
  /** Bank of caption queries [n × dim]: biases images. */
  captions: Float32Array;
}

interface QueryBankDoc {
  schema: string;
  beta: number;
  dim: number;
  images: number;
  captions: number;
  files: { images: string; captions: string };
}

/** The bank from a model version's files (undefined when it ships none); throws on a bad one. */
export function parseQueryBank(files: Record<string, Uint8Array | undefined>, dim: number): QueryBank | undefined {
  const json = files["querybank.json"];
  if (!json) return undefined;
  const doc = JSON.parse(Buffer.from(json).toString("utf8")) as QueryBankDoc;
  if (doc.schema !== "glimpse.querybank/v1") throw new Error(`querybank.json: unknown schema ${doc.schema}`);
  if (!(doc.beta > 0) || doc.dim !== dim) throw new Error(`querybank.json: beta ${doc.beta}, dim ${doc.dim} (model dim ${dim})`);
  const read = (file: string, rows: number): Float32Array => {
    const b = files[file];
    if (!b) throw new Error(`querybank.json names ${file}, which the model version lacks`);
    if (b.byteLength !== rows * dim * 4) throw new Error(`${file}: ${b.byteLength} bytes, expected ${rows} × ${dim} float32`);
    return toF32(b);
  };
  return { beta: doc.beta, dim, images: read(doc.files.images, doc.images), captions: read(doc.files.captions, doc.captions) };
}

/** Biases of `items` ([n × dim]) against `bank` ([m × dim]) at inverse temperature `beta`. */
export async function itemBias(bank: Float32Array, items: Float32Array, dim: number, beta: number): Promise<Float32Array> {
  if (items.length === 0) return new Float32Array(0);
  const scaled = Float32Array.from(bank, (v) => v * beta);
  const lse = await rowLogSumExp(items, scaled, dim);
  return lse.map((v) => -v / beta);
}

/** Biases of images (ranked for text queries) and of captions (ranked for image queries). */
export async function galleryBias(bank: QueryBank, imageEmb: Float32Array, captionEmb: Float32Array): Promise<{ image: Float32Array; caption: Float32Array }> {
  const [image, caption] = await Promise.all([
    itemBias(bank.captions, imageEmb, bank.dim, bank.beta),
    itemBias(bank.images, captionEmb, bank.dim, bank.beta),
  ]);
  return { image, caption };
}
