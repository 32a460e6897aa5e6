/**
 * The collection sync as the Argo workflow runs it, step by step through the CLI with a shared
 * object store: the Data service's plan split over three shards, one shard's pod killed mid-way
 * and retried (it resumes from its saved entries), then the publish step. The version it publishes
 * is the local runner's, byte for byte; a publish before every shard finished fails and publishes
 * nothing; a retried publish is a no-op.
 */
import { cp, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { COLLECTION_SCHEMA, readCollectionPointer, readCollectionVersion, readSyncShard, shardSlice, syncPlanKey, type CollectionRecord } from "@glimpse/layout";
import { FsObjectStore } from "@glimpse/objectstore";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../cli.js";
import { SourceAllowList } from "../sources.js";
import { ingestShard } from "./ingest.js";
import { planSync } from "./plan.js";
import { syncCollection } from "./sync.js";

const DEMO = resolve(import.meta.dirname, "../../../../demo/images");
const PREFIX = "photos/";

async function seeded(dir: string, names: string[]): Promise<FsObjectStore> {
  const store = new FsObjectStore(dir, "glimpse", { fsync: false });
  await store.init();
  for (const n of names) await store.put(`${PREFIX}${n}`, await readFile(join(DEMO, n)), { contentType: "image/jpeg" });
  await store.put(`${PREFIX}broken.jpg`, Buffer.from("not a photo at all"), { contentType: "image/jpeg" });
  return store;
}

describe("the collection sync workflow's steps (collection-ingest × shards → collection-publish)", () => {
  let dir: string;
  let names: string[];
  const record: CollectionRecord = { schema: COLLECTION_SCHEMA, id: "wf", display_name: "wf", source: { kind: "bucket", prefix: PREFIX }, watch: false, create_time: "2026-12-07T00:00:00.000Z" };
  const allow = SourceAllowList.parse([]);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "glimpse-collection-wf-"));
    names = (await readdir(DEMO)).sort().slice(0, 30);
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("publishes the local runner's version, resuming a killed shard where it stopped", async () => {
    // the same objects, modification times included (a photo without EXIF is taken when it was written)
    await seeded(join(dir, "seed"), names);
    const open = async (root: string) => {
      await cp(join(dir, "seed"), root, { recursive: true, preserveTimestamps: true });
      const store = new FsObjectStore(root, "glimpse", { fsync: false });
      await store.init();
      return store;
    };
    const local = await syncCollection({ store: await open(join(dir, "local")), allow, record });

    const root = join(dir, "wf");
    const store = await open(root);
    const cli = (...args: string[]) => main([...args, "--store=fs", `--store-root=${root}`, "--bucket=glimpse", `--collection=${record.id}`]);
    const { plan } = await planSync({ store, allow, record });
    plan.shards = 3;
    await store.put(syncPlanKey(record.id, plan.sync), JSON.stringify(plan));
    expect(plan.todo).toHaveLength(31);

    // A publish before the shards finished fails and publishes nothing.
    expect(await cli("collection-publish", `--sync=${plan.sync}`)).toBe(1);
    expect(await readCollectionPointer(store, record.id)).toBeUndefined();

    // Shard 0's first pod is killed after 6 files (saved every 2); its retry resumes.
    const slice = shardSlice(31, 3, 0);
    const kill = new AbortController();
    let seen = 0;
    await expect(
      ingestShard({ store, allow, collection: record.id, sync: plan.sync, shard: 0, saveEvery: 2, concurrency: 1, signal: kill.signal, onProgress: (done) => (done >= 6 ? kill.abort(new Error("pod deleted")) : (seen = done)) }),
    ).rejects.toThrow("pod deleted");
    const partial = await readSyncShard(store, record.id, plan.sync, 0);
    expect(partial).toMatchObject({ complete: false });
    expect(partial!.entries.length).toBeGreaterThanOrEqual(seen - 1);
    expect(await cli("collection-ingest", `--sync=${plan.sync}`, "--shard=0")).toBe(0);
    const shard0 = (await readSyncShard(store, record.id, plan.sync, 0))!;
    expect(shard0.complete).toBe(true);
    expect(shard0.entries.map((e) => e.path).sort()).toEqual(plan.todo.slice(slice.first, slice.first + slice.count).map((f) => f.path));
    // the retry read only what the killed pod had not saved
    expect(shard0.read).toBe(slice.count - partial!.entries.length);

    for (const shard of [1, 2]) expect(await cli("collection-ingest", `--sync=${plan.sync}`, `--shard=${shard}`)).toBe(0);
    expect(await cli("collection-ingest", `--sync=${plan.sync}`, "--shard=3")).toBe(1); // no such shard
    expect(await cli("collection-publish", `--sync=${plan.sync}`)).toBe(0);
    const published = (await readCollectionVersion(store, record.id))!;
    expect(published.version).toBe(local.version);
    expect(published.manifest.counts).toMatchObject({ found: 31, indexed: 30, skipped: 1 });
    // a retried publish step changes nothing
    expect(await cli("collection-publish", `--sync=${plan.sync}`)).toBe(0);
    expect((await readCollectionPointer(store, record.id))!.version).toBe(local.version);

    // the next plan starts from this catalog: nothing to read
    const again = await planSync({ store, allow, record });
    expect(again.plan).toMatchObject({ todo: [], removed: 0, previous_version: local.version });
    expect(again.plan.keep).toHaveLength(31);
  }, 120_000);

  it("refuses bad usage with exit 2", async () => {
    expect(await main(["collection-ingest", "--collection=wf", "--sync=abc"])).toBe(2); // no --shard
    expect(await main(["collection-publish", "--collection=Not An Id", "--sync=abc"])).toBe(2);
  });
});
