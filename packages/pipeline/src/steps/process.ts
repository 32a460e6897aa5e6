import { readdir, readFile, stat } from "node:fs/promises";
import { basename, extname, join, relative, sep } from "node:path";
import { parseTokenFile, type TokenFileIssue } from "../captions.js";
import { normalizeImage } from "../images.js";
import { PipelineInputError, errorMessage } from "../util/errors.js";
import { canonicalJson, sha256File, sha256Hex, writeFileAtomic, writeJsonAtomic } from "../util/json.js";
import { forEachLimit } from "../util/pool.js";
import type { StepContext } from "./context.js";

const IMAGE_EXT = new Set([".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".gif", ".bmp"]);

export interface ProcessedImage {
  sha256: string;
  size: number;
  width: number;
  height: number;
  /** The original file, relative to the images archive (e.g. `Flicker8k_Dataset/x.jpg`). */
  source: string;
}

export interface RejectedImage {
  image_id: string;
  file: string;
  reason: string;
}

/** process/report.json */
export interface ProcessReport {
  images_in_archive: number;
  selected: number;
  processed: number;
  /** Of those processed in this attempt, inputs already in the target format, kept byte for byte. */
  kept_as_is: number;
  rejected: RejectedImage[];
  captions_file: string;
  caption_lines: number;
  captions: number;
  /** Images processed that have no caption (kept; a split must not contain them). */
  images_without_captions: string[];
  /** Ids with captions but no image in the archive (their captions are dropped). */
  captions_without_image: string[];
  token_file_issues: TokenFileIssue[];
}

export interface ProcessStepResult {
  imagesInArchive: number;
  selected: number;
  processed: number;
  rejected: number;
  captions: number;
  /** process/images.json (image id → ProcessedImage). */
  index: { sha256: string; size: number };
  /** process/captions.json, the exact bytes to publish. */
  captionsFile: { sha256: string; size: number };
}

/** Walks a folder (sorted, relative paths with "/"). */
export async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  const out: string[] = [];
  for (const e of entries) {
    if (!e.isFile()) continue;
    const parent = (e as unknown as { parentPath?: string; path?: string }).parentPath ?? (e as unknown as { path: string }).path;
    const rel = relative(dir, join(parent, e.name)).split(sep).join("/");
    if (rel.includes(".tmp-")) continue;
    out.push(rel);
  }
  return out.sort();
}

/** The images of the images archive: image id (file name without extension) → relative path. */
export async function findImages(dir: string): Promise<Map<string, string>> {
  const byId = new Map<string, string>();
  const dupes: string[] = [];
  for (const rel of await listFiles(dir)) {
    const ext = extname(rel).toLowerCase();
    if (!IMAGE_EXT.has(ext)) continue;
    const id = basename(rel).slice(0, -ext.length);
    const prev = byId.get(id);
    if (prev !== undefined) dupes.push(`${prev} and ${rel}`);
    else byId.set(id, rel);
  }
  if (dupes.length > 0) throw new PipelineInputError(`image ids are not unique: ${dupes.slice(0, 10).join("; ")}${dupes.length > 10 ? ` (+${dupes.length - 10} more)` : ""}`);
  return byId;
}

/** The token file in the captions archive: Flickr8k.token.txt, else any *.token.txt but the lemma one. */
async function findTokenFile(dir: string): Promise<string> {
  const files = await listFiles(dir);
  const exact = files.find((f) => basename(f) === "Flickr8k.token.txt");
  const any = exact ?? files.find((f) => f.endsWith(".token.txt") && !basename(f).toLowerCase().includes("lemma"));
  if (!any) throw new PipelineInputError(`no caption token file (Flickr8k.token.txt or *.token.txt) in the captions archive; files: ${files.slice(0, 20).join(", ")}`);
  return any;
}

/** A seeded, deterministic sample: the `ratio` of ids with the smallest sha256(seed:id). */
export function sampleIds(ids: readonly string[], ratio: number, seed: number): string[] {
  if (ratio >= 1) return [...ids].sort();
  const n = Math.max(1, Math.round(ids.length * ratio));
  return ids
    .map((id) => ({ id, h: sha256Hex(`sample:${seed}:${id}`) }))
    .sort((a, b) => (a.h < b.h ? -1 : a.h > b.h ? 1 : 0))
    .slice(0, n)
    .map((x) => x.id)
    .sort();
}

export function processInputs(ctx: Pick<StepContext, "params" | "imageFormat">): unknown {
  const p = ctx.params;
  return { datasetSize: p.datasetSize, sampleRatio: p.datasetSize === "sample" ? p.sampleRatio : 0, seed: p.datasetSize === "sample" ? p.seed : 0, imageFormat: ctx.imageFormat };
}

/**
 * Normalises every selected image (see IMAGE_FORMAT) into process/images/<id>.jpg and
 * cleans the captions into process/captions.json. Corrupt images are rejected and
 * reported; a restart keeps images already written.
 */
export async function runProcess(ctx: StepContext): Promise<ProcessStepResult> {
  const { params, work, report } = ctx;
  const imagesDir = work.path("extract", "images");
  const captionsDir = work.path("extract", "captions");
  const outDir = work.path("process", "images");

  const all = await findImages(imagesDir);
  if (all.size === 0) throw new PipelineInputError(`no images in the images archive (${params.imagesUrl})`);
  const tokenRel = await findTokenFile(captionsDir);
  const parsed = parseTokenFile(await readFile(join(captionsDir, tokenRel), "utf8"));
  for (const issue of parsed.issues) report.log("warn", `${tokenRel} line ${issue.line}: ${issue.kind} ${JSON.stringify(issue.text)}${issue.imageId ? ` → image ${issue.imageId}` : ""}`);

  const ids = [...all.keys()].sort();
  const selected = params.datasetSize === "sample" ? sampleIds(ids, params.sampleRatio, params.seed) : ids;
  report.setUnit("images", selected.length);
  report.progress(0, selected.length, `${selected.length} of ${ids.length} images`);

  const index = new Map<string, ProcessedImage>();
  const rejected: RejectedImage[] = [];
  let done = 0;
  let reused = 0;
  let keptAsIs = 0;
  await forEachLimit(
    selected,
    ctx.options.concurrency ?? 4,
    async (id) => {
      const rel = all.get(id) as string;
      const out = join(outDir, `${id}.jpg`);
      const existing = await stat(out).catch(() => undefined);
      if (existing) {
        const h = await sha256File(out);
        index.set(id, { sha256: h.sha256, size: h.size, width: ctx.imageFormat.width, height: ctx.imageFormat.height, source: rel });
        reused++;
      } else {
        try {
          const img = await normalizeImage(join(imagesDir, rel), ctx.imageFormat);
          await writeFileAtomic(out, img.data);
          if (img.passthrough) keptAsIs++;
          index.set(id, { sha256: sha256Hex(img.data), size: img.data.length, width: img.width, height: img.height, source: rel });
        } catch (err) {
          const reason = errorMessage(err).split("\n")[0] ?? "decode failed";
          rejected.push({ image_id: id, file: rel, reason });
          report.log("warn", `rejected ${rel}: ${reason}`);
        }
      }
      report.progress(++done);
    },
    ctx.signal,
  );
  rejected.sort((a, b) => (a.image_id < b.image_id ? -1 : 1));

  const processedIds = [...index.keys()].sort();
  const captions: Record<string, string[]> = {};
  const withoutCaptions: string[] = [];
  let captionCount = 0;
  for (const id of processedIds) {
    const c = parsed.captions.get(id);
    if (c && c.length > 0) {
      captions[id] = c;
      captionCount += c.length;
    } else withoutCaptions.push(id);
  }
  const captionsWithoutImage = [...parsed.captions.keys()].filter((id) => !all.has(id)).sort();
  if (captionsWithoutImage.length > 0) report.log("warn", `${captionsWithoutImage.length} image id(s) have captions but no image in the archive: ${captionsWithoutImage.slice(0, 10).join(", ")}`);
  if (withoutCaptions.length > 0) report.log("warn", `${withoutCaptions.length} image(s) have no captions: ${withoutCaptions.slice(0, 10).join(", ")}`);

  const captionsBytes = Buffer.from(canonicalJson(captions));
  await writeFileAtomic(work.path("process", "captions.json"), captionsBytes);
  const indexObj: Record<string, ProcessedImage> = {};
  for (const id of processedIds) indexObj[id] = index.get(id) as ProcessedImage;
  const indexBytes = Buffer.from(canonicalJson(indexObj));
  await writeFileAtomic(work.path("process", "images.json"), indexBytes);

  const rep: ProcessReport = {
    images_in_archive: all.size,
    selected: selected.length,
    processed: processedIds.length,
    kept_as_is: keptAsIs,
    rejected,
    captions_file: tokenRel,
    caption_lines: parsed.lines,
    captions: captionCount,
    images_without_captions: withoutCaptions,
    captions_without_image: captionsWithoutImage,
    token_file_issues: parsed.issues,
  };
  await writeJsonAtomic(work.path("process", "report.json"), rep);
  if (reused > 0) report.log("info", `${reused} image(s) were already processed by an interrupted attempt`);
  return {
    imagesInArchive: all.size,
    selected: selected.length,
    processed: processedIds.length,
    rejected: rejected.length,
    captions: captionCount,
    index: { sha256: sha256Hex(indexBytes), size: indexBytes.length },
    captionsFile: { sha256: sha256Hex(captionsBytes), size: captionsBytes.length },
  };
}
