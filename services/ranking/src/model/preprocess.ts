/**
 * Image preprocessing with sharp, reproducing a model version's `preprocess.json`
 * (schema glimpse.preprocess/v1, written by the Python trainer):
 *
 *   decode → RGB (alpha dropped, not flattened) → resize "fill" to width×height with the
 *   given kernel (skipped when the image already has that size) →
 *   value[c,y,x] = (pixel[y,x,c] / 255 − mean[c]) / std[c]  in float32, NCHW.
 *
 * The float32 arithmetic matches numpy's step for step: every intermediate is rounded to
 * float32, which a 256-entry table per channel does exactly.
 *
 * One addition the Python side does not need: EXIF orientation is applied (phone uploads
 * are often stored rotated). Dataset images and the golden PNGs carry no orientation, so
 * this changes nothing for them.
 */
import sharp, { type KernelEnum, type Metadata, type OutputInfo } from "sharp";
import { LIMITS } from "@glimpse/api";

const PREPROCESS_SCHEMA = "glimpse.preprocess/v1";

export interface PreprocessSpec {
  schema: string;
  width: number;
  height: number;
  resize: string;
  resize_kernel: string;
  channel_order: string;
  layout: string;
  dtype: string;
  scale: number;
  mean: number[];
  std: number[];
  input_name?: string;
}

