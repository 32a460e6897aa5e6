import { extractZip } from "../extract.js";
import type { StepMarker } from "../workdir.js";
import type { StepContext } from "./context.js";
import type { DownloadStepResult } from "./download.js";

export interface ExtractStepResult {
  archives: { name: string; dir: string; files: number; bytes: number }[];
}

/** Extracts each archive into extract/<source>/, keeping its own layout. */
export async function runExtract(ctx: StepContext, download: StepMarker<DownloadStepResult>, fresh = false): Promise<ExtractStepResult> {
  const { work, report } = ctx;
  const archives: ExtractStepResult["archives"] = [];
  const n = download.result.sources.length;
  let before = 0; // entries of the archives already extracted, for one running count
  for (const [i, src] of download.result.sources.entries()) {
    const zipPath = work.path("download", src.file);
    const dir = work.path("extract", src.name);
    let entries = 0;
    const r = await extractZip(zipPath, dir, {
      ...(ctx.signal ? { signal: ctx.signal } : {}),
      fresh,
      onProgress: (done, total) => {
        entries = total;
        report.progress(before + done, before + total, `${src.name} archive (${i + 1}/${n})`);
      },
    });
    before += entries;
    report.log("info", `${src.name}: ${r.files} files, ${r.bytes} bytes${r.reused ? ` (${r.reused} already extracted)` : ""}`);
    archives.push({ name: src.name, dir: src.name, files: r.files, bytes: r.bytes });
  }
  return { archives };
}
