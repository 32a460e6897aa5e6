/**
 * The model's golden vectors (`golden.json` + `golden/*.png`, written by the exporter from
 * onnxruntime in Python): the same captions must give the same token ids and embeddings,
 * the same PNGs the same pixels and embeddings. A version whose serving stack does not
 * reproduce them is refused, and the tests prove the TypeScript tokenizer and
 * preprocessing against them.
 */
import type { LoadedModel } from "./model.js";
import { galleryBias } from "./querybank.js";

export interface GoldenImage {
  file: string;
  source_image_id?: string;
  width: number;
  height: number;
  pixels_first8: number[];
  pixels_sum: number;
  embedding: number[];
}

export interface GoldenCaption {
  text: string;
  token_ids: number[];
  length: number;
  embedding: number[];
}

export interface Golden {
  schema: string;
  tolerance: { pixels: number; embedding: number };
  images: GoldenImage[];
  captions: GoldenCaption[];
  /** Query-bank biases of the golden images and captions (models with a query bank). */
  qbnorm?: { beta: number; image_bias: number[]; caption_bias: number[] };
}

export interface GoldenReport {
  captions: number;
  images: number;
  maxTextDiff: number;
  maxImageDiff: number;
  maxPixelDiff: number;
  pixelSumDiff: number;
  /** Largest difference of a query-bank bias (0 without a bank). */
  maxBiasDiff: number;
}

export class GoldenMismatchError extends Error {
  override readonly name = "GoldenMismatchError";
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/**
 * Checks a loaded model against its golden vectors. `readPng` returns a golden image's bytes
 * (by its `file`). Throws GoldenMismatchError naming the first difference.
 */
export async function verifyGolden(model: LoadedModel, golden: Golden, readPng: (file: string) => Promise<Uint8Array>): Promise<GoldenReport> {
  const tol = golden.tolerance ?? { pixels: 1e-6, embedding: 1e-4 };
  const report: GoldenReport = { captions: 0, images: 0, maxTextDiff: 0, maxImageDiff: 0, maxPixelDiff: 0, pixelSumDiff: 0, maxBiasDiff: 0 };
  const caps = golden.captions ?? [];
  for (const c of caps) {
    const ids = model.tokenizer.encode(c.text);
    if (ids.join(",") !== c.token_ids.join(",")) {
      throw new GoldenMismatchError(`tokenizer differs from golden.json for ${JSON.stringify(c.text)}: [${ids.join(",")}] vs [${c.token_ids.join(",")}]`);
    }
  }
  if (caps.length > 0) {
    // One batch, padded to the longest caption: also proves padding does not change embeddings.
    const emb = await model.encoders.encodeTokens(model.tokenizer.batch(caps.map((c) => c.text)));
    caps.forEach((c, i) => {
      const d = maxAbsDiff(emb.subarray(i * model.dim, (i + 1) * model.dim), c.embedding);
      report.maxTextDiff = Math.max(report.maxTextDiff, d);
      if (!(d <= tol.embedding)) throw new GoldenMismatchError(`text embedding of ${JSON.stringify(c.text)} differs from golden.json by ${d.toExponential(2)} (tolerance ${tol.embedding})`);
    });
    report.captions = caps.length;
  }
  const imgs = golden.images ?? [];
  if (imgs.length > 0) {
    const decoded = [];
    for (const g of imgs) {
      const px = await model.preprocessor.fromEncoded(await readPng(g.file));
      const dp = maxAbsDiff(px.data.subarray(0, g.pixels_first8.length), g.pixels_first8);
      let sum = 0;
      for (let i = 0; i < px.data.length; i++) sum += px.data[i]!;
      const ds = Math.abs(sum - g.pixels_sum);
      report.maxPixelDiff = Math.max(report.maxPixelDiff, dp);
      report.pixelSumDiff = Math.max(report.pixelSumDiff, ds);
      // The sum of ~150k float32 values in float64 on both sides (only the order differs):
      // 1e-3 still catches a single pixel one level off (2/255 ≈ 0.008 with std 0.5).
      if (!(dp <= tol.pixels) || !(ds <= 1e-3 + 1e-9 * Math.abs(g.pixels_sum))) {
        throw new GoldenMismatchError(`preprocessed pixels of ${g.file} differ from golden.json (first values by ${dp.toExponential(2)}, sum by ${ds.toExponential(2)})`);
      }
      decoded.push(px);
    }
    const emb = await model.embedPixels(decoded);
    imgs.forEach((g, i) => {
      const d = maxAbsDiff(emb.subarray(i * model.dim, (i + 1) * model.dim), g.embedding);
      report.maxImageDiff = Math.max(report.maxImageDiff, d);
      if (!(d <= tol.embedding)) throw new GoldenMismatchError(`image embedding of ${g.file} differs from golden.json by ${d.toExponential(2)} (tolerance ${tol.embedding})`);
    });
    report.images = imgs.length;
  }
  const qb = golden.qbnorm;
  if (qb || model.queryBank) {
    const bank = model.queryBank;
    if (!qb || !bank) throw new GoldenMismatchError(qb ? "golden.json has query-bank biases but the model ships no query bank" : "the model ships a query bank but golden.json has no biases to check it");
    const flat = (xs: { embedding: number[] }[]) => Float32Array.from(xs.flatMap((x) => x.embedding));
    const bias = await galleryBias(bank, flat(imgs), flat(caps));
    report.maxBiasDiff = Math.max(maxAbsDiff(bias.image, qb.image_bias), maxAbsDiff(bias.caption, qb.caption_bias));
    if (!(report.maxBiasDiff <= tol.embedding)) throw new GoldenMismatchError(`query-bank biases differ from golden.json by ${report.maxBiasDiff.toExponential(2)} (tolerance ${tol.embedding})`);
  }
  return report;
}
