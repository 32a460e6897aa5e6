import { DEFAULT_DATASET } from "@glimpse/layout/datasets";
import { LIMITS, PATTERNS } from "@glimpse/api";
import { PipelineInputError } from "./util/errors.js";

export type DatasetSize = "full" | "sample";
export type SplitMode = "official" | "ratio";

/**
 * The parameters of a pipeline run, after defaults. Field names follow the generated
 * `glimpse.data.v1.PipelineParams` (protobuf-es camelCase), enums as lower-case words.
 */
export interface PipelineParams {
  /** ^[a-z0-9][a-z0-9-]{0,62}$ */
  dataset: string;
  /** http(s):// or file:// URL of the images archive (a zip). */
  imagesUrl: string;
  /** http(s):// or file:// URL of the captions/splits archive (a zip). */
  captionsUrl: string;
  /** Expected sha256 (64 hex) of each archive; verified when set. */
  imagesSha256?: string;
  captionsSha256?: string;
  datasetSize: DatasetSize;
  /** In (0, 1]; used with datasetSize "sample". */
  sampleRatio: number;
  splitMode: SplitMode;
  trainRatio: number;
  devRatio: number;
  testRatio: number;
  /** Seed for sampling and ratio splits. */
  seed: number;
}

/** What a caller may give; empty strings and zeros mean "the default", as in the proto. */
export type PipelineParamsInput = {
  [K in keyof PipelineParams]?: PipelineParams[K] | undefined;
} & { datasetSize?: DatasetSize | "" | undefined; splitMode?: SplitMode | "" | undefined };

/** The public Flickr8K archives (the mirror most Flickr8K tutorials use). */
export const DEFAULT_IMAGES_URL = "https://github.com/jbrownlee/Datasets/releases/download/Flickr8k/Flickr8k_Dataset.zip";
export const DEFAULT_CAPTIONS_URL = "https://github.com/jbrownlee/Datasets/releases/download/Flickr8k/Flickr8k_text.zip";

export const DEFAULTS = {
  dataset: DEFAULT_DATASET,
  datasetSize: "full",
  sampleRatio: 0.1,
  splitMode: "official",
  trainRatio: 0.6,
  devRatio: 0.2,
  testRatio: 0.2,
  seed: 42,
} as const;

// The proto's patterns (buf.validate rules): the CLI and Argo steps check what the RPC checks.
const DATASET_RE = PATTERNS.dataset;
const SHA_RE = PATTERNS.sha256;

/** Applies defaults and checks every field; throws PipelineInputError naming each bad one. */
export function resolveParams(input: PipelineParamsInput = {}): PipelineParams {
  const problems: string[] = [];
  const dataset = input.dataset || DEFAULTS.dataset;
  if (!DATASET_RE.test(dataset)) problems.push(`dataset ${JSON.stringify(dataset)} must match ${DATASET_RE.source}`);

  const url = (name: string, v: string | undefined, def: string): string => {
    const u = v || def;
    if (u.length > LIMITS.urlMaxChars) problems.push(`${name} is longer than ${LIMITS.urlMaxChars} characters`);
    let parsed: URL | undefined;
    try {
      parsed = new URL(u);
    } catch {
      problems.push(`${name} ${JSON.stringify(u)} is not a URL`);
    }
    if (parsed && !["http:", "https:", "file:"].includes(parsed.protocol)) problems.push(`${name} must be http(s):// or file:// (got ${parsed.protocol})`);
    return u;
  };
  const imagesUrl = url("images_url", input.imagesUrl, DEFAULT_IMAGES_URL);
  const captionsUrl = url("captions_url", input.captionsUrl, DEFAULT_CAPTIONS_URL);

  const sha = (name: string, v: string | undefined): string | undefined => {
    if (!v) return undefined;
    const s = v.toLowerCase();
    if (!SHA_RE.test(s)) problems.push(`${name} must be 64 hex digits`);
    return s;
  };
  const imagesSha256 = sha("images_sha256", input.imagesSha256);
  const captionsSha256 = sha("captions_sha256", input.captionsSha256);

  const datasetSize = input.datasetSize || DEFAULTS.datasetSize;
  if (datasetSize !== "full" && datasetSize !== "sample") problems.push(`dataset_size must be full or sample`);
  const sampleRatio = input.sampleRatio || DEFAULTS.sampleRatio;
  if (!(sampleRatio > 0 && sampleRatio <= 1)) problems.push(`sample_ratio must be in (0, 1] (got ${sampleRatio})`);

  const splitMode = input.splitMode || DEFAULTS.splitMode;
  if (splitMode !== "official" && splitMode !== "ratio") problems.push(`split_mode must be official or ratio`);
  let trainRatio = input.trainRatio ?? 0;
  let devRatio = input.devRatio ?? 0;
  let testRatio = input.testRatio ?? 0;
  if (trainRatio === 0 && devRatio === 0 && testRatio === 0) {
    ({ trainRatio, devRatio, testRatio } = DEFAULTS);
  }
  for (const [n, r] of [["train_ratio", trainRatio], ["dev_ratio", devRatio], ["test_ratio", testRatio]] as const) {
    if (!(r >= 0 && r <= 1)) problems.push(`${n} must be in [0, 1] (got ${r})`);
  }
  if (Math.abs(trainRatio + devRatio + testRatio - 1) > 1e-9) problems.push(`train_ratio + dev_ratio + test_ratio must be 1 (got ${trainRatio + devRatio + testRatio})`);

  const seed = input.seed || DEFAULTS.seed;
  if (!Number.isSafeInteger(seed)) problems.push(`seed must be an integer (got ${seed})`);

  if (problems.length > 0) throw new PipelineInputError(`invalid pipeline parameters: ${problems.join("; ")}`);
  const out: PipelineParams = { dataset, imagesUrl, captionsUrl, datasetSize, sampleRatio, splitMode, trainRatio, devRatio, testRatio, seed };
  if (imagesSha256) out.imagesSha256 = imagesSha256;
  if (captionsSha256) out.captionsSha256 = captionsSha256;
  return out;
}

/**
 * The parameters as the manifest records them: only those that shape the published data
 * (the sample ratio only when sampling, the ratios only for ratio splits, the seed only when
 * something is seeded), snake_case like the proto. Sources are recorded separately.
 */
export function manifestParams(p: PipelineParams): Record<string, string | number> {
  const out: Record<string, string | number> = { dataset_size: p.datasetSize, split_mode: p.splitMode };
  if (p.datasetSize === "sample") out["sample_ratio"] = p.sampleRatio;
  if (p.splitMode === "ratio") {
    out["train_ratio"] = p.trainRatio;
    out["dev_ratio"] = p.devRatio;
    out["test_ratio"] = p.testRatio;
  }
  if (p.datasetSize === "sample" || p.splitMode === "ratio") out["seed"] = p.seed;
  return out;
}