/** Why an input is not a usable image; the service turns it into a field violation. */
export class ImageInputError extends Error {
  override readonly name = "ImageInputError";
  constructor(
    /** UNSUPPORTED_FORMAT, CORRUPT, TOO_MANY_PIXELS, TOO_LARGE, EMPTY. */
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

const ACCEPTED_FORMATS = ["jpeg", "png", "webp"] as const;

const KERNELS: Record<string, keyof KernelEnum> = {
  nearest: "nearest",
  bilinear: "linear",
  linear: "linear",
  bicubic: "cubic",
  cubic: "cubic",
  lanczos: "lanczos3",
  lanczos3: "lanczos3",
  lanczos2: "lanczos2",
  mitchell: "mitchell",
};

sharp.cache(false);

export interface DecodedPixels {
  /** float32 [3, height, width] (NCHW without N). */
  data: Float32Array;
  /** The decoded input's size (after EXIF orientation), before resizing. */
  width: number;
  height: number;
  format: string;
}

export class Preprocessor {
  readonly width: number;
  readonly height: number;
  readonly inputName: string;
  /** Values per image: 3 × height × width. */
  readonly size: number;
  private readonly kernel: keyof KernelEnum;
  private readonly luts: Float32Array[];
  private readonly order: number[];

  constructor(
    readonly spec: PreprocessSpec,
    private readonly limits: { maxPixels: number; maxBytes: number } = { maxPixels: LIMITS.imageMaxPixels, maxBytes: LIMITS.imageMaxBytes },
  ) {
    if (spec.schema !== PREPROCESS_SCHEMA) throw new Error(`preprocess.json: unsupported schema ${JSON.stringify(spec.schema)} (want ${PREPROCESS_SCHEMA})`);
    if (spec.resize !== "fill") throw new Error(`preprocess.json: unsupported resize ${JSON.stringify(spec.resize)} (only "fill")`);
    if ((spec.layout ?? "NCHW") !== "NCHW") throw new Error(`preprocess.json: unsupported layout ${spec.layout}`);
    if ((spec.dtype ?? "float32") !== "float32") throw new Error(`preprocess.json: unsupported dtype ${spec.dtype}`);
    const kernel = KERNELS[spec.resize_kernel ?? "bilinear"];
    if (!kernel) throw new Error(`preprocess.json: unsupported resize_kernel ${spec.resize_kernel}`);
    if (spec.mean?.length !== 3 || spec.std?.length !== 3) throw new Error("preprocess.json: mean and std need 3 values");
    const order = (spec.channel_order ?? "RGB").toUpperCase();
    if (order !== "RGB" && order !== "BGR") throw new Error(`preprocess.json: unsupported channel_order ${spec.channel_order}`);
    this.order = order === "RGB" ? [0, 1, 2] : [2, 1, 0];
    this.kernel = kernel;
    this.width = spec.width;
    this.height = spec.height;
    this.inputName = spec.input_name ?? "pixels";
    this.size = 3 * spec.width * spec.height;
    const f = Math.fround;
    // numpy: (a / np.float32(255) - mean32) / std32, every step in float32. Division by
    // 255 (not multiplication by 1/255) when the spec's scale is 1/255, as the trainer does.
    const byDivision = Math.abs(spec.scale - 1 / 255) < 1e-12;
    this.luts = [0, 1, 2].map((c) => {
      const mean = f(spec.mean[c]!);
      const std = f(spec.std[c]!);
      const scale = f(spec.scale);
      const lut = new Float32Array(256);
      for (let p = 0; p < 256; p++) {
        const x = byDivision ? f(p / 255) : f(p * scale);
        lut[p] = f(f(x - mean) / std);
      }
      return lut;
    });
  }

  static fromJson(text: string | Buffer): Preprocessor {
    return new Preprocessor(JSON.parse(text.toString()) as PreprocessSpec);
  }

  /**
   * Decodes, checks and preprocesses one encoded image (JPEG, PNG or WebP). Throws
   * ImageInputError for anything that is not a whole, acceptable image: other formats,
   * truncated or corrupt data, more pixels than allowed (checked from the header, before
   * decoding — decompression bombs never get decoded).
   */
  async fromEncoded(bytes: Uint8Array): Promise<DecodedPixels> {
    if (bytes.length === 0) throw new ImageInputError("EMPTY", "image is empty");
    if (bytes.length > this.limits.maxBytes) throw new ImageInputError("TOO_LARGE", `image is ${bytes.length} bytes; at most ${this.limits.maxBytes} are accepted`);
    const input = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    let meta: Metadata;
    try {
      meta = await sharp(input, { limitInputPixels: false }).metadata();
    } catch (err) {
      throw new ImageInputError("UNSUPPORTED_FORMAT", `not a JPEG, PNG or WebP image (${shortError(err)})`);
    }
    if (!meta.format || !(ACCEPTED_FORMATS as readonly string[]).includes(meta.format)) {
      throw new ImageInputError("UNSUPPORTED_FORMAT", `image format ${meta.format ?? "unknown"} is not accepted (JPEG, PNG or WebP)`);
    }
    const w = meta.width ?? 0;
    const h = meta.height ?? 0;
    const frames = meta.pages ?? 1;
    if (w < 1 || h < 1) throw new ImageInputError("CORRUPT", "image has no pixels");
    if (w * h * frames > this.limits.maxPixels) {
      throw new ImageInputError("TOO_MANY_PIXELS", `image is ${w}×${h} (${((w * h) / 1e6).toFixed(1)} megapixels); at most ${this.limits.maxPixels / 1e6} megapixels are accepted`);
    }
    const oriented = (meta.orientation ?? 1) >= 5 ? { width: h, height: w } : { width: w, height: h };
    let raw: { data: Buffer; info: OutputInfo };
    try {
      let img = sharp(input, { failOn: "warning", limitInputPixels: this.limits.maxPixels }).rotate();
      if (oriented.width !== this.width || oriented.height !== this.height) {
        img = img.resize(this.width, this.height, { fit: "fill", kernel: this.kernel });
      }
      raw = await img.removeAlpha().toColourspace("srgb").raw({ depth: "uchar" }).toBuffer({ resolveWithObject: true });
    } catch (err) {
      throw new ImageInputError("CORRUPT", `image data is truncated or corrupt (${shortError(err)})`);
    }
    const { info } = raw;
    if (info.width !== this.width || info.height !== this.height) throw new ImageInputError("CORRUPT", `decoded to ${info.width}×${info.height}`);
    return { data: this.normalize(raw.data, info.channels), width: oriented.width, height: oriented.height, format: meta.format };
  }

  /** Interleaved 8-bit pixels (HWC, 1–4 channels) → normalised float32 CHW. */
  normalize(hwc: Uint8Array, channels: number, out = new Float32Array(this.size), offset = 0): Float32Array {
    const plane = this.width * this.height;
    if (hwc.length !== plane * channels) throw new Error(`expected ${plane * channels} bytes, got ${hwc.length}`);
    for (let c = 0; c < 3; c++) {
      const src = channels >= 3 ? this.order[c]! : 0; // grey: one channel for all three
      const lut = this.luts[c]!;
      const base = offset + c * plane;
      for (let i = 0, j = src; i < plane; i++, j += channels) out[base + i] = lut[hwc[j]!]!;
    }
    return out;
  }
}

function shortError(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.split("\n")[0]!.replace(/^Input (buffer|file) /, "").slice(0, 200);
}
