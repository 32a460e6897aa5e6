/**
 * `glimpse search | caption | train | runs | models | datasets` against a whole mesh in this
 * process (real sockets, the gateway, the demo pack) with the REAL trainer (model/, through uv) on
 * a tiny published dataset and tiny towers; the commands run with captured stdout/stderr and
 * their --json output is parsed.
 */
import { readdirSync, rmSync } from "node:fs";
import { resolve } from "node:path";
import { startTestMesh, type TestMesh } from "@glimpse/gateway/testing";
import { TEST_READ_KEY, TEST_WRITE_KEY, testConfig } from "@glimpse/runtime/testing";
import { publishTinyDataset } from "@glimpse/training/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { COMMANDS } from "./commands.js";

const DEMO = resolve(import.meta.dirname, "../../../demo/images");
const demoPhoto = readdirSync(DEMO).filter((f) => f.endsWith(".jpg")).sort()[0]!;
const TINY_MODEL = "--backbone tiny --backbone-weights none --image-size 32 --text-encoder bilstm --word-dim 8 --text-hidden 8 --image-hidden 16 --vocab-min-count 1 --max-len 8 --num-threads 1 --warmup-steps 1 --tta-zoom 0 --qb-beta 0";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

describe("glimpse search, caption, train, runs, models, datasets (a whole mesh, the real trainer)", () => {
  const cfg = testConfig({
    GLIMPSE_TRAINER_COMMAND: `uv run --frozen --project model python -m glimpse_model.train ${TINY_MODEL}`,
    GLIMPSE_TRAINER_EXPORT_COMMAND: "uv run --frozen --project model python -m glimpse_model.export --num-threads 1",
  });
  let mesh: TestMesh;
  let tinyVersion: string;

  const glimpse = async (argv: string[], key: string | undefined = TEST_WRITE_KEY): Promise<Run> => {
    let stdout = "";
    let stderr = "";
    const io = {
      stdout: { write: (s: string) => (stdout += s) },
      stderr: { write: (s: string) => (stderr += s) },
      env: { GLIMPSE_URL: mesh.base, ...(key ? { GLIMPSE_API_KEY: key } : {}), GLIMPSE_DATA_DIR: cfg.dataDir },
      cwd: resolve(import.meta.dirname, "../../.."),
    };
    const [name, ...rest] = argv;
    const code = await COMMANDS[name!]!(rest, io);
    return { code, stdout, stderr };
  };
  const json = async (argv: string[]) => {
    const r = await glimpse([...argv, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as Record<string, unknown>;
  };

  beforeAll(async () => {
    mesh = await startTestMesh(cfg);
    tinyVersion = await publishTinyDataset(mesh.ranking.store, { train: 16, dev: 8, test: 4, size: 32 });
  }, 120_000);

  afterAll(async () => {
    await mesh?.close();
    rmSync(cfg.dataDir, { recursive: true, force: true });
  });

  it("search prints ranked images; --json is the response", async () => {
    const table = await glimpse(["search", "a", "dog", "in", "the", "snow", "--top-k", "3"]);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout.split("\n")[0]).toMatch(/^rank\s+image\s+score\s+cosine$/);
    const res = (await json(["search", "a dog in the snow", "--top-k", "3"])) as { results: { rank: number; image_id: string }[] };
    expect(res.results.map((h) => h.rank)).toEqual([1, 2, 3]);
    expect(table.stdout).toContain(res.results[0]!.image_id);
  });

  it("caption uploads a photo file, or names a gallery image", async () => {
    const byFile = (await json(["caption", `demo/images/${demoPhoto}`, "--top-k", "2"])) as { results: { text: string }[] };
    expect(byFile.results).toHaveLength(2);
    const byId = (await json(["caption", demoPhoto.replace(/\.jpg$/, "")])) as { results: { text: string }[] };
    expect(byId.results[0]!.text).toBeTruthy();
  });

  it("bad usage exits 2 with the usage line; a refused call exits 1 with its field violations", async () => {
    const none = await glimpse(["search"]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("usage: glimpse search");
    expect((await glimpse(["train", "--epochs", "two"])).code).toBe(2);
    const long = await glimpse(["search", "x".repeat(600)]);
    expect(long.code).toBe(1);
    expect(long.stderr).toMatch(/invalid_argument[\s\S]*query: must be at most 512 characters/);
  });

  it("train --watch follows a run to its end, with progress on stderr; runs lists it", { timeout: 300_000 }, async () => {
    const r = await glimpse(["train", "--epochs", "2", "--batch-size", "8", "--watch", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const run = JSON.parse(r.stdout) as { name: string; run_id: string; state: string; model_version: string; dataset_version: string };
    expect(run.name).toBe(`trainingRuns/${run.run_id}`);
    expect(run.state).toBe("TRAINING_STATE_SUCCEEDED");
    expect(run.dataset_version).toBe(tinyVersion);
    expect(run.model_version).toMatch(/^m-[0-9a-f]{16}$/);
    expect(r.stderr).toContain("epoch 2/2");
    const runs = (await json(["runs"])) as { runs: { run_id: string }[] };
    expect(runs.runs.map((x) => x.run_id)).toContain(run.run_id);
    const datasets = (await json(["datasets"])) as { versions: { version: string; latest: boolean }[] };
    expect(datasets.versions.find((d) => d.latest)?.version).toBe(tinyVersion);

    // models: promote the new version, then roll back to the one before.
    const production = async () => ((await json(["models"])) as { models: { version: string; production?: boolean }[] }).models.find((m) => m.production)?.version;
    const before = await production();
    expect(before).toBeTruthy();
    expect(before).not.toBe(run.model_version);
    const refused = await glimpse(["models", "promote", run.model_version], TEST_READ_KEY);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("permission_denied");
    expect((await glimpse(["models", "promote", run.model_version])).code).toBe(0);
    expect(await production()).toBe(run.model_version);
    const back = await glimpse(["models", "rollback"]);
    expect(back.code, back.stderr).toBe(0);
    expect(back.stdout).toContain(`rolled back from ${run.model_version} to ${before}`);
    expect(await production()).toBe(before);
    const missing = await glimpse(["models", "promote", "m-0000000000000000"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("not_found");
  });
});
