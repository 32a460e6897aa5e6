/**
 * `glimpse collections search` end to end: a real Data service, a real Ranking service (seeded
 * from the demo pack, its model embedding the collection) and a real gateway, in this process,
 * sharing one filesystem store. The CLI creates a folder collection, waits until search serves
 * it, then searches it by text, by photo and "more like this".
 */
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { startTestMesh, type TestMesh } from "@glimpse/gateway/testing";
import { TEST_WRITE_KEY, testConfig } from "@glimpse/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "./collections.js";
import type { Io } from "./command.js";

const DEMO = resolve(import.meta.dirname, "../../../demo/images");
const demoPhotos = readdirSync(DEMO).filter((f) => f.endsWith(".jpg")).sort();

describe("glimpse collections search, through a real gateway, Data and Ranking", () => {
  let root: string;
  let mesh: TestMesh;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), "glimpse-cli-search-"));
    mkdirSync(join(root, "allowed"));
    // one store for all (the data dir's filesystem store); Data asks Ranking what search serves
    mesh = await startTestMesh(testConfig({ GLIMPSE_SOURCE_ALLOWLIST: pathToFileURL(join(root, "allowed")).href, GLIMPSE_COLLECTION_RELIST_MS: "60000" }), { rankingPollMs: 200 });
  });

  afterAll(async () => {
    await mesh?.close();
  });

  async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    let stdout = "";
    let stderr = "";
    const io: Io = {
      stdout: { write: (s: string) => (stdout += s) },
      stderr: { write: (s: string) => (stderr += s) },
      env: { GLIMPSE_URL: mesh.gateway.url, GLIMPSE_API_KEY: TEST_WRITE_KEY },
      cwd: root,
    };
    return { code: await main(args, io), stdout, stderr };
  }

  it("creates a collection, waits until search serves it, and searches it by text, by photo and like a photo", async () => {
    const dir = join(root, "allowed", "trip");
    mkdirSync(dir);
    const picked = demoPhotos.slice(0, 12);
    for (const f of picked) copyFileSync(join(DEMO, f), join(dir, f));
    copyFileSync(join(DEMO, picked[0]!), join(dir, "copy.jpg"));
    const created = await cli(["create", "trip", "--folder", dir]);
    expect(created.stderr).not.toMatch(/error/);
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(/photos\s+12 indexed of 13 files found/);

    // Ranking embeds the new version after the sync: `get` says when search serves it (bounded by count)
    let version = "";
    for (let i = 0; i < 300; i++) {
      const got = JSON.parse((await cli(["get", "trip", "--json"])).stdout) as { collection: { version: string; serving_version?: string; model_version?: string } };
      version = got.collection.version;
      if (got.collection.serving_version === version) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const get = await cli(["get", "trip"]);
    expect(get.stdout).toMatch(new RegExp(`search\\s+serves version ${version} \\(model m-[0-9a-f]{16}\\)`));

    const text = await cli(["search", "trip", "a dog running", "--top-k", "5"]);
    expect(text.stderr).toBe("");
    expect(text.code).toBe(0);
    const lines = text.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^RANK\s+SCORE\s+PHOTO ID\s+PATH\s+TAKEN\s+CAMERA$/);
    expect(lines).toHaveLength(1 + 5 + 1);
    for (const [i, l] of lines.slice(1, 6).entries()) expect(l).toMatch(new RegExp(`^\\s*${i + 1}\\s+-?\\d\\.\\d{3}\\s+[0-9a-f]{16}\\s+\\S+\\.jpg\\s+\\d{4}-\\d{2}-\\d{2}`));
    expect(lines.at(-1)).toMatch(new RegExp(`^answered by model m-[0-9a-f]{16} from collection version ${version}$`));

    // by one of its own photos: that photo first
    const byPhoto = JSON.parse((await cli(["search", "trip", "--photo", join(dir, picked[3]!), "--json"])).stdout) as { results: { photo_id: string; path: string }[] };
    expect(byPhoto.results[0]!.path).toBe(picked[3]);

    // more like it: never itself
    const like = await cli(["search", "trip", "--like", byPhoto.results[0]!.photo_id, "--top-k", "3", "--json"]);
    expect(like.code).toBe(0);
    const liked = JSON.parse(like.stdout) as { results: { photo_id: string }[]; collection_version: string };
    expect(liked.results).toHaveLength(3);
    expect(liked.results.map((r) => r.photo_id)).not.toContain(byPhoto.results[0]!.photo_id);
    expect(liked.collection_version).toBe(version);

    const dups = await cli(["duplicates", "trip"]);
    expect(dups.code).toBe(0);
    expect(dups.stdout).toMatch(new RegExp(`^exact\\s+[0-9a-f]{16}\\s+(copy\\.jpg, ${picked[0]}|${picked[0]}, copy\\.jpg)$`, "m"));
    expect(dups.stdout.trimEnd().split("\n").at(-1)).toMatch(new RegExp(`^collection version ${version} · model m-[0-9a-f]{16} · near at cosine ≥ 0\\.\\d{3}$`));

    // a filter no photo passes
    const none = await cli(["search", "trip", "a dog", "--path-prefix", "nowhere/"]);
    expect(none.code).toBe(0);
    expect(none.stdout).toContain("no photos matched");
  });
});
