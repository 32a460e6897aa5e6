/**
 * A pipeline run in a child process whose uploads are slowed down, so a test can SIGKILL it
 * in the middle of the upload step. Prints `put <n> <key>` for every object stored.
 *
 *   node --conditions=source --import tsx upload-child.ts '<json: {params, workDir, minio: {endpoint, accessKey, secretKey, bucket}, putDelayMs}>'
 */
import { createObjectStore } from "@glimpse/objectstore";
import { runPipeline } from "../pipeline.js";
import type { PipelineParamsInput } from "../params.js";
import { faultyStore } from "./stores.js";

const cfg = JSON.parse(process.argv[2] ?? "{}") as {
  params: PipelineParamsInput;
  workDir: string;
  minio: { endpoint: string; accessKey: string; secretKey: string; bucket: string };
  putDelayMs: number;
};
const store = faultyStore(createObjectStore({ kind: "minio", ...cfg.minio }), {
  putDelayMs: cfg.putDelayMs,
  onPut: (key, n) => process.stdout.write(`put ${n} ${key}\n`),
});
await runPipeline(cfg.params, {
  store,
  workDir: cfg.workDir,
  onEvent: (ev) => {
    if (ev.type === "step" && ev.status.state !== "running") process.stdout.write(`step ${ev.status.step} ${ev.status.state}\n`);
  },
});
process.stdout.write("done\n");
