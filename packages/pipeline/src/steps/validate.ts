import { readFile } from "node:fs/promises";
import { decodeImage } from "../images.js";
import { SPLIT_NAMES, type Counts, type Splits } from "../layout.js";
import { ValidationError, errorMessage } from "../util/errors.js";
import { readJson, sha256Hex, writeJsonAtomic } from "../util/json.js";
import { forEachLimit } from "../util/pool.js";
import type { StepContext } from "./context.js";
import type { ProcessedImage, ProcessReport } from "./process.js";
import { ratioSizes, type SplitReport } from "./split.js";

export interface Finding {
  code: string;
  message: string;
  /** The offending files (archive paths such as `Flicker8k_Dataset/x.jpg`, or work-dir paths) or ids. */
  files: string[];
}

/** validate/report.json */
export interface ValidationReport {
  ok: boolean;
  counts: Counts;
  images_checked: number;
  violations: Finding[];
  warnings: Finding[];
}

export interface ValidateStepResult {
  counts: Counts;
  warnings: number;
}

export function validateInputs(ctx: Pick<StepContext, "options">): unknown {
  return { expect: ctx.options.expect ?? {} };
}

const JPEG_MAGIC = Buffer.from([0xff, 0xd8, 0xff]);

/**
 * Checks the processed dataset before anything is published: every image decodes fully
 * (and is the target format and size, with the recorded checksum), every image in a split
 * has captions, no image is in two splits, every split image exists, and the counts add up
 * (and match `expect` when given). Writes validate/report.json; throws ValidationError
 * naming the offending files when there are violations.
 */
