import { stat } from "node:fs/promises";
import { downloadToFile } from "../download.js";
import { errorMessage } from "../util/errors.js";
import { readJsonIfExists, writeJsonAtomic } from "../util/json.js";
import type { StepContext } from "./context.js";

export type SourceName = "images" | "captions";

export interface DownloadedSource {
  name: SourceName;
  url: string;
  /** File name inside the download folder. */
  file: string;
  sha256: string;
  bytes: number;
}

export interface DownloadStepResult {
  sources: DownloadedSource[];
}

export function downloadInputs(ctx: Pick<StepContext, "params">): unknown {
  const p = ctx.params;
  return { imagesUrl: p.imagesUrl, captionsUrl: p.captionsUrl, imagesSha256: p.imagesSha256 ?? "", captionsSha256: p.captionsSha256 ?? "" };
}

/** Downloads both archives (resuming partial files; sources already complete are kept). */
export async function runDownload(ctx: StepContext): Promise<DownloadStepResult> {
  const { params, work, report } = ctx;
  const wanted: { name: SourceName; url: string; sha256: string | undefined }[] = [
    { name: "images", url: params.imagesUrl, sha256: params.imagesSha256 },
    { name: "captions", url: params.captionsUrl, sha256: params.captionsSha256 },
  ];
  const totals = new Map<SourceName, number>();
  const dones = new Map<SourceName, number>();
  const progress = (): void => {
    let d = 0;
    let t = 0;
    for (const w of wanted) {
      d += dones.get(w.name) ?? 0;
      t += totals.get(w.name) ?? 0;
    }
    report.progress(d, t);
  };

  const sources: DownloadedSource[] = [];
  for (const w of wanted) {
    const file = `${w.name}.zip`;
    const dest = work.path("download", file);
    const markerPath = work.path("download", `${w.name}.json`);
    const prior = await readJsonIfExists<DownloadedSource>(markerPath);
    const size = await stat(dest).then((s) => s.size, () => -1);
    if (prior && prior.url === w.url && (!w.sha256 || prior.sha256 === w.sha256) && size === prior.bytes) {
      report.log("info", `${w.name}: ${w.url} already downloaded (${prior.bytes} bytes)`);
      totals.set(w.name, prior.bytes);
      dones.set(w.name, prior.bytes);
      progress();
      sources.push(prior);
      continue;
    }
    report.log("info", `${w.name}: downloading ${w.url}`);
    const dl = ctx.options.download ?? {};
    const r = await downloadToFile(w.url, dest, {
      ...(w.sha256 ? { expectedSha256: w.sha256 } : {}),
      ...(dl.retry ? { retry: dl.retry } : {}),
      ...(dl.idleTimeoutMs !== undefined ? { idleTimeoutMs: dl.idleTimeoutMs } : {}),
      ...(dl.allow ? { allow: dl.allow } : {}),
      ...(ctx.signal ? { signal: ctx.signal } : {}),
      onProgress: (done, total) => {
        dones.set(w.name, done);
        if (total > 0) totals.set(w.name, total);
        progress();
      },
      onRetry: (err, attempt, delay) => report.log("warn", `${w.name}: attempt ${attempt} failed (${errorMessage(err)}); retrying in ${delay} ms`),
      onLog: (m) => report.log("info", `${w.name}: ${m}`),
    });
    const src: DownloadedSource = { name: w.name, url: w.url, file, sha256: r.sha256, bytes: r.bytes };
    await writeJsonAtomic(markerPath, src);
    totals.set(w.name, r.bytes);
    dones.set(w.name, r.bytes);
    progress();
    report.log("info", `${w.name}: ${r.bytes} bytes, sha256 ${r.sha256}${w.sha256 ? " (verified)" : ""}${r.attempts > 1 ? `, ${r.attempts} attempts` : ""}${r.resumed ? ", resumed" : ""}`);
    sources.push(src);
  }
  return { sources };
}
