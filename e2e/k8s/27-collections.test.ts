/**
 * Collections on Kubernetes (issue #23), all through the gateway's public API: a 600-photo bucket prefix
 * in the chart's MinIO becomes a watched collection, ingested by the collection workflow (two ingest pods
 * and a publish pod); its version is embedded by an index Job of two pods,
 * one of them deleted while it runs, and every photo is embedded exactly once (the deleted pod's shard
 * by its replacement). Then 20 photos are added
 * and 10 deleted in the prefix: the next version reaches search with only the 20 new photos embedded.
 * Then the production model changes: the collection is re-embedded for it in the background while a load
 * loop searches the collection and the gallery, and not one search fails.
 *
 * The photos are the repository's demo images (200) and two variants of each (mirrored, cropped), so the
 * file needs nothing outside the repository.
 */
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { getJson, type ObjectStore } from "@glimpse/objectstore";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NS, ROOT, WRITE_KEY, fetchJson, gatewayUrl, kubectlAsync, kubectlJsonAsync, releaseStore, waitFor } from "./cluster.js";
import { expectNoFailedCall, LoadLoop, type LoadCall } from "./load.js";

const ID = "e2e-photos";
const NAME = `collections/${ID}`;
const PREFIX = "e2e-collection/photos/";
const MIN = 60_000;
const auth = { authorization: `Bearer ${WRITE_KEY}` };
// Labels Ranking puts on a collection's index Jobs (and their pods).
const COLLECTION_LABEL = "glimpse.dev/index-collection";
const MODEL_LABEL = "glimpse.dev/index-model";
const VERSION_LABEL = "glimpse.dev/index-dataset-version";

type Job = { metadata: { name: string; labels?: Record<string, string> }; spec: { completions?: number; parallelism?: number }; status?: { conditions?: { type: string; status: string }[] } };
type Pod = { metadata: { name: string; deletionTimestamp?: string; labels?: Record<string, string>; annotations?: Record<string, string> }; status: { phase: string } };
interface Build {
  job: string;
  shards: number;
  chunks: { first: number; count: number; pod: string; shard: number }[];
  images_embedded: number;
  images_reused: number;
  reused_from?: string;
}
interface Collection {
  state: string;
  version: string;
  serving_version: string;
  model_version: string;
  counts: { indexed: string; found: string; skipped: string };
}

type WorkflowNode = { type: string; phase?: string; templateName?: string; inputs?: { parameters?: { name: string; value?: string }[] } };
type Workflow = { metadata: { name: string }; status: { phase?: string; nodes?: Record<string, WorkflowNode> } };
/** The collection's ingest workflows (the Data service labels them with the collection's id). */
const ingestWorkflows = async (): Promise<Workflow[]> => (await kubectlJsonAsync("get", "workflows.argoproj.io", "-n", NS, "-l", `glimpse.dev/collection=${ID}`)).items as Workflow[];

const completionIndex = (pod: Pod) => pod.metadata.labels?.["batch.kubernetes.io/job-completion-index"] ?? pod.metadata.annotations?.["batch.kubernetes.io/job-completion-index"];
const indexKey = (model: string, version: string) => `models/${model}/indexes/collections/${ID}/${version}/index.json`;

async function collectionJob(model: string, version?: string): Promise<Job | undefined> {
  const jobs = (await kubectlJsonAsync("get", "jobs", "-n", NS, "-l", `${COLLECTION_LABEL}=${ID}${version ? `,${VERSION_LABEL}=${version}` : ""}`)).items as Job[];
  return jobs.find((j) => j.metadata.labels?.[MODEL_LABEL] === model);
}

async function getCollection(): Promise<Collection> {
  const r = await fetchJson(`${gatewayUrl()}/v1/${NAME}`);
  if (r.status !== 200) throw new Error(`GET /v1/${NAME}: ${r.status} ${JSON.stringify(r.body)}`);
  return (r.body as { collection: Collection }).collection;
}

/** The chunks cover the photos to embed exactly once: sorted, contiguous, no overlap. */
function expectEachPhotoOnce(build: Build, embedded: number): void {
  expect(build.images_embedded).toBe(embedded);
  let next = 0;
  for (const c of [...build.chunks].sort((a, b) => a.first - b.first)) {
    expect(c.first, `chunk ${JSON.stringify(c)} after offset ${next}`).toBe(next);
    next = c.first + c.count;
  }
  expect(next).toBe(embedded);
}

