import { createHash } from "node:crypto";
import exifReader from "exif-reader";
import sharp, { type Metadata } from "sharp";
import { IMAGE_FORMAT, normalizeImage } from "./images.js";

/** Limits for one collection photo. */
export const PHOTO_LIMITS = {
  maxBytes: 50 * 1024 * 1024,
  /** decompression bombs: refused from the header, before anything is decoded */
  maxPixels: 100_000_000,
  thumbnailSize: 256,
};

export type SkipReason = "EMPTY" | "NOT_AN_IMAGE" | "TRUNCATED" | "TOO_LARGE" | "UNSUPPORTED_FORMAT";

export interface IngestedPhoto {
  ok: true;
  /** hex sha256 of the original bytes */
  sha256: string;
  /** sha256.slice(0, 16) */
  photoId: string;
  sizeBytes: number;
  /** sharp's format name of the original; AV1-coded HEIF is reported as "avif" */
  format: string;
  /** upright size (EXIF orientation applied: orientations 5–8 swap width and height) */
  width: number;
  height: number;
  /**
   * EXIF DateTimeOriginal, else DateTimeDigitized, else DateTime. EXIF times carry no zone:
   * the wall-clock time is read as if it were UTC. undefined when none or invalid.
   */
  takenTime?: Date;
  /** EXIF Image Model, trimmed ("" when none) */
  cameraModel: string;
  /** normalizeImage(bytes, IMAGE_FORMAT).data: the copy the encoder embeds */
  normalized: Buffer;
  /** JPEG, longest side <= 256 (never upscaled), upright, sRGB, alpha flattened on white, no metadata */
  thumbnail: Buffer;
}

export interface SkippedPhoto {
  ok: false;
  reason: SkipReason;
  message: string;
}

/** Raster formats a collection accepts ("heif" only where this libvips can decode it: HEVC usually not). */
const ACCEPTED = new Set(["jpeg", "png", "webp", "gif", "tiff", "avif", "heif"]);

/**
 * Decodes, validates and normalises one user photo. Never throws for bad input: anything that
 * is not a whole, decodable raster image within the limits comes back as a SkippedPhoto.
 */
export async function ingestPhoto(
  bytes: Buffer,
  /** `sha256`: the bytes' hash when the caller has it already (a sync hashes before it decodes). */
  opts: { maxBytes?: number; maxPixels?: number; sha256?: string } = {},
): Promise<IngestedPhoto | SkippedPhoto> {
  const maxBytes = opts.maxBytes ?? PHOTO_LIMITS.maxBytes;
  const maxPixels = opts.maxPixels ?? PHOTO_LIMITS.maxPixels;
  if (bytes.length === 0) return skip("EMPTY", "the file is empty (0 bytes)");
  if (bytes.length > maxBytes) return skip("TOO_LARGE", `${bytes.length} bytes is over the limit of ${maxBytes} bytes`);

  // Header only: sharp's pixel limit would refuse a bomb here too, but without its size.
  let meta: Metadata;
  try {
    meta = await sharp(bytes, { limitInputPixels: false, failOn: "warning" }).metadata();
  } catch (err) {
    // libvips calls a TIFF cut short "unsupported", and cannot load some formats at all (no
    // poppler, no HEVC decoder…): the magic bytes still tell what the file was meant to be.
    const known = sniffFormat(bytes);
    // (HEIF that libvips cannot even read the header of is, in practice, HEVC it cannot decode.)
    if (known && known !== "heif" && ACCEPTED.has(known)) return skip("TRUNCATED", `truncated or corrupt ${known}: ${errorText(err)}`);
    if (known) return skip("UNSUPPORTED_FORMAT", `${known} files are not supported (${errorText(err)})`);
    if (/unsupported image format/i.test(errorText(err))) return skip("NOT_AN_IMAGE", "not a recognisable image");
    return skip("TRUNCATED", `corrupt image header: ${errorText(err)}`);
  }
  const format = meta.format === "heif" && meta.compression === "av1" ? "avif" : String(meta.format);
  if (!ACCEPTED.has(format)) return skip("UNSUPPORTED_FORMAT", `${format} files are not supported`);
  const pixels = meta.width * meta.height;
  if (pixels > maxPixels) {
    return skip("TOO_LARGE", `${meta.width}×${meta.height} = ${pixels} pixels is over the limit of ${maxPixels} pixels`);
  }

  let normalized: Buffer, thumbnail: Buffer;
  try {
    const size = PHOTO_LIMITS.thumbnailSize;
    [normalized, thumbnail] = await Promise.all([
      // Same function and format as the gallery, so embeddings match; the pixel limit only
      // gates the input (it does not change the output), so photos may be up to maxPixels.
      normalizeImage(bytes, { ...IMAGE_FORMAT, max_input_pixels: maxPixels }).then((n) => n.data),
      // failOn "warning": truncated or corrupt data throws. sharp strips all metadata (EXIF,
      // GPS, ICC, XMP) unless asked to keep it, and converts an embedded profile to sRGB.
      sharp(bytes, { failOn: "warning", limitInputPixels: maxPixels })
        .autoOrient()
        .resize(size, size, { fit: "inside", withoutEnlargement: true })
        .flatten({ background: "#ffffff" })
        .toColourspace("srgb")
        .jpeg({ quality: 80 })
        .toBuffer(),
    ]);
  } catch (err) {
    const text = errorText(err);
    if (/pixel limit/i.test(text)) return skip("TOO_LARGE", `over the limit of ${maxPixels} pixels: ${text}`);
    if (format === "heif") return skip("UNSUPPORTED_FORMAT", `heif (${meta.compression ?? "unknown"}) cannot be decoded here: ${text}`);
    return skip("TRUNCATED", `truncated or corrupt ${format}: ${text}`);
  }

  const sha256 = opts.sha256 ?? createHash("sha256").update(bytes).digest("hex");
  const upright = meta.autoOrient;
  return {
    ok: true,
    sha256,
    photoId: sha256.slice(0, 16),
    sizeBytes: bytes.length,
    format,
    width: upright.width,
    height: upright.height,
    ...readExif(meta.exif),
    normalized,
    thumbnail,
  };
}

