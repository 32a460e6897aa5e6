/**
 * Benchmark: the whole pipeline on the real Flickr8K, served over local HTTP, into MinIO.
 *
 *   npm run bench:pipeline -- --source ../shared/datasets/flickr8k
 *   npm run bench:pipeline -- --source http://host/path/    (a folder URL with both zips)
 *
 * Options: --store minio|fs (default minio: a throwaway server from .tools/bin/minio),
 * --concurrency N, --upload-concurrency N, --work-dir DIR (default: a temp dir, removed),
 * --json FILE (write the figures), --no-rerun (skip the identical second run).
 *
 * Reports wall time per step, images/s, and the peak RSS of this process (the pipeline; the
 * MinIO server is a separate process). Target on a 2-core machine: < 2 min, < 500 MB.
 */
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { createObjectStore, type ObjectStore } from "@glimpse/objectstore";
import { startMinio, type MinioServer } from "@glimpse/objectstore/testing";
import type { StepName, StepStatus } from "../src/events.js";
import { runPipeline, type PipelineResult } from "../src/pipeline.js";
import { startStaticServer, type StaticServer } from "../src/testing/http-server.js";

const { values: v } = parseArgs({
  options: {
    source: { type: "string" },
    store: { type: "string", default: "minio" },
    concurrency: { type: "string" },
    "upload-concurrency": { type: "string" },
    "work-dir": { type: "string" },
    json: { type: "string" },
    "no-rerun": { type: "boolean", default: false },
  },
});
if (!v.source) {
  process.stderr.write("usage: npm run bench:pipeline -- --source <dir or url> [--store minio|fs] [--concurrency N] [--json FILE]\n");
  process.exit(2);
}

const IMAGES = "Flickr8k_Dataset.zip";
const CAPTIONS = "Flickr8k_text.zip";

let peakRss = 0;
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage.rss());
}, 50);

let server: StaticServer | undefined;
let minio: MinioServer | undefined;
let store: ObjectStore | undefined;
let tmp: string | undefined;
const mb = (b: number): string => `${(b / 1024 / 1024).toFixed(0)} MB`;

