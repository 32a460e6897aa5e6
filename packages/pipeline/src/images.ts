import { readFile } from "node:fs/promises";
import sharp, { type KernelEnum, type Metadata } from "sharp";
import type { ImageFormat } from "./layout.js";

/**
 * The one target format of every published image: 224×224 JPEG, squashed to the exact size
 * (aspect ratio not kept, as in the shared 224×224 copy and the model's preprocessing),
 * quality 90, 4:2:0, sRGB, EXIF orientation applied, all metadata stripped, alpha
 * flattened onto white; inputs over 40 megapixels are rejected (decompression bombs).
 * An input that is already exactly that (a 224×224 baseline sRGB JPEG, 3 channels, 4:2:0,
 * no metadata — the shared Flickr8K copy) is kept byte for byte: re-encoding it would only
 * add a second round of JPEG loss (measured: ~1.5 points of Recall@10).
 */
export const IMAGE_FORMAT: ImageFormat = {
  format: "jpeg",
  width: 224,
  height: 224,
  quality: 90,
  fit: "fill",
  kernel: "lanczos3",
  colorspace: "srgb",
  chroma_subsampling: "4:2:0",
  orientation: "exif-applied",
  metadata: "stripped",
  alpha: "flattened-on-white",
  max_input_pixels: 40_000_000,
  passthrough: "conforming-jpeg",
};

let configured = false;
/** sharp's operation cache only helps repeated operations on one file; we never repeat. */
function configureSharp(): void {
  if (configured) return;
  configured = true;
  sharp.cache(false);
}

export interface NormalizedImage {
  data: Buffer;
  width: number;
  height: number;
  /** true when the input bytes were kept as they are (already in the target format) */
  passthrough: boolean;
}

/**
 * Decodes and normalises one image. Throws on anything libvips warns about (truncated or
 * corrupt data: `failOn: "warning"`) and on inputs over the pixel limit.
 */
export async function normalizeImage(input: string | Buffer, fmt: ImageFormat = IMAGE_FORMAT): Promise<NormalizedImage> {
  configureSharp();
  const options = { limitInputPixels: fmt.max_input_pixels, failOn: "warning" as const, sequentialRead: true };
  if (fmt.passthrough === "conforming-jpeg") {
    const bytes = typeof input === "string" ? await readFile(input) : input;
    const img = sharp(bytes, options);
    if (conforms(await img.metadata(), fmt)) {
      await img.raw().toBuffer(); // a full decode: truncated or corrupt data still throws
      return { data: bytes, width: fmt.width, height: fmt.height, passthrough: true };
    }
    input = bytes;
  }
  const { data, info } = await sharp(input, options)
    .autoOrient()
    .resize(fmt.width, fmt.height, { fit: "fill", kernel: fmt.kernel as keyof KernelEnum })
    .flatten({ background: "#ffffff" })
    .toColourspace("srgb")
    .jpeg({ quality: fmt.quality, chromaSubsampling: fmt.chroma_subsampling, mozjpeg: false })
    .toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, passthrough: false };
}

/** Whether an input already is what normalisation would produce (size, colour, no metadata). */
function conforms(m: Metadata, fmt: ImageFormat): boolean {
  return (
    m.format === fmt.format &&
    m.width === fmt.width &&
    m.height === fmt.height &&
    m.space === fmt.colorspace &&
    m.channels === 3 &&
    !m.hasAlpha &&
    m.chromaSubsampling === fmt.chroma_subsampling &&
    !m.isProgressive &&
    (m.orientation ?? 1) === 1 &&
    !m.exif &&
    !m.icc &&
    !m.xmp &&
    !m.iptc &&
    !(m.comments && m.comments.length > 0)
  );
}

/** Fully decodes an encoded image (the validate step's check); returns its size and format. */
export async function decodeImage(input: Buffer): Promise<{ width: number; height: number; channels: number; format: string }> {
  configureSharp();
  const img = sharp(input, { failOn: "warning", limitInputPixels: IMAGE_FORMAT.max_input_pixels });
  const meta = await img.metadata();
  const { info } = await img.raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, channels: info.channels, format: meta.format ?? "unknown" };
}