function skip(reason: SkipReason, message: string): SkippedPhoto {
  return { ok: false, reason, message };
}

function errorText(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split("\n")[0] ?? "";
}

/** The format a file's magic bytes announce, whether or not this libvips can load it. */
function sniffFormat(b: Buffer): string | undefined {
  const at = (offset: number, s: string) => b.toString("latin1", offset, offset + s.length) === s;
  if (at(0, "\xff\xd8\xff")) return "jpeg";
  if (at(0, "\x89PNG\r\n\x1a\n")) return "png";
  if (at(0, "GIF87a") || at(0, "GIF89a")) return "gif";
  if (at(0, "RIFF") && at(8, "WEBP")) return "webp";
  if (at(0, "II*\x00") || at(0, "MM\x00*") || at(0, "II+\x00") || at(0, "MM\x00+")) return "tiff";
  if (at(0, "%PDF-")) return "pdf";
  if (at(4, "ftyp")) {
    // ISO-BMFF: major brand at 8, compatible brands from 16 to the end of the ftyp box.
    const end = Math.min(b.readUInt32BE(0), b.length);
    const brands = new Set<string>();
    for (let i = 8; i + 4 <= end; i += 4) if (i !== 12) brands.add(b.toString("latin1", i, i + 4));
    if (brands.has("avif") || brands.has("avis")) return "avif";
    if (["heic", "heix", "heim", "heis", "hevc", "hevx", "mif1", "msf1"].some((x) => brands.has(x))) return "heif";
  }
  if (at(0, "\x00\x00\x00\x0cjP  \r\n\x87\n") || at(0, "\xff\x4f\xff\x51")) return "jp2";
  if (at(0, "\x00\x00\x00\x0cJXL \r\n\x87\n") || at(0, "\xff\x0a")) return "jxl";
  if (at(0, "BM") && b.length >= 18 && [12, 40, 52, 56, 64, 108, 124].includes(b.readUInt32LE(14))) return "bmp";
  return undefined;
}

function readExif(exif: Buffer | undefined): { takenTime?: Date; cameraModel: string } {
  if (!exif) return { cameraModel: "" };
  let tags: exifReader.Exif;
  try {
    tags = exifReader(exif);
  } catch {
    return { cameraModel: "" }; // malformed EXIF is no reason to skip the photo
  }
  const takenTime = [tags.Photo?.DateTimeOriginal, tags.Photo?.DateTimeDigitized, tags.Image?.DateTime]
    .map(exifDate)
    .find((d) => d !== undefined);
  const model = tags.Image?.Model;
  const cameraModel = typeof model === "string" ? model.replace(/\0/g, "").trim() : "";
  return takenTime ? { takenTime, cameraModel } : { cameraModel };
}

/**
 * exif-reader turns "YYYY:MM:DD HH:MM:SS" into a UTC Date (null when it does not parse); a raw
 * string is parsed the same way. Placeholder dates ("0000:00:00 …" becomes 1899) are dropped.
 */
function exifDate(value: unknown): Date | undefined {
  let date: Date | undefined;
  if (value instanceof Date) date = value;
  else if (typeof value === "string") {
    const m = /^(\d{4}):(\d{2}):(\d{2}) (\d{2}):(\d{2}):(\d{2})/.exec(value.trim());
    if (m) {
      const [y, mo, d, h, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number, number];
      date = new Date(Date.UTC(y, mo - 1, d, h, mi, s));
      if (date.getUTCFullYear() !== y || date.getUTCMonth() !== mo - 1 || date.getUTCDate() !== d) date = undefined;
    }
  }
  return date && !Number.isNaN(date.getTime()) && date.getUTCFullYear() >= 1900 ? date : undefined;
}