try {
  let imagesUrl: string;
  let captionsUrl: string;
  if (/^https?:\/\//.test(v.source)) {
    const base = v.source.endsWith("/") ? v.source : `${v.source}/`;
    imagesUrl = new URL(IMAGES, base).href;
    captionsUrl = new URL(CAPTIONS, base).href;
  } else {
    const dir = resolve(v.source);
    await stat(join(dir, IMAGES));
    server = await startStaticServer({ [`/${IMAGES}`]: join(dir, IMAGES), [`/${CAPTIONS}`]: join(dir, CAPTIONS) });
    imagesUrl = server.urlOf(`/${IMAGES}`);
    captionsUrl = server.urlOf(`/${CAPTIONS}`);
  }
  tmp = await mkdtemp(join(tmpdir(), "glimpse-bench-"));
  if (v.store === "minio") {
    minio = await startMinio();
    store = createObjectStore({ kind: "minio", endpoint: minio.endpoint, accessKey: minio.accessKey, secretKey: minio.secretKey, bucket: "glimpse-bench" });
  } else {
    store = createObjectStore({ kind: "fs", root: join(tmp, "store"), bucket: "glimpse-bench" });
  }
  await store.init();
  const workDir = v["work-dir"] ? resolve(v["work-dir"]) : join(tmp, "work");

  const run = async (label: string, wd: string): Promise<{ result: PipelineResult; seconds: number; steps: Map<StepName, StepStatus> }> => {
    const steps = new Map<StepName, StepStatus>();
    process.stderr.write(`${label}: ${imagesUrl} → ${store?.kind} ${store?.location}\n`);
    const t0 = performance.now();
    const result = await runPipeline(
      { imagesUrl, captionsUrl },
      {
        store: store as ObjectStore,
        workDir: wd,
        ...(v.concurrency ? { concurrency: Number(v.concurrency) } : {}),
        ...(v["upload-concurrency"] ? { uploadConcurrency: Number(v["upload-concurrency"]) } : {}),
        onEvent: (ev) => {
          if (ev.type === "step") {
            steps.set(ev.status.step, ev.status);
            if (ev.status.state !== "running" && ev.status.state !== "pending") process.stderr.write(`  ${ev.status.step.padEnd(8)} ${ev.status.state}: ${ev.status.message}\n`);
          } else if (ev.level === "warn" || ev.level === "error") process.stderr.write(`  ${ev.step ?? ""} ${ev.level}: ${ev.message.slice(0, 160)}\n`);
        },
      },
    );
    return { result, seconds: (performance.now() - t0) / 1000, steps };
  };

  const load0 = loadavg()[0] ?? 0;
  const first = await run("run 1 (cold)", workDir);
  const rows = [...first.steps.values()].map((s) => {
    const secs = s.startedAt && s.finishedAt ? (s.finishedAt.getTime() - s.startedAt.getTime()) / 1000 : 0;
    const rate = secs > 0 && s.total > 0 ? s.total / secs : 0;
    return { step: s.step, seconds: secs, done: s.done, total: s.total, unit: s.unit, rate };
  });
  const maxRss = process.resourceUsage().maxRSS * 1024;
  peakRss = Math.max(peakRss, maxRss);

  let second: { seconds: number; uploaded: number; state: string } | undefined;
  if (!v["no-rerun"]) {
    const r2 = await run("run 2 (identical, fresh work dir)", join(tmp, "work2"));
    second = { seconds: r2.seconds, uploaded: (r2.result.results.upload as { uploaded: number }).uploaded, state: r2.result.state };
  }

  const images = (first.result.results.process as { processed: number }).processed;
  const out = {
    machine: { cpus: availableParallelism(), loadavg1mAtStart: Number(load0.toFixed(2)), node: process.version },
    source: { imagesUrl, captionsUrl },
    store: `${store.kind}`,
    version: first.result.version,
    totalSeconds: Number(first.seconds.toFixed(2)),
    imagesPerSecond: Number((images / first.seconds).toFixed(1)),
    peakRssBytes: peakRss,
    steps: rows.map((r) => ({ ...r, seconds: Number(r.seconds.toFixed(2)), rate: Number(r.rate.toFixed(1)) })),
    rerun: second,
  };
  process.stdout.write(`\nFlickr8K pipeline benchmark (${out.machine.cpus} CPUs, load ${out.machine.loadavg1mAtStart} at start, ${out.store} store)\n`);
  process.stdout.write(`${"step".padEnd(10)}${"seconds".padStart(9)}${"work".padStart(22)}${"rate/s".padStart(12)}\n`);
  for (const r of out.steps) {
    const work = r.total > 0 ? `${r.unit === "bytes" ? mb(r.total) : `${r.total} ${r.unit}`}` : "";
    const rate = r.rate > 0 ? (r.unit === "bytes" ? `${mb(r.rate)}` : r.rate.toFixed(0)) : "";
    process.stdout.write(`${r.step.padEnd(10)}${r.seconds.toFixed(2).padStart(9)}${work.padStart(22)}${rate.padStart(12)}\n`);
  }
  process.stdout.write(`${"total".padEnd(10)}${out.totalSeconds.toFixed(2).padStart(9)}${`${images} images`.padStart(22)}${out.imagesPerSecond.toFixed(1).padStart(12)}\n`);
  process.stdout.write(`peak RSS ${mb(peakRss)}; version ${out.version}\n`);
  if (second) process.stdout.write(`identical rerun (fresh work dir): ${second.seconds.toFixed(2)} s, ${second.uploaded} objects uploaded, state ${second.state}\n`);
  const ok = out.totalSeconds < 120 && peakRss < 500 * 1024 * 1024;
  process.stdout.write(`target (< 120 s, < 500 MB): ${ok ? "met" : "NOT met"}\n`);
  if (v.json) await writeFile(v.json, `${JSON.stringify(out, null, 2)}\n`);
} finally {
  clearInterval(sampler);
  await store?.close();
  await server?.close();
  await minio?.stop();
  if (tmp && !v["work-dir"]) await rm(tmp, { recursive: true, force: true });
}