/** The demo images and two variants of each: 600 distinct photos. */
async function photos(): Promise<{ name: string; bytes: Buffer }[]> {
  const dir = join(ROOT, "demo/images");
  const out: { name: string; bytes: Buffer }[] = [];
  for (const f of readdirSync(dir).sort()) {
    const bytes = readFileSync(join(dir, f));
    const base = f.replace(/\.jpg$/, "");
    out.push({ name: `${base}.jpg`, bytes });
    out.push({ name: `${base}-mirrored.jpg`, bytes: await sharp(bytes).flop().jpeg({ quality: 90 }).toBuffer() });
    out.push({ name: `${base}-cropped.jpg`, bytes: await sharp(bytes).extract({ left: 16, top: 16, width: 192, height: 192 }).jpeg({ quality: 90 }).toBuffer() });
  }
  return out;
}

const searchCollection = (n: number): LoadCall => ({
  path: `/v1/${NAME}:search`,
  body: { text: ["a dog running", "children playing", "a man on a bike", "people in a city"][n % 4], top_k: 5 },
  answeredBy: (a) => {
    if (!Array.isArray(a["results"]) || a["results"].length === 0) throw new Error("200 without results");
    return `collection: ${String(a["model_version"])} / ${String(a["collection_version"])}`;
  },
});
const searchGallery = (n: number): LoadCall => ({
  path: "/inference/text-to-image",
  body: { query: ["a dog running", "two children on a beach"][n % 2], top_k: 5 },
  answeredBy: (a) => `gallery: ${String(a["model_version"])} / ${String(a["dataset_version"])}`,
});

/**
 * Follows a pod's log from its start and deletes the pod (gracefully: SIGTERM) as soon as a line matches;
 * fails if the container ends first.
 */
