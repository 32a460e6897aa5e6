import { readFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { parseSplitList } from "../captions.js";
import { SPLIT_NAMES, type SplitName, type Splits } from "../layout.js";
import { PipelineInputError } from "../util/errors.js";
import { canonicalJson, readJson, sha256Hex, writeFileAtomic, writeJsonAtomic } from "../util/json.js";
import type { StepContext } from "./context.js";
import { findImages, listFiles, type ProcessedImage, type ProcessReport } from "./process.js";

/** split/report.json */
export interface SplitReport {
  mode: "official" | "ratio";
  counts: Record<SplitName, number> & { unsplit: number };
  /** Official lists: the list files used. */
  lists?: Record<SplitName, string>;
  /** Official lists: names listed per split. */
  listed?: Record<SplitName, number>;
  /** Listed images that were rejected by the process step. */
  listed_rejected?: string[];
  /** Listed images not in the images archive at all. */
  listed_missing?: string[];
  /** Listed images left out by sampling (a count; dataset_size=sample). */
  listed_not_sampled?: number;
  /** Names listed twice in one list. */
  duplicates?: string[];
  /** Images in no split. */
  unsplit: string[];
  /** Ratio mode: the ratios and seed used. */
  ratios?: Record<SplitName, number>;
  seed?: number;
}

export interface SplitStepResult {
  counts: Record<SplitName, number> & { unsplit: number };
  splitsFile: { sha256: string; size: number };
}

export function splitInputs(ctx: Pick<StepContext, "params">): unknown {
  const p = ctx.params;
  return p.splitMode === "ratio" ? { mode: "ratio", ratios: [p.trainRatio, p.devRatio, p.testRatio], seed: p.seed } : { mode: "official" };
}

/** Finds the official lists (Flickr_8k.trainImages.txt, ...) in the captions archive. */
async function findSplitLists(dir: string): Promise<Record<SplitName, string> | undefined> {
  const files = await listFiles(dir);
  const out: Partial<Record<SplitName, string>> = {};
  for (const s of SPLIT_NAMES) {
    const suffix = `${s}images.txt`;
    const hits = files.filter((f) => basename(f).toLowerCase().endsWith(suffix));
    const hit = hits.find((f) => basename(f).startsWith("Flickr_8k.")) ?? hits[0];
    if (hit) out[s] = hit;
  }
  return out.train && out.dev && out.test ? (out as Record<SplitName, string>) : undefined;
}

/** Sizes of a ratio split of n images: train and dev rounded, test the rest. */
export function ratioSizes(n: number, train: number, dev: number): Record<SplitName, number> {
  const t = Math.min(n, Math.round(n * train));
  const d = Math.min(n - t, Math.round(n * dev));
  return { train: t, dev: d, test: n - t - d };
}

/** A seeded, deterministic split by image: ids ordered by sha256(split:seed:id), then cut. */
function ratioSplit(ids: readonly string[], train: number, dev: number, seed: number): Splits {
  const order = ids.map((id) => ({ id, h: sha256Hex(`split:${seed}:${id}`) })).sort((a, b) => (a.h < b.h ? -1 : a.h > b.h ? 1 : 0));
  const sizes = ratioSizes(ids.length, train, dev);
  const t = order.slice(0, sizes.train).map((x) => x.id);
  const d = order.slice(sizes.train, sizes.train + sizes.dev).map((x) => x.id);
  const s = order.slice(sizes.train + sizes.dev).map((x) => x.id);
  return { train: t.sort(), dev: d.sort(), test: s.sort() };
}

/**
 * Splits the processed images by image: the dataset's official lists (default), or a seeded
 * ratio split. Writes split/splits.json (the exact bytes to publish) and split/report.json.
 * Official lists are applied as they are (an image in two lists stays in both, for the
 * validate step to reject); listed images that are missing are reported, not fatal.
 */
export async function runSplit(ctx: StepContext): Promise<SplitStepResult> {
  const { params, work, report } = ctx;
  const index = await readJson<Record<string, ProcessedImage>>(work.path("process", "images.json"));
  const processReport = await readJson<ProcessReport>(work.path("process", "report.json"));
  const captions = await readJson<Record<string, string[]>>(work.path("process", "captions.json"));
  const present = new Set(Object.keys(index));
  let splits: Splits;
  let rep: SplitReport;

  if (params.splitMode === "official") {
    const dir = work.path("extract", "captions");
    const lists = await findSplitLists(dir);
    if (!lists) throw new PipelineInputError(`split_mode=official, but the captions archive has no train/dev/test image lists (*.trainImages.txt, ...); use split_mode=ratio`);
    const rejected = new Set(processReport.rejected.map((r) => r.image_id));
    const listedRejected = new Set<string>();
    const listedMissing = new Set<string>();
    const duplicates: string[] = [];
    const listed = { train: 0, dev: 0, test: 0 };
    let notSampled = 0;
    // Names in the archive but not selected by sampling count as "not sampled".
    const inArchive = new Set((await findImages(work.path("extract", "images"))).keys());
    splits = { train: [], dev: [], test: [] };
    for (const s of SPLIT_NAMES) {
      const ids = parseSplitList(await readFile(join(dir, lists[s]), "utf8"));
      listed[s] = ids.length;
      const seen = new Set<string>();
      for (const id of ids) {
        if (seen.has(id)) {
          duplicates.push(`${lists[s]}: ${id}`);
          continue;
        }
        seen.add(id);
        if (present.has(id)) splits[s].push(id);
        else if (rejected.has(id)) listedRejected.add(id);
        else if (!inArchive.has(id)) listedMissing.add(id);
        else notSampled++;
      }
      splits[s].sort();
    }
    const inSome = new Set([...splits.train, ...splits.dev, ...splits.test]);
    const unsplit = [...present].filter((id) => !inSome.has(id)).sort();
    rep = {
      mode: "official",
      counts: { train: splits.train.length, dev: splits.dev.length, test: splits.test.length, unsplit: unsplit.length },
      lists,
      listed,
      listed_rejected: [...listedRejected].sort(),
      listed_missing: [...listedMissing].sort(),
      listed_not_sampled: notSampled,
      duplicates,
      unsplit,
    };
    if (listedRejected.size > 0) report.log("warn", `${listedRejected.size} listed image(s) were rejected by the process step: ${[...listedRejected].slice(0, 10).join(", ")}`);
    if (listedMissing.size > 0) report.log("warn", `${listedMissing.size} listed image(s) are not in the images archive: ${[...listedMissing].slice(0, 10).join(", ")}`);
    if (duplicates.length > 0) report.log("warn", `${duplicates.length} duplicate name(s) in the split lists: ${duplicates.slice(0, 10).join(", ")}`);
    if (unsplit.length > 0) report.log("info", `${unsplit.length} image(s) are in no split list (kept, unsplit)`);
  } else {
    // Only captioned images are split; an image without captions is of no use to train or evaluate on.
    const ids = [...present].filter((id) => (captions[id]?.length ?? 0) > 0).sort();
    splits = ratioSplit(ids, params.trainRatio, params.devRatio, params.seed);
    const unsplit = [...present].filter((id) => !((captions[id]?.length ?? 0) > 0)).sort();
    rep = {
      mode: "ratio",
      counts: { train: splits.train.length, dev: splits.dev.length, test: splits.test.length, unsplit: unsplit.length },
      ratios: { train: params.trainRatio, dev: params.devRatio, test: params.testRatio },
      seed: params.seed,
      unsplit,
    };
  }

  const bytes = Buffer.from(canonicalJson(splits));
  await writeFileAtomic(work.path("split", "splits.json"), bytes);
  await writeJsonAtomic(work.path("split", "report.json"), rep);
  const placed = splits.train.length + splits.dev.length + splits.test.length;
  report.progress(placed, placed);
  return { counts: rep.counts, splitsFile: { sha256: sha256Hex(bytes), size: bytes.length } };
}
