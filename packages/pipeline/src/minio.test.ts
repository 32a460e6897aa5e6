/**
 * Integration: a real MinIO server (.tools/bin/minio, built by scripts/install-tools.sh),
 * the fixture served over local HTTP, the CLI as a child process.
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createObjectStore, type ObjectStore } from "@glimpse/objectstore";
import { startMinio, type MinioServer } from "@glimpse/objectstore/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { blobsPrefix, latestKey } from "./layout.js";
import { runPipeline } from "./pipeline.js";
import { readBlob, readCaptions, readPublished } from "./read.js";
import { archiveRoutes, makeFlickr8kFixture, type Fixture } from "./testing/fixture.js";
import { startStaticServer, type StaticServer } from "./testing/http-server.js";
import { faultyStore } from "./testing/stores.js";

const HERE = fileURLToPath(new URL(".", import.meta.url));
const CLI = join(HERE, "cli.ts");

interface Child {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function runNode(args: string[], env: Record<string, string>, onLine?: (line: string, kill: () => void) => void): Promise<Child> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--conditions=source", "--import", "tsx", ...args], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let buf = "";
    child.stdout.on("data", (c: Buffer) => {
      stdout += c.toString();
      buf += c.toString();
      let i: number;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        onLine?.(line, () => child.kill("SIGKILL"));
      }
    });
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

const logLines = (out: string): Record<string, unknown>[] =>
  out
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe("pipeline against MinIO", () => {
  let dir: string;
  let minio: MinioServer;
  let store: ObjectStore;
  let server: StaticServer;
  let fx: Fixture;
  let fx2: Fixture;
  let bad: Fixture;
  const bucket = "glimpse-test";
  let env: Record<string, string>;
  let v1: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "glimpse-pl-minio-"));
    const [m, a, b, c] = await Promise.all([
      startMinio(),
      makeFlickr8kFixture(join(dir, "fx")),
      makeFlickr8kFixture(join(dir, "fx2"), { seed: 3 }),
      makeFlickr8kFixture(join(dir, "bad"), { overlap: true }),
    ]);
    [minio, fx, fx2, bad] = [m, a, b, c];
    store = createObjectStore({ kind: "minio", endpoint: minio.endpoint, accessKey: minio.accessKey, secretKey: minio.secretKey, bucket });
    await store.init();
    server = await startStaticServer(archiveRoutes({ "": fx, "/v2": fx2, "/bad": bad }));
    env = { MINIO_ENDPOINT: minio.endpoint, MINIO_ACCESS_KEY: minio.accessKey, MINIO_SECRET_KEY: minio.secretKey, MINIO_BUCKET: bucket, GLIMPSE_LOG_LEVEL: "info" };
  });
  afterAll(async () => {
    await store?.close();
    await server?.close();
    await minio?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("a full run whose download loses its connection resumes and publishes", async () => {
    const size = (await stat(fx.imagesZip)).size;
    server.addFault({ path: "/Flickr8k_Dataset.zip", dropAfterBytes: Math.floor(size / 2) });
    const r = await runPipeline(
      { imagesUrl: server.urlOf("/Flickr8k_Dataset.zip"), captionsUrl: server.urlOf("/Flickr8k_text.zip") },
      { store, workDir: join(dir, "w1"), download: { retry: { baseDelayMs: 10 } } },
    );
    expect(r.state).toBe("succeeded");
    const gets = server.requests.filter((q) => q.path === "/Flickr8k_Dataset.zip");
    expect(gets.map((q) => q.status)).toEqual([200, 206]);
    expect(gets[0]?.dropped).toBe(true);
    expect(gets[1]?.range).toMatch(/^bytes=[1-9]\d*-$/);

    const pub = await readPublished(store, "flickr8k");
    expect(pub.version).toBe(r.version);
    expect(pub.manifest.counts).toMatchObject({ images: fx.expected.images, train: fx.expected.train, dev: fx.expected.dev, test: fx.expected.test });
    expect(pub.manifest.sources[0]).toMatchObject({ url: server.urlOf("/Flickr8k_Dataset.zip"), bytes: size });
    v1 = pub.version;
  });

  it("a run SIGKILLed during upload leaves the previous version; the CLI rerun completes", async () => {
    const workDir = join(dir, "w2");
    const params = { imagesUrl: server.urlOf("/v2/Flickr8k_Dataset.zip"), captionsUrl: server.urlOf("/v2/Flickr8k_text.zip") };
    const cfg = { params, workDir, minio: { endpoint: minio.endpoint, accessKey: minio.accessKey, secretKey: minio.secretKey, bucket }, putDelayMs: 40 };
    let puts = 0;
    const killed = await runNode([join(HERE, "testing", "upload-child.ts"), JSON.stringify(cfg)], {}, (line, kill) => {
      if (line.startsWith("put ") && ++puts === 6) kill();
    });
    expect(killed.signal).toBe("SIGKILL");
    expect(killed.stdout).toContain("step validate succeeded");
    expect(killed.stdout).not.toMatch(/step upload (succeeded|failed|skipped)/);

    // The previous version is still published, whole and readable.
    const prev = await readPublished(store, "flickr8k");
    expect(prev.version).toBe(v1);
    for (const ref of Object.values(prev.manifest.images)) await readBlob(store, ref);
    await readCaptions(store, prev.manifest);

    // The rerun (the CLI, same work dir) skips the finished steps and the uploaded blobs.
    const rerun = await runNode([CLI, "run", "--work-dir", workDir, "--images-url", params.imagesUrl, "--captions-url", params.captionsUrl], env);
    expect(rerun.code, rerun.stderr + rerun.stdout).toBe(0);
    const lines = logLines(rerun.stdout);
    const done = lines.find((l) => l["event"] === "done");
    expect(done).toMatchObject({ state: "succeeded", published: true });
    const skipped = lines.filter((l) => l["event"] === "step" && l["state"] === "skipped").map((l) => l["step"]);
    expect(skipped).toEqual(["download", "extract", "process", "split", "validate"]);
    const upMsg = lines.find((l) => l["step"] === "upload" && typeof l["msg"] === "string" && (l["msg"] as string).includes("already in"));
    expect(upMsg?.["msg"]).toMatch(/, ([6-9]|\d\d+) already in/);
    const now = await readPublished(store, "flickr8k");
    expect(now.version).toBe(done?.["version"]);
    expect(now.version).not.toBe(v1);
  });

  it("a second identical run uploads nothing new", async () => {
    const before: string[] = [];
    for await (const o of store.list(blobsPrefix("flickr8k"))) before.push(`${o.key}@${o.etag}`);
    const spy = faultyStore(store);
    const r = await runPipeline(
      { imagesUrl: server.urlOf("/v2/Flickr8k_Dataset.zip"), captionsUrl: server.urlOf("/v2/Flickr8k_text.zip") },
      { store: spy, workDir: join(dir, "w3") },
    );
    expect(r.state).toBe("skipped");
    expect(spy.puts).toEqual([]);
    const after: string[] = [];
    for await (const o of store.list(blobsPrefix("flickr8k"))) after.push(`${o.key}@${o.etag}`);
    expect(after).toEqual(before);
  });

  it("the CLI exits 3 on validation failures, naming the files, and publishes nothing", async () => {
    const latest = await store.getBuffer(latestKey("flickr8k"));
    const r = await runNode(
      [CLI, "run", "--work-dir", join(dir, "w4"), "--images-url", server.urlOf("/bad/Flickr8k_Dataset.zip"), "--captions-url", server.urlOf("/bad/Flickr8k_text.zip")],
      env,
    );
    expect(r.code).toBe(3);
    const failed = logLines(r.stdout).find((l) => l["event"] === "failed");
    expect(failed).toMatchObject({ step: "validate", exitCode: 3, transient: false });
    expect(failed?.["msg"]).toContain(`split_overlap (1): Flicker8k_Dataset/${bad.overlapId}.jpg (train and test)`);
    expect((await store.getBuffer(latestKey("flickr8k"))).equals(latest)).toBe(true);
  });

  it("the CLI exits 75 (transient) when the object store is unreachable, and 2 on bad usage", async () => {
    const r = await runNode([CLI, "upload", "--work-dir", join(dir, "w3"), "--images-url", server.urlOf("/v2/Flickr8k_Dataset.zip"), "--captions-url", server.urlOf("/v2/Flickr8k_text.zip")], {
      ...env,
      MINIO_ENDPOINT: "http://127.0.0.1:9",
    });
    expect(r.code, r.stdout + r.stderr).toBe(75);
    const u = await runNode([CLI, "run", "--dataset-size", "huge"], env);
    expect(u.code).toBe(1);
    expect(u.stdout + u.stderr).toContain("dataset_size must be full or sample");
    const v = await runNode([CLI, "frobnicate"], env);
    expect(v.code).toBe(2);
  });
});
