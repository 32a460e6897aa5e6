import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FsObjectStore, type ObjectStore } from "@glimpse/objectstore";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PipelineEvent, StepName } from "./events.js";
import { latestKey, type LatestPointer, type Manifest, type Splits } from "./layout.js";
import { runPipeline, runSteps, StepFailedError } from "./pipeline.js";
import { readBlob, readCaptions, readPublished, readSplits } from "./read.js";
import { sampleIds, type ProcessReport } from "./steps/process.js";
import type { ValidationReport } from "./steps/validate.js";
import { archiveRoutes, makeFlickr8kFixture, type Fixture } from "./testing/fixture.js";
import { startStaticServer, type StaticServer } from "./testing/http-server.js";
import { faultyStore } from "./testing/stores.js";
import { CancelledError, PublishConflictError, ValidationError } from "./util/errors.js";

const sha = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

describe("pipeline (fs store, local HTTP fixture)", () => {
  let dir: string;
  let fx: Fixture;
  let fx2: Fixture;
  let bad: Fixture;
  let server: StaticServer;
  let store: ObjectStore;
  let n = 0;
  const work = (): string => join(dir, `work-${++n}`);
  const paramsOf = (_f: Fixture, prefix = ""): { imagesUrl: string; captionsUrl: string } => ({
    imagesUrl: server.urlOf(`${prefix}/Flickr8k_Dataset.zip`),
    captionsUrl: server.urlOf(`${prefix}/Flickr8k_text.zip`),
  });
  let first: { version: string; workDir: string };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "glimpse-pipeline-"));
    [fx, fx2, bad] = await Promise.all([
      makeFlickr8kFixture(join(dir, "fx")),
      makeFlickr8kFixture(join(dir, "fx2"), { seed: 2 }),
      makeFlickr8kFixture(join(dir, "bad"), { overlap: true, uncaptionedInSplit: true }),
    ]);
    server = await startStaticServer(archiveRoutes({ "": fx, "/v2": fx2, "/bad": bad }));
    store = new FsObjectStore(join(dir, "store"), "glimpse", { fsync: false });
    await store.init();
  });
  afterAll(async () => {
    await server.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("a full run publishes the documented layout", async () => {
    const events: PipelineEvent[] = [];
    const workDir = work();
    const r = await runPipeline(paramsOf(fx), { store, workDir, onEvent: (e) => events.push(e) });
    expect(r.state).toBe("succeeded");
    expect(r.published).toBe(true);
    first = { version: r.version as string, workDir };

    // latest.json: exactly these keys, naming the manifest; the version is the manifest's hash.
    const pointer = JSON.parse((await store.getBuffer(latestKey("flickr8k"))).toString()) as LatestPointer;
    expect(Object.keys(pointer).sort()).toEqual(["manifest", "published_at", "version"]);
    expect(pointer.manifest).toBe(`datasets/flickr8k/versions/${r.version}/manifest.json`);
    expect(new Date(pointer.published_at).toISOString()).toBe(pointer.published_at);
    const mBytes = await store.getBuffer(pointer.manifest);
    expect(sha(mBytes).slice(0, 16)).toBe(pointer.version);
    expect(mBytes.toString()).not.toMatch(/20\d\d-\d\d-\d\dT/); // no timestamps inside

    const m = JSON.parse(mBytes.toString()) as Manifest;
    expect(Object.keys(m).sort()).toEqual(["captions", "counts", "dataset", "image_format", "images", "params", "schema", "sources", "splits"]);
    expect(m.schema).toBe("glimpse.dataset.manifest/v1");
    expect(m.dataset).toBe("flickr8k");
    expect(m.params).toEqual({ dataset_size: "full", split_mode: "official" });
    expect(m.image_format).toMatchObject({ format: "jpeg", width: 224, height: 224, quality: 90 });
    const e = fx.expected;
    expect(m.counts).toEqual({ images: e.images, captions: e.captions, train: e.train, dev: e.dev, test: e.test, unsplit: e.unsplit });
    expect(m.sources).toEqual([
      { url: server.urlOf("/Flickr8k_Dataset.zip"), sha256: sha(await readFile(fx.imagesZip)), bytes: (await readFile(fx.imagesZip)).length },
      { url: server.urlOf("/Flickr8k_text.zip"), sha256: sha(await readFile(fx.captionsZip)), bytes: (await readFile(fx.captionsZip)).length },
    ]);
    expect(Object.keys(m.images).sort()).toEqual(fx.ids.filter((id) => id !== fx.corruptId));
    for (const [id, ref] of Object.entries(m.images)) {
      expect(ref.key).toBe(`datasets/flickr8k/blobs/sha256/${ref.sha256}`);
      expect([ref.width, ref.height]).toEqual([224, 224]);
      const b = await readBlob(store, ref);
      expect(b.length).toBe(ref.size);
      expect(id).not.toMatch(/\.jpg$/);
    }
    expect(m.captions.key).toBe(`datasets/flickr8k/blobs/sha256/${m.captions.sha256}`);

    const captions = await readCaptions(store, m);
    expect(Object.keys(captions)).toHaveLength(e.images);
    expect(captions[fx.quirkId]).toHaveLength(5); // the .jpg.1#0 caption joined its image
    expect(captions[fx.captionOnlyId]).toBeUndefined();
    for (const cs of Object.values(captions)) for (const c of cs) expect(c).not.toMatch(/\s[.,!?]|\s\s/);
    const splits: Splits = await readSplits(store, m);
    expect(Object.keys(splits).sort()).toEqual(["dev", "test", "train"]);
    for (const s of ["train", "dev", "test"] as const) expect(splits[s]).toEqual([...splits[s]].sort());
    expect(splits.test).not.toContain(fx.corruptId);
    expect([...splits.train, ...splits.dev, ...splits.test]).not.toContain(fx.unlistedId);

    // Reports name the corrupt file and the quirks.
    const proc = JSON.parse(await readFile(join(workDir, "process", "report.json"), "utf8")) as ProcessReport;
    expect(proc.rejected).toEqual([{ image_id: fx.corruptId, file: `Flicker8k_Dataset/${fx.corruptId}.jpg`, reason: expect.any(String) }]);
    expect(proc.captions_without_image).toEqual([fx.captionOnlyId]);
    expect(proc.token_file_issues).toEqual([expect.objectContaining({ kind: "odd_name", text: `${fx.quirkId}.jpg.1#0`, imageId: fx.quirkId })]);
    const val = JSON.parse(await readFile(join(workDir, "validate", "report.json"), "utf8")) as ValidationReport;
    expect(val.ok).toBe(true);
    expect(val.warnings.find((w) => w.code === "rejected_images")?.files[0]).toContain(`Flicker8k_Dataset/${fx.corruptId}.jpg`);
    expect(val.warnings.find((w) => w.code === "unsplit_images")?.files).toEqual([`Flicker8k_Dataset/${fx.unlistedId}.jpg`]);

    // Events: every step ran and succeeded, in order, with progress in its unit.
    const states = events.flatMap((ev) => (ev.type === "step" && ev.status.state !== "pending" && ev.status.state !== "running" ? [`${ev.status.step}:${ev.status.state}`] : []));
    expect(states).toEqual(["download", "extract", "process", "split", "validate", "upload", "sync"].map((s) => `${s}:succeeded`));
    const dl = events.filter((ev) => ev.type === "step" && ev.status.step === "download" && ev.status.state === "running");
    expect(dl.at(-1)).toMatchObject({ status: { unit: "bytes", done: m.sources[0]!.bytes + m.sources[1]!.bytes } });
  });

  it("a rerun in the same work dir skips finished steps and publishes nothing new", async () => {
    const r = await runPipeline(paramsOf(fx), { store, workDir: first.workDir });
    expect(r.state).toBe("skipped");
    expect(r.version).toBe(first.version);
    expect(r.steps.map((s) => `${s.step}:${s.state}`)).toEqual(["download", "extract", "process", "split", "validate", "upload"].map((s) => `${s}:skipped`).concat("sync:succeeded"));
  });

  it("a second identical run from scratch uploads nothing new and yields the same version", async () => {
    const spy = faultyStore(store);
    const r = await runPipeline(paramsOf(fx), { store: spy, workDir: work() });
    expect(r.version).toBe(first.version);
    expect(r.state).toBe("skipped");
    expect(spy.puts).toEqual([]);
    expect(r.results.upload).toMatchObject({ uploaded: 0, existing: fx.expected.images + 2, published: false });
  });

  it("a run that dies during upload leaves the previous version published; the rerun completes", async () => {
    const workDir = work();
    const broken = faultyStore(store, { failAfterPuts: 5 });
    const err = await runPipeline(paramsOf(fx2, "/v2"), { store: broken, workDir }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StepFailedError);
    expect((err as StepFailedError).step).toBe("upload");
    expect(broken.puts).toHaveLength(5);

    // The previous version is still the latest, whole and readable.
    const prev = await readPublished(store, "flickr8k");
    expect(prev.version).toBe(first.version);
    for (const ref of Object.values(prev.manifest.images)) await readBlob(store, ref);
    await readCaptions(store, prev.manifest);

    const spy = faultyStore(store);
    const r = await runPipeline(paramsOf(fx2, "/v2"), { store: spy, workDir });
    expect(r.state).toBe("succeeded");
    expect(r.version).not.toBe(first.version);
    // Steps before upload were kept; the 5 blobs already uploaded were not sent again.
    expect(r.steps.filter((s) => s.state === "skipped").map((s) => s.step)).toEqual(["download", "extract", "process", "split", "validate"]);
    const up = r.results.upload as { uploaded: number; existing: number; objects: number };
    expect(up.existing).toBe(5);
    expect(up.uploaded).toBe(up.objects - 5);
    expect(spy.puts.at(-1)).toBe(latestKey("flickr8k")); // the pointer is the last write
    expect(spy.puts.at(-2)).toBe(`datasets/flickr8k/versions/${r.version}/manifest.json`);
    expect((await readPublished(store, "flickr8k")).version).toBe(r.version);
  });

  it("a concurrent publisher is not silently clobbered", async () => {
    const before = await readPublished(store, "flickr8k");
    // Another publisher moves the pointer between our read and our conditional write.
    const racing: ObjectStore = {
      ...faultyStore(store),
      put: async (key, body, opts) => {
        if (key === latestKey("flickr8k")) await store.put(key, JSON.stringify({ ...before.latest, published_at: new Date().toISOString() }));
        return store.put(key, body, opts);
      },
    };
    const err = await runPipeline(paramsOf(fx), { store: racing, workDir: first.workDir }).catch((e: unknown) => e);
    expect((err as StepFailedError).cause).toBeInstanceOf(PublishConflictError);
    expect((await readPublished(store, "flickr8k")).version).toBe(before.version);
  });

  it("validation failures fail the run and name the offending files", async () => {
    const latest = await store.getBuffer(latestKey("flickr8k"));
    const workDir = work();
    const err = await runPipeline(paramsOf(bad, "/bad"), { store, workDir }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StepFailedError);
    expect((err as StepFailedError).step).toBe("validate");
    const cause = (err as StepFailedError).cause as ValidationError;
    expect(cause).toBeInstanceOf(ValidationError);
    expect(cause.message).toContain(`split_overlap (1): Flicker8k_Dataset/${bad.overlapId}.jpg (train and test)`);
    expect(cause.message).toContain(`split_without_captions (1): Flicker8k_Dataset/${bad.uncaptionedId}.jpg (train)`);
    const rep = JSON.parse(await readFile(join(workDir, "validate", "report.json"), "utf8")) as ValidationReport;
    expect(rep.ok).toBe(false);
    expect(rep.violations.map((v) => v.code).sort()).toEqual(["split_overlap", "split_without_captions"]);
    expect((await store.getBuffer(latestKey("flickr8k"))).equals(latest)).toBe(true); // nothing published

    // A processed image damaged after processing: validate (re-run alone) names it.
    const victim = fx.ids[5] as string;
    const path = join(first.workDir, "process", "images", `${victim}.jpg`);
    const good = await readFile(path);
    await writeFile(path, good.subarray(0, 100));
    const err2 = await runSteps(paramsOf(fx), { workDir: first.workDir }, ["validate"], { rerun: true }).catch((e: unknown) => e);
    const msg = ((err2 as StepFailedError).cause as Error).message;
    expect(msg).toContain(`image_checksum (1): process/images/${victim}.jpg (from Flicker8k_Dataset/${victim}.jpg)`);
    expect(msg).toMatch(new RegExp(`image_decode \\(1\\): process/images/${victim}\\.jpg`));
    await writeFile(path, good);
  });

  it("a single step needs its upstream steps done", async () => {
    const err = await runSteps(paramsOf(fx), { workDir: work() }, ["split"]).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/split needs the output of process, extract/);
  });

  it("sync alone, after a run whose sync failed, announces that run's upload without uploading again", async () => {
    const workDir = work();
    const failing = async (): Promise<void> => {
      throw new Error("gateway said 401");
    };
    const err = await runPipeline(paramsOf(fx), { store, workDir, sync: failing }).catch((e: unknown) => e);
    expect((err as StepFailedError).step).toBe("sync");
    const announced: string[] = [];
    const r = await runSteps(paramsOf(fx), { workDir, sync: async (v) => void announced.push(v.version) }, ["sync"]);
    expect(announced).toEqual([first.version]);
    expect(r.steps.map((s) => `${s.step}:${s.state}`)).toEqual(["sync:succeeded"]);
  });

  it("ratio split: seeded, deterministic, by image; sample: a seeded fraction", async () => {
    const ratio = { ...paramsOf(fx), dataset: "synthetic", splitMode: "ratio" as const, seed: 7 };
    const a = await runPipeline(ratio, { store, workDir: work() });
    const b = await runPipeline(ratio, { store, workDir: work() });
    expect(b.version).toBe(a.version);
    const m = (await readPublished(store, "synthetic")).manifest;
    // 35 captioned images, 60/20/20: 21/7/7; every image in exactly one split.
    expect(m.counts).toMatchObject({ images: 35, train: 21, dev: 7, test: 7, unsplit: 0 });
    expect(m.params).toEqual({ dataset_size: "full", split_mode: "ratio", train_ratio: 0.6, dev_ratio: 0.2, test_ratio: 0.2, seed: 7 });
    const s = await readSplits(store, m);
    expect(new Set([...s.train, ...s.dev, ...s.test]).size).toBe(35);
    const other = await runPipeline({ ...ratio, seed: 8 }, { store, workDir: work() });
    expect(other.version).not.toBe(a.version);

    const sample = await runPipeline({ ...paramsOf(fx), dataset: "sampled", datasetSize: "sample", sampleRatio: 0.5 }, { store, workDir: work() });
    const sm = (await readPublished(store, "sampled")).manifest;
    expect(sample.state).toBe("succeeded");
    const drawn = sampleIds(fx.ids, 0.5, 42);
    expect(drawn).toHaveLength(18);
    expect(Object.keys(sm.images)).toEqual(drawn.filter((id) => id !== fx.corruptId));
    expect(sm.params).toEqual({ dataset_size: "sample", sample_ratio: 0.5, split_mode: "official", seed: 42 });
  });

  it("can be cancelled", async () => {
    const ac = new AbortController();
    const events: PipelineEvent[] = [];
    const err = await runPipeline(paramsOf(fx), {
      store,
      workDir: work(),
      signal: ac.signal,
      onEvent: (ev) => {
        events.push(ev);
        if (ev.type === "step" && ev.status.step === "process" && ev.status.state === "running") ac.abort();
      },
    }).catch((e: unknown) => e);
    expect((err as StepFailedError).cause).toBeInstanceOf(CancelledError);
    const last = new Map<StepName, string>();
    for (const ev of events) if (ev.type === "step") last.set(ev.status.step, ev.status.state);
    expect(last.get("process")).toBe("cancelled");
    expect(last.get("upload")).toBe("pending");
  });
});