export async function runValidate(ctx: StepContext): Promise<ValidateStepResult> {
  const { work, report, params, imageFormat } = ctx;
  const index = await readJson<Record<string, ProcessedImage>>(work.path("process", "images.json"));
  const captions = await readJson<Record<string, string[]>>(work.path("process", "captions.json"));
  const processReport = await readJson<ProcessReport>(work.path("process", "report.json"));
  const splits = await readJson<Splits>(work.path("split", "splits.json"));
  const splitReport = await readJson<SplitReport>(work.path("split", "report.json"));

  const violations: Finding[] = [];
  const warnings: Finding[] = [];
  const add = (list: Finding[], code: string, message: string, files: string[]): void => {
    if (files.length > 0) list.push({ code, message, files });
  };
  const describe = (id: string): string => index[id]?.source ?? id;

  // 1. Every image decodes, is the target format and size, and has the recorded checksum.
  const ids = Object.keys(index).sort();
  report.setUnit("images", ids.length);
  const bad: Record<string, string[]> = { unreadable: [], checksum: [], format: [], decode: [], size: [] };
  let checked = 0;
  await forEachLimit(
    ids,
    // Outputs are all small (224x224), so twice the process step's concurrency is safe.
    (ctx.options.concurrency ?? 4) * 2,
    async (id) => {
      const rel = `process/images/${id}.jpg`;
      const what = `${rel} (from ${index[id]?.source})`;
      let data: Buffer;
      try {
        data = await readFile(work.path("process", "images", `${id}.jpg`));
      } catch (err) {
        bad["unreadable"]?.push(`${what}: ${errorMessage(err)}`);
        return;
      } finally {
        report.progress(++checked);
      }
      if (sha256Hex(data) !== index[id]?.sha256 || data.length !== index[id]?.size) bad["checksum"]?.push(what);
      if (!data.subarray(0, 3).equals(JPEG_MAGIC)) bad["format"]?.push(what);
      try {
        const d = await decodeImage(data);
        if (d.width !== imageFormat.width || d.height !== imageFormat.height || d.format !== "jpeg") bad["size"]?.push(`${what}: ${d.format} ${d.width}x${d.height}`);
      } catch (err) {
        bad["decode"]?.push(`${what}: ${errorMessage(err).split("\n")[0]}`);
      }
    },
    ctx.signal,
  );
  for (const list of Object.values(bad)) list.sort();
  add(violations, "image_unreadable", "processed image files that cannot be read", bad["unreadable"] ?? []);
  add(violations, "image_checksum", "processed images whose bytes differ from the recorded sha256/size", bad["checksum"] ?? []);
  add(violations, "image_not_jpeg", "processed images that are not JPEG", bad["format"] ?? []);
  add(violations, "image_decode", "processed images that do not decode", bad["decode"] ?? []);
  add(violations, "image_size", `processed images that are not ${imageFormat.width}x${imageFormat.height} JPEG`, bad["size"] ?? []);

  // 2. Captions only for images that exist.
  add(violations, "captions_without_image", "captions.json names images that were not processed", Object.keys(captions).filter((id) => !index[id]).sort());

  // 3. Splits: known images, with captions, in one split only.
  const where = new Map<string, string[]>();
  for (const s of SPLIT_NAMES) for (const id of splits[s] ?? []) where.set(id, [...(where.get(id) ?? []), s]);
  const unknown: string[] = [];
  const noCaptions: string[] = [];
  const overlap: string[] = [];
  for (const [id, in_] of [...where].sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (!index[id]) unknown.push(`${id} (${in_.join(", ")})`);
    else if (!((captions[id]?.length ?? 0) > 0)) noCaptions.push(`${describe(id)} (${in_.join(", ")})`);
    if (in_.length > 1) overlap.push(`${describe(id)} (${in_.join(" and ")})`);
  }
  add(violations, "split_unknown_image", "split images that were not processed", unknown);
  add(violations, "split_without_captions", "images in a split without any caption", noCaptions);
  add(violations, "split_overlap", "images in more than one split", overlap);

  // 4. Counts.
  const inSome = new Set(where.keys());
  const counts: Counts = {
    images: ids.length,
    captions: ids.reduce((n, id) => n + (captions[id]?.length ?? 0), 0),
    train: splits.train.length,
    dev: splits.dev.length,
    test: splits.test.length,
    unsplit: ids.filter((id) => !inSome.has(id)).length,
  };
  const mismatch: string[] = [];
  if (counts.images === 0) mismatch.push("no images");
  if (counts.captions === 0) mismatch.push("no captions");
  if (processReport.processed !== counts.images) mismatch.push(`process step reported ${processReport.processed} images, the index has ${counts.images}`);
  if (processReport.processed + processReport.rejected.length !== processReport.selected) mismatch.push(`selected ${processReport.selected} ≠ processed ${processReport.processed} + rejected ${processReport.rejected.length}`);
  if (params.datasetSize === "sample") {
    const want = Math.max(1, Math.round(processReport.images_in_archive * params.sampleRatio));
    if (processReport.selected !== want) mismatch.push(`sample of ${processReport.selected} images, expected ${want} (${params.sampleRatio} of ${processReport.images_in_archive})`);
  } else if (processReport.selected !== processReport.images_in_archive) mismatch.push(`selected ${processReport.selected} of ${processReport.images_in_archive} images in a full run`);
  for (const s of SPLIT_NAMES) if (splitReport.counts[s] !== counts[s]) mismatch.push(`split step reported ${splitReport.counts[s]} ${s} images, splits.json has ${counts[s]}`);
  if (params.splitMode === "ratio") {
    const captioned = ids.filter((id) => (captions[id]?.length ?? 0) > 0).length;
    const want = ratioSizes(captioned, params.trainRatio, params.devRatio);
    for (const s of SPLIT_NAMES) if (counts[s] !== want[s]) mismatch.push(`${s} has ${counts[s]} images, a ${params.trainRatio}/${params.devRatio}/${params.testRatio} split of ${captioned} gives ${want[s]}`);
  }
  for (const [k, v] of Object.entries(ctx.options.expect ?? {})) {
    if (v !== undefined && counts[k as keyof Counts] !== v) mismatch.push(`${k}: expected ${v}, got ${counts[k as keyof Counts]}`);
  }
  add(violations, "counts", "counts that do not add up or differ from the expected ones", mismatch);

  // Warnings: reported, not fatal.
  add(warnings, "rejected_images", "images rejected by the process step (corrupt, over the pixel limit, ...)", processReport.rejected.map((r) => `${r.file}: ${r.reason}`));
  add(warnings, "captions_without_image", "ids with captions but no image in the archive (captions dropped)", processReport.captions_without_image);
  add(warnings, "images_without_captions", "processed images without captions", processReport.images_without_captions.map(describe));
  add(warnings, "token_file_issues", "token file lines that needed fixing or were dropped", processReport.token_file_issues.map((i) => `${processReport.captions_file}:${i.line}: ${i.kind} ${i.text}`));
  add(warnings, "unsplit_images", "images in no split", splitReport.unsplit.map(describe));
  add(warnings, "listed_rejected", "split-list images that were rejected", splitReport.listed_rejected ?? []);
  add(warnings, "listed_missing", "split-list images not in the images archive", splitReport.listed_missing ?? []);
  add(warnings, "split_list_duplicates", "names listed twice in one split list", splitReport.duplicates ?? []);

  const rep: ValidationReport = { ok: violations.length === 0, counts, images_checked: checked, violations, warnings };
  await writeJsonAtomic(work.path("validate", "report.json"), rep);
  for (const w of warnings) report.log("warn", `${w.code}: ${w.files.length} — ${w.message}: ${w.files.slice(0, 5).join("; ")}${w.files.length > 5 ? "; ..." : ""}`);
  if (violations.length > 0) {
    const text = violations.map((v) => `${v.code} (${v.files.length}): ${v.files.slice(0, 10).join("; ")}${v.files.length > 10 ? `; ... (${v.files.length - 10} more)` : ""}`).join("\n  ");
    throw new ValidationError(`validation failed with ${violations.length} violation(s) (report: ${work.path("validate", "report.json")}):\n  ${text}`, rep);
  }
  return { counts, warnings: warnings.length };
}