async function deleteOnLogLine(pod: string, line: RegExp): Promise<void> {
  const t0 = Date.now();
  let tail = "";
  for (;;) {
    const follower = spawn("kubectl", ["logs", "-f", pod, "-n", NS], { stdio: ["ignore", "pipe", "pipe"] });
    let lines = 0;
    const seen = await new Promise<boolean>((resolve) => {
      createInterface({ input: follower.stdout }).on("line", (l) => {
        lines++;
        tail = l;
        if (line.test(l)) resolve(true);
      });
      follower.stderr.on("data", (d: Buffer) => (tail = d.toString()));
      follower.on("close", () => resolve(false));
    });
    const matched = Date.now();
    if (seen) await kubectlAsync("delete", "pod", pod, "-n", NS, "--wait=false");
    follower.kill();
    if (seen) return console.log(`collections: ${pod}: the line came ${matched - t0} ms after the pod was found; deleted ${Date.now() - matched} ms later`);
    // kubectl refuses a container that has not started yet ("… is waiting to start"): follow again
    if (lines > 0 || !/waiting to start|ContainerCreating|PodInitializing/.test(tail) || Date.now() - t0 > 5 * 60_000) {
      throw new Error(`${pod}'s log ended before a line matched ${String(line)} (last: ${tail})`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("collections: a watched bucket prefix, embedded by index Jobs, searched through the gateway", () => {
  let store: ObjectStore;
  let all: { name: string; bytes: Buffer }[] = [];
  let production = "";
  let first = "";

  beforeAll(async () => {
    store = releaseStore();
    all = await photos();
    const status = await fetchJson(`${gatewayUrl()}/model/status`);
    production = status.body.production_version as string;
    expect(production).toMatch(/^m-[0-9a-f]{16}$/);
  }, 5 * MIN);

  afterAll(async () => {
    await fetchJson(`${gatewayUrl()}/v1/${NAME}`, { method: "DELETE", headers: auth }).catch(() => undefined);
    if (store) {
      for await (const o of store.list(PREFIX)) await store.delete(o.key);
      await store.close();
    }
  }, 5 * MIN);

  it("ingests 600 photos from a bucket prefix; two embed pods, one deleted mid-run; each photo embedded exactly once", async () => {
    const initial = all.slice(0, 600);
    for (const p of initial) await store.put(PREFIX + p.name, p.bytes, { contentType: "image/jpeg" });
    const created = await fetchJson(`${gatewayUrl()}/v1/collections?collection_id=${ID}`, {
      method: "POST", headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({ display_name: "e2e photos", source: { bucket: { prefix: PREFIX } }, watch: true }),
    });
    expect(created.status, JSON.stringify(created.body)).toBe(200);
    // The first version's index Job starts within seconds of the sync and runs for seconds: its last shard's
    // pod (the most chunks: ten of 32 photos) is looked for from now on, beside the checks of the sync below,
    // and deleted the moment its worker has started, so that it stops after the chunk under way. Not earlier:
    // a pod deleted before its SIGTERM handler exists (node as PID 1 ignores the signal) finishes its work.
    const deleted = (async () => {
      const job = await waitFor(`the index Job of ${NAME}`, () => collectionJob(production), 10 * MIN, 100);
      const victim = await waitFor("an embed pod of the last shard", async () => {
        const pods = (await kubectlJsonAsync("get", "pods", "-n", NS, "-l", `job-name=${job.metadata.name}`)).items as Pod[];
        return pods.find((p) => !p.metadata.deletionTimestamp && completionIndex(p) === String(job.spec.completions! - 1));
      }, 5 * MIN, 100);
      await deleteOnLogLine(victim.metadata.name, /"msg":\s*"shard started"/);
      return { job, victim };
    })();
    deleted.catch(() => undefined); // awaited below, after the sync's checks
    const synced = await waitFor("the first sync", async () => {
      const c = await getCollection();
      return c.state === "STATE_READY" && c.version ? c : undefined;
    }, 10 * MIN, 200);
    first = synced.version;
    expect(Number(synced.counts.indexed)).toBe(600);
    // 600 new photos: the ingest ran as the collection workflow, two ingest pods each on its half, then the publish pod
    const [wf, ...more] = await ingestWorkflows();
    expect(more).toEqual([]);
    expect(wf!.status.phase).toBe("Succeeded");
    const pods = Object.values(wf!.status.nodes ?? {}).filter((n) => n.type === "Pod" && n.phase === "Succeeded");
    const shards = pods.filter((n) => n.templateName === "collection-ingest").map((n) => n.inputs?.parameters?.find((x) => x.name === "shard")?.value);
    expect(shards.sort()).toEqual(["0", "1"]);
    expect(pods.filter((n) => n.templateName === "collection-publish")).toHaveLength(1);
    // its plan and shards are removed once the version is published
    const left: string[] = [];
    for await (const o of store.list(`collections/${ID}/syncs/`)) left.push(o.key);
    expect(left).toEqual([]);

    const { job, victim } = await deleted;
    expect(job.metadata.labels?.[VERSION_LABEL]).toBe(first);
    expect(job.spec.completions).toBe(2);
    const shard = completionIndex(victim);

    const served = await waitFor("search to serve the first version", async () => {
      const c = await getCollection();
      return c.serving_version === first ? c : undefined;
    }, 15 * MIN, 3000);
    expect(served.model_version).toBe(production);
    const doc = await getJson<{ build: Build }>(store, indexKey(production, first));
    expect(doc.build.job).toBe(job.metadata.name);
    expectEachPhotoOnce(doc.build, 600);
    expect(doc.build.images_reused).toBe(0);
    // the deleted pod stored what it had embedded and stopped; its replacement embedded the rest of its shard
    const replacements = ((await kubectlJsonAsync("get", "pods", "-n", NS, "-l", `job-name=${job.metadata.name}`)).items as Pod[]).filter((p) => completionIndex(p) === shard && p.metadata.name !== victim.metadata.name);
    const names = replacements.map((p) => p.metadata.name);
    const byShard = doc.build.chunks.filter((c) => String(c.shard) === shard).map((c) => c.pod);
    console.log(`collections: shard ${shard}'s chunks stored by ${JSON.stringify(byShard)}; ${victim.metadata.name} deleted, replaced by ${JSON.stringify(names)}`);
    expect(names.length, `the Job replaced ${victim.metadata.name}`).toBeGreaterThan(0);
    expect(byShard.some((p) => names.includes(p)), `a chunk of shard ${shard} stored by its replacement (${names.join(", ")})`).toBe(true);

    // every Ranking replica loads it on its own poll: ten answers in a row from it, whichever replica gives them
    let inARow = 0;
    const hits = await waitFor(`every replica to answer from ${first}`, async () => {
      const r = await fetchJson(`${gatewayUrl()}/v1/${NAME}:search`, { method: "POST", body: JSON.stringify({ text: "a dog running on the grass", top_k: 5 }) });
      inARow = r.status === 200 && r.body.collection_version === first ? inARow + 1 : 0;
      return inARow >= 10 ? r : undefined;
    }, 2 * MIN, 200);
    expect(hits.status, JSON.stringify(hits.body)).toBe(200);
    expect(hits.body.results).toHaveLength(5);
    expect(hits.body.collection_version).toBe(first);
    const thumb = await fetch(`${gatewayUrl()}${hits.body.results[0].thumbnail_url as string}`);
    expect(thumb.status).toBe(200);
    expect(thumb.headers.get("content-type")).toBe("image/jpeg");
  }, 30 * MIN);

  it("follows 20 photos added and 10 deleted in the watched prefix; only the 20 are embedded", async () => {
    const before = (await fetchJson(`${gatewayUrl()}/v1/${NAME}/photos?page_size=1000`)).body.photos as { photo_id: string; path: string }[];
    const deleted = before.slice(0, 10);
    // 20 new photos: the demo images upside down (new bytes, new content)
    const added = await Promise.all(all.filter((p) => !p.name.includes("-")).slice(0, 20).map(async (p) => ({ name: p.name.replace(/\.jpg$/, "-flipped.jpg"), bytes: await sharp(p.bytes).flip().jpeg({ quality: 90 }).toBuffer() })));
    const t0 = Date.now();
    for (const p of added) await store.put(PREFIX + p.name, p.bytes, { contentType: "image/jpeg" });
    for (const p of deleted) await store.delete(p.path);

    const c = await waitFor("search to serve a version with the changes", async () => {
      const c = await getCollection();
      return c.serving_version && c.serving_version !== first && c.serving_version === c.version && Number(c.counts.indexed) === 610 ? c : undefined;
    }, 10 * MIN, 1000);
    // measured for the closing note, not asserted (the issue's target is 30 s; machines here are shared)
    console.log(`collections: 20 added and 10 deleted photos reached search after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const doc = await getJson<{ build: Build }>(store, indexKey(production, c.serving_version));
    expect(doc.build.images_embedded).toBe(20);
    expect(doc.build.images_reused).toBe(590);
    expect(doc.build.reused_from).toBe(first);
    // 30 changes are below data.collections.workflow.minFiles: ingested in the Data service, no second workflow
    expect(await ingestWorkflows()).toHaveLength(1);

    // every Ranking replica drops the deleted photo (each follows the store on its own poll): ten answers in
    // a row, whichever replica gives them, say it is gone
    let inARow = 0;
    await waitFor(`every replica to forget ${deleted[0]!.photo_id}`, async () => {
      const gone = await fetchJson(`${gatewayUrl()}/v1/${NAME}:search`, { method: "POST", body: JSON.stringify({ photo_id: deleted[0]!.photo_id }) });
      inARow = gone.status === 404 ? inARow + 1 : 0;
      return inARow >= 10 ? true : undefined;
    }, 2 * MIN, 200);
    const paths = ((await fetchJson(`${gatewayUrl()}/v1/${NAME}/photos?page_size=1000`)).body.photos as { path: string }[]).map((p) => p.path);
    for (const p of added) expect(paths).toContain(PREFIX + p.name);
    for (const p of deleted) expect(paths).not.toContain(p.path);
  }, 15 * MIN);

  it("re-embeds the collection for a new production model while searches keep answering", async () => {
    const c = await getCollection();
    const gallery = (await fetchJson(`${gatewayUrl()}/model/status`)).body.index as { dataset_version: string };
    const versions = (await fetchJson(`${gatewayUrl()}/model/versions`)).body.models as { version: string }[];
    // prefer a model whose gallery index is stored already: the swap then waits on the collection alone
    const others = versions.map((m) => m.version).filter((v) => v !== production);
    expect(others.length).toBeGreaterThan(0);
    let next = others[0]!;
    for (const v of others) {
      const keys: string[] = [];
      for await (const o of store.list(`models/${v}/indexes/`)) if (o.key.endsWith(`/${gallery.dataset_version}/index.json`)) keys.push(o.key);
      if (keys.length > 0) {
        next = v;
        break;
      }
    }
    const load = new LoadLoop(gatewayUrl(), (n) => (n % 3 === 2 ? searchGallery(n) : searchCollection(n)));
    try {
      const promoted = await fetchJson(`${gatewayUrl()}/model/promote`, { method: "POST", headers: auth, body: JSON.stringify({ version: next }) });
      expect(promoted.status, JSON.stringify(promoted.body)).toBe(200);
      const job = await waitFor(`the index Job of ${NAME} for ${next}`, () => collectionJob(next, c.serving_version), 5 * MIN, 2000);
      await waitFor(`search to answer ${NAME} with ${next}`, async () => {
        const now = await getCollection();
        return now.model_version === next ? now : undefined;
      }, 20 * MIN, 3000);
      const doc = await getJson<{ build: Build }>(store, indexKey(next, c.serving_version));
      expect(doc.build.job).toBe(job.metadata.name);
      expectEachPhotoOnce(doc.build, 610);
    } finally {
      const t = await load.stop();
      expectNoFailedCall(t, "model swap with a collection", 20);
      const answered = Object.keys(t.answeredBy);
      expect(answered.some((a) => a.startsWith(`collection: ${next}`)), JSON.stringify(t.answeredBy)).toBe(true);
    }
  }, 30 * MIN);
});
