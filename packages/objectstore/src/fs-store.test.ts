import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collect, listAll, objectStoreContract } from "./contract.js";
import { FsObjectStore } from "./fs-store.js";
import { createObjectStore, getJson, InvalidKeyError } from "./index.js";

const roots: string[] = [];
async function newRoot(): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), "glimpse-fs-store-"));
  roots.push(root);
  return root;
}
afterAll(async () => {
  await Promise.all(roots.map((r) => rm(r, { recursive: true, force: true })));
});

/** Temp files and locks are gone once every put has settled. */
async function assertNoLeftovers(dir: string): Promise<void> {
  expect(await readdir(join(dir, ".objectstore", "tmp"))).toEqual([]);
  expect(await readdir(join(dir, ".objectstore", "locks"))).toEqual([]);
}

objectStoreContract("fs", async () => createObjectStore({ kind: "fs", root: await newRoot(), bucket: "contract" }), {
  assertNoLeftovers: (store) => assertNoLeftovers((store as FsObjectStore).dir),
});

describe("FsObjectStore specifics", () => {
  let root: string;
  let store: FsObjectStore;
  beforeAll(async () => {
    root = await newRoot();
    store = new FsObjectStore(root, "bkt");
    await store.init();
  });

  it("keeps objects at <root>/<bucket>/<key> and hides its own folder", async () => {
    await store.put("layout/a/b.txt", "hello");
    expect(await readFile(join(root, "bkt", "layout", "a", "b.txt"), "utf8")).toBe("hello");
    expect(store.location).toBe(join(root, "bkt"));
    const top = await store.listPage("", { delimiter: "/" });
    expect(top.prefixes).not.toContain(".objectstore/");
    expect((await listAll(store, "")).some((o) => o.key.startsWith(".objectstore"))).toBe(false);
    await assertNoLeftovers(store.dir);
  });

  it("derives etags from stat (stable, no re-hash) that change on every rewrite", async () => {
    const key = "etag/obj";
    const etags = new Set<string>();
    // Same size, same content, back to back: inode reuse and coarse mtimes must not repeat an etag.
    for (let i = 0; i < 50; i++) etags.add((await store.put(key, "same")).etag);
    expect(etags.size).toBe(50);
    const a = await store.stat(key);
    const b = await store.stat(key);
    expect(a?.etag).toBe(b?.etag);
  });

  it("reports a key/folder clash as InvalidKeyError and cleans up", async () => {
    await store.put("clash/file", "x");
    await expect(store.put("clash/file/below", "y")).rejects.toBeInstanceOf(InvalidKeyError);
    await expect(store.put("clash", "y")).rejects.toBeInstanceOf(InvalidKeyError);
    expect(await store.stat("clash")).toBeUndefined();
    await expect(store.get("clash")).rejects.toMatchObject({ name: "ObjectNotFoundError" });
    await assertNoLeftovers(store.dir);
  });

  it("prunes empty folders on delete and never lists empty folders as prefixes", async () => {
    await store.put("prune/x/y/z", "1");
    await store.delete("prune/x/y/z");
    expect(existsSync(join(store.dir, "prune"))).toBe(false);
    await mkdir(join(store.dir, "prune2", "empty", "deeper"), { recursive: true });
    await store.put("prune2/obj", "1");
    expect(await store.listPage("prune2/", { delimiter: "/" })).toEqual({
      objects: [expect.objectContaining({ key: "prune2/obj" })],
      prefixes: [],
    });
  });

  it("init() sweeps temp files left by crashed writers", async () => {
    const old = join(store.dir, ".objectstore", "tmp", "crashed");
    const fresh = join(store.dir, ".objectstore", "tmp", "in-flight");
    await writeFile(old, "partial");
    await writeFile(fresh, "partial");
    const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
    await utimes(old, twoHoursAgo, twoHoursAgo);
    await store.init();
    expect(existsSync(old)).toBe(false);
    expect(existsSync(fresh)).toBe(true);
    await rm(fresh);
  });

  describe("stale locks", () => {
    const lockOf = (key: string) =>
      join(store.dir, ".objectstore", "locks", createHash("sha256").update(key).digest("hex").slice(0, 40));

    it("breaks a lock whose owner process is dead", async () => {
      const deadPid = await new Promise<number>((resolve) => {
        const child = spawn(process.execPath, ["-e", ""]);
        child.once("exit", () => resolve(child.pid!));
      });
      await writeFile(lockOf("stale/dead"), `${deadPid} ${(await import("node:os")).hostname()} deadbeef`);
      // dated in the future, so it never becomes stale by age: only the dead owner can free it
      // (a store that missed that would wait out its lock timeout and throw)
      const future = new Date(Date.now() + 3600_000);
      await utimes(lockOf("stale/dead"), future, future);
      await store.put("stale/dead", "ok", { ifNoneMatch: "*" });
      expect((await store.getBuffer("stale/dead")).toString()).toBe("ok");
      expect(existsSync(lockOf("stale/dead"))).toBe(false);
    });

    it("waits for a live foreign lock and breaks it once old", async () => {
      const lock = lockOf("stale/foreign");
      await writeFile(lock, "1 some-other-host cafe");
      const put = store.put("stale/foreign", "ok");
      let done = false;
      void put.then(() => (done = true));
      await new Promise((r) => setTimeout(r, 300));
      expect(done).toBe(false); // fresh lock from another host: respected
      const old = new Date(Date.now() - 120_000);
      await utimes(lock, old, old); // now older than LOCK_STALE_MS
      await put;
      expect((await store.getBuffer("stale/foreign")).toString()).toBe("ok");
      expect(existsSync(lock)).toBe(false);
    });
  });

  describe("across processes", () => {
    const worker = fileURLToPath(new URL("./testing/fs-race-worker.ts", import.meta.url));
    const tsx = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href;

    /** Starts all workers, waits until they are up, then releases them at once. */
    async function race(argsList: string[][]): Promise<string[][]> {
      const children = argsList.map((args) => {
        const child = spawn(process.execPath, ["--conditions=source", "--import", tsx, worker, root, "bkt", ...args], { stdio: ["pipe", "pipe", "pipe"] });
        let out = "";
        let err = "";
        child.stdout.on("data", (d: Buffer) => (out += d));
        child.stderr.on("data", (d: Buffer) => (err += d));
        const done = new Promise<string[]>((resolve, reject) =>
          child.once("exit", (code) => (code === 0 ? resolve(JSON.parse(out) as string[]) : reject(new Error(`worker exited ${code}: ${err}`)))),
        );
        return { child, done };
      });
      await new Promise((r) => setTimeout(r, 1500)); // let every worker load and init
      for (const { child } of children) child.stdin.end("go\n");
      return Promise.all(children.map((c) => c.done));
    }

    it("lets exactly one process win each create-only put", async () => {
      const keys = Array.from({ length: 10 }, (_, i) => `xproc/create/k${i}`);
      const won = await race(Array.from({ length: 4 }, () => ["create", ...keys]));
      expect(won.flat().sort()).toEqual([...keys].sort());
      for (const key of keys) expect((await store.getBuffer(key)).toString()).toMatch(/^pid \d+$/);
    }, 60_000);

    it("serialises compare-and-swap increments from 4 processes", async () => {
      const key = "xproc/counter.json";
      await race(Array.from({ length: 4 }, () => ["increment", key, "10"]));
      expect(await getJson(store, key)).toEqual({ n: 40 });
      await assertNoLeftovers(store.dir);
    }, 60_000);
  });

  it("reads ranges from an open handle even if the object is replaced meanwhile", async () => {
    await store.put("snap/obj", "old content");
    const stream = await store.get("snap/obj", { start: 4 });
    await store.put("snap/obj", "new content!");
    expect((await collect(stream)).toString()).toBe("content");
  });
});
