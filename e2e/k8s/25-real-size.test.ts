/**
 * Real size (issue #22): the full Flickr8K from ../shared, served inside the cluster, published through
 * Argo while a load loop searches through the gateway (REST and Connect). The gallery is embedded once,
 * by the index Job Ranking creates; one of the Job's pods and one Ranking pod are deleted meanwhile. Not
 * one search fails, no Ranking container restarts, every replica ends serving the 8091 images, and the
 * stored index says each image was embedded once, the deleted pod's work kept. Then a model promotion:
 * the new model's index is built by its Job and the replicas swap only once it is stored, again with
 * zero failed searches. Last, with that model (the demo model, the shipped one), the 1000 test photos
 * (from the archive in ../shared, no captions) become a bucket collection, ingested by the collection
 * workflow and embedded by an index Job; queried with their test captions (the first of each), it
 * recalls as the gallery restricted to the test split does.
 *
 * Needs the archives in $GLIMPSE_SHARED_DIR/datasets/flickr8k (default ../shared beside the repository)
 * on the node (a hostPath volume: the local cluster's node is this machine). Without them the file says
 * it did not run and why; with GLIMPSE_REQUIRE_SHARED=1 (CI) it fails instead.
 */
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { getJson, type ObjectStore } from "@glimpse/objectstore";
import { parseSplitList, parseTokenFile } from "@glimpse/pipeline";
import { extractZip } from "../../packages/pipeline/src/extract.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectNoFailedCall, LoadLoop, type LoadCall, type Tally } from "./load.js";
import { FLICKR8K_SOURCE, NS, RELEASE, ROOT, WRITE_KEY, fetchJson, gatewayUrl, kubectl, kubectlAsync, kubectlJson, kubectlJsonAsync, releaseStore, serveFiles, waitFor } from "./cluster.js";

const ARCHIVES = ["Flickr8k_Dataset.zip", "Flickr8k_text.zip"] as const;
const IMAGES = 8091;
const DATASET = "flickr8k";
const SERVER = "flickr8k-server";
const auth = { authorization: `Bearer ${WRITE_KEY}` };
const FINISHED = ["RUN_STATE_SUCCEEDED", "RUN_STATE_FAILED", "RUN_STATE_CANCELLED", "RUN_STATE_SKIPPED"];
const MIN = 60_000;

// Labels Ranking puts on its index Jobs (and their pods).
const MODEL_LABEL = "glimpse.dev/index-model";
const DATASET_VERSION_LABEL = "glimpse.dev/index-dataset-version";
const RANKING_PODS = `app.kubernetes.io/component=ranking,app.kubernetes.io/instance=${RELEASE}`;

/** The folder holding the two archives, symlinks resolved; or why there is none. */
function sharedFlickr8k(): { dir: string; why?: undefined } | { dir?: undefined; why: string } {
  const base = resolve(process.env["GLIMPSE_SHARED_DIR"] ?? join(ROOT, "..", "shared"));
  const dir = join(base, "datasets", "flickr8k");
  if (!existsSync(dir)) return { why: `${dir} does not exist (set GLIMPSE_SHARED_DIR to the folder holding datasets/flickr8k)` };
  const real = realpathSync(dir);
  const missing = ARCHIVES.filter((f) => !existsSync(join(real, f)));
  if (missing.length > 0) return { why: `${real} lacks ${missing.join(", ")}` };
  return { dir: real };
}

const shared = sharedFlickr8k();
const REQUIRED = process.env["GLIMPSE_REQUIRE_SHARED"] === "1";
const skip = shared.dir === undefined && !REQUIRED;
if (skip) console.warn(`== e2e/k8s/25-real-size did NOT run: no full Flickr8K: ${shared.why}. (CI sets GLIMPSE_REQUIRE_SHARED=1, where this fails instead.)`);

// ---------------------------------------------------------------------------------------------------
// The load loop

const QUERIES = ["a dog playing in the snow", "two children on a beach", "a man riding a bicycle", "a black and white dog jumps over a bar", "people walking in a city street"];

/** Alternately REST POST /inference/text-to-image and Connect JSON POST /glimpse.ranking.v1.RankingService/SearchImages. */
function searchCall(n: number): LoadCall {
  const query = QUERIES[n % QUERIES.length]!;
  const connect = n % 2 === 1;
  return {
    path: connect ? "/glimpse.ranking.v1.RankingService/SearchImages" : "/inference/text-to-image",
    body: connect ? { query, topK: 5 } : { query, top_k: 5 },
    headers: connect ? { "connect-protocol-version": "1" } : {},
    answeredBy: (a) => {
      if (!Array.isArray(a["results"]) || a["results"].length === 0) throw new Error("200 without results");
      return `${String(a["model_version"] ?? a["modelVersion"])} / ${String(a["dataset_version"] ?? a["datasetVersion"])}`;
    },
  };
}

const expectNoFailedSearch = (t: Tally, phase: string): void => expectNoFailedCall(t, phase);

// ---------------------------------------------------------------------------------------------------
// The cluster's state

type Job = {
  metadata: { name: string; labels?: Record<string, string> };
  spec: { completions?: number; parallelism?: number; completionMode?: string };
  status?: { succeeded?: number; active?: number; failed?: number; startTime?: string; completionTime?: string; conditions?: { type: string; status: string }[] };
};
type Pod = {
  metadata: { name: string; deletionTimestamp?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  status: { phase: string; podIP?: string; containerStatuses?: { name: string; restartCount: number }[] };
};

const isComplete = (job: Job): boolean => (job.status?.conditions ?? []).some((c) => c.type === "Complete" && c.status === "True");
const isFailed = (job: Job): boolean => (job.status?.conditions ?? []).some((c) => c.type === "Failed" && c.status === "True");
const completionIndex = (pod: Pod): string | undefined =>
  pod.metadata.labels?.["batch.kubernetes.io/job-completion-index"] ?? pod.metadata.annotations?.["batch.kubernetes.io/job-completion-index"];

/** The index Job Ranking made for (model, dataset version), if any. */
async function indexJob(model: string, datasetVersion: string): Promise<Job | undefined> {
  const jobs = (await kubectlJsonAsync("get", "jobs", "-n", NS, "-l", `${DATASET_VERSION_LABEL}=${datasetVersion}`)).items as Job[];
  return jobs.find((j) => j.metadata.labels?.[MODEL_LABEL] === model);
}
async function readJob(name: string): Promise<Job> {
  return (await kubectlJsonAsync("get", "job", name, "-n", NS)) as Job;
}
async function jobPods(job: string): Promise<Pod[]> {
  return (await kubectlJsonAsync("get", "pods", "-n", NS, "-l", `job-name=${job}`)).items as Pod[];
}
/** The Ranking pods that are not being deleted. */
async function rankingPods(): Promise<Pod[]> {
  return ((await kubectlJsonAsync("get", "pods", "-n", NS, "-l", RANKING_PODS)).items as Pod[]).filter((p) => !p.metadata.deletionTimestamp);
}

interface Serving {
  pod: string;
  /** "model / dataset version" the pod serves, with its gallery's image count; undefined when it did not answer. */
  pair?: string;
  images?: number;
}
/** What one Ranking pod serves, asked on its own address (its REST paths on the gRPC port). */
async function servingOf(pod: Pod, port: number): Promise<Serving> {
  if (!pod.status.podIP) return { pod: pod.metadata.name };
  try {
    const s = await fetchJson(`http://${pod.status.podIP}:${port}/model/status`);
    if (s.status !== 200) return { pod: pod.metadata.name };
    const index = s.body.index as { dataset_version?: string; images?: string | number } | undefined;
    return { pod: pod.metadata.name, pair: `${s.body.serving_version as string} / ${index?.dataset_version ?? ""}`, images: Number(index?.images ?? 0) };
  } catch {
    return { pod: pod.metadata.name };
  }
}

interface Poll {
  serving: Serving[];
  /** The Job as read after the pods were asked. */
  succeeded: number;
  complete: boolean;
  /** index.json of the pair, looked up after the pods were asked. */
  indexStored: boolean;
}

interface Build {
  job: string;
  shards: number;
  chunks: { first: number; count: number; pod: string; shard: number }[];
  images_embedded: number;
}
const indexKey = (model: string, datasetVersion: string): string => `models/${model}/indexes/${DATASET}/${datasetVersion}/index.json`;

/** The chunks cover the gallery's offsets 0..images exactly once: sorted, contiguous, no overlap. */
function expectEachImageOnce(build: Build, images: number): void {
  expect(build.images_embedded).toBe(images);
  const chunks = [...build.chunks].sort((a, b) => a.first - b.first);
  let next = 0;
  for (const c of chunks) {
    expect(c.count, JSON.stringify(c)).toBeGreaterThan(0);
    expect(c.first, `chunk ${JSON.stringify(c)} after offset ${next}`).toBe(next);
    next = c.first + c.count;
  }
  expect(next).toBe(images);
}

const seconds = (ms: number): string => (ms / 1000).toFixed(0);

describe.skipIf(skip)("real size: the full Flickr8K on Kubernetes, search never down", () => {
  let store: ObjectStore;
  let load: LoadLoop;
  let rankingPort = 0;
  let replicas = 0;
  let production = "";
  let datasetVersion = "";
  let firstJob = "";
  let deletedShardPod = "";
  let deletedShard = "";
  /** Seconds, measured for the log (quoted in the closing note), never asserted. */
  const times: Record<string, string> = {};
  let published = 0;
  let served = false;

  /**
   * Polls until the Job is Complete and every Ranking pod serves (model, the published version) with all
   * its images; each poll asks the pods first, then reads the Job and looks for the stored index.
   */
  async function pollUntilServed(jobName: string, model: string, onComplete: (at: number) => void): Promise<Poll[]> {
    const target = `${model} / ${datasetVersion}`;
    const polls: Poll[] = [];
    const { failed } = await waitFor(`the Job to complete and every Ranking pod to serve ${target}`, async () => {
      const serving = await Promise.all((await rankingPods()).map((p) => servingOf(p, rankingPort)));
      const job = await readJob(jobName);
      const indexStored = (await store.stat(indexKey(model, datasetVersion))) !== undefined;
      polls.push({ serving, succeeded: job.status?.succeeded ?? 0, complete: isComplete(job), indexStored });
      if (isFailed(job)) return { failed: job };
      if (isComplete(job)) onComplete(Date.now());
      const all = serving.length === replicas && serving.every((s) => s.pair === target && s.images === IMAGES);
      return isComplete(job) && all ? { failed: undefined } : undefined;
    }, 30 * MIN, 3000).catch((err: Error) => {
      throw new Error(`${err.message}; last look: ${JSON.stringify(polls.at(-1))}`);
    });
    if (failed) throw new Error(`the index Job failed: ${JSON.stringify(failed.status)}`);
    return polls;
  }

  beforeAll(async () => {
    if (shared.dir === undefined) throw new Error(`GLIMPSE_REQUIRE_SHARED=1 but the full Flickr8K is not there: ${shared.why}`);
    served = true;
    kubectl("delete", "deployment", SERVER, "-n", NS, "--ignore-not-found");
    kubectl("delete", "service", SERVER, "-n", NS, "--ignore-not-found");
    serveFiles(SERVER, { hostPath: { path: shared.dir, type: "Directory" } });

    // the chart's MinIO, at its Service's cluster IP, with the store Secret's credentials
    store = releaseStore();

    const svc = kubectlJson("get", "service", `${RELEASE}-ranking`, "-n", NS);
    rankingPort = Number(svc.spec.ports[0].targetPort);
    replicas = Number(kubectlJson("get", "deployment", `${RELEASE}-ranking`, "-n", NS).spec.replicas);
    const status = await fetchJson(`${gatewayUrl()}/model/status`);
    expect(status.status, JSON.stringify(status.body)).toBe(200);
    production = status.body.production_version as string;
    expect(production).toMatch(/^m-[0-9a-f]{16}$/);

    load = new LoadLoop(gatewayUrl(), searchCall);
  }, 5 * MIN);

  afterAll(async () => {
    if (load) {
      const rest = await load.stop();
      console.log(`load loop stopped: ${rest.requests} searches since the last check, ${rest.failed.length} failed`);
    }
    await store?.close();
    // the archive server is the test's, not the release's: gone before helm upgrade and uninstall are checked
    if (served) {
      kubectl("delete", "deployment", SERVER, "-n", NS, "--ignore-not-found", "--wait=true");
      kubectl("delete", "service", SERVER, "-n", NS, "--ignore-not-found", "--wait=true");
    }
    if (Object.keys(times).length > 0) console.log(`real-size times (s): ${JSON.stringify(times)}`);
  }, 5 * MIN);

  it("publishes the full Flickr8K through Argo from the archives served in the cluster", async () => {
    const t0 = Date.now();
    const start = await fetchJson(`${gatewayUrl()}/data/download`, {
      method: "POST", headers: auth,
      body: JSON.stringify({ images_url: `${FLICKR8K_SOURCE}/${ARCHIVES[0]}`, captions_url: `${FLICKR8K_SOURCE}/${ARCHIVES[1]}` }),
    });
    expect(start.status, JSON.stringify(start.body)).toBe(200);
    expect(start.body.run.executor).toBe("argo");
    const runId = start.body.run.run_id as string;
    const run = await waitFor("the pipeline run to finish", async () => {
      const r = await fetchJson(`${gatewayUrl()}/data/run?run_id=${runId}`);
      return FINISHED.includes(r.body?.run?.state) ? (r.body.run as { state: string; error?: string; dataset_version?: string }) : undefined;
    }, 15 * MIN, 3000);
    expect(run.state, run.error).toBe("RUN_STATE_SUCCEEDED");
    published = Date.now();
    times["publish (download → published)"] = seconds(published - t0);
    datasetVersion = run.dataset_version!;
    expect(datasetVersion).toMatch(/^[0-9a-f]{16}$/);
    const info = await fetchJson(`${gatewayUrl()}/data/info?dataset=${DATASET}&version=${datasetVersion}`);
    expect(info.status, JSON.stringify(info.body)).toBe(200);
    expect(Number(info.body.version.image_count)).toBe(IMAGES);
    expect(info.body.version.latest).toBe(true);
  }, 20 * MIN);

  it("embeds it in an index Job; one of the Job's pods and one Ranking pod are deleted while it runs", async () => {
    const job = await waitFor(`the index Job for ${production} over ${datasetVersion}`, () => indexJob(production, datasetVersion), 5 * MIN, 2000);
    times["index Job created after publish"] = seconds(Date.now() - published);
    firstJob = job.metadata.name;
    expect(job.spec.completionMode).toBe("Indexed");
    expect(job.spec.completions).toBeGreaterThanOrEqual(2);
    expect(job.spec.parallelism).toBe(job.spec.completions);

    // a shard pod that has stored work and still embeds: deleted
    const found = await waitFor("a running shard pod that stored a chunk", async () => {
      const j = await readJob(firstJob);
      if (isComplete(j) || isFailed(j)) return { ended: j };
      for (const pod of await jobPods(firstJob)) {
        if (pod.status.phase !== "Running" || pod.metadata.deletionTimestamp) continue;
        const log = await kubectlAsync("logs", pod.metadata.name, "-n", NS).catch(() => "");
        if (/"msg":\s*"chunk stored"/.test(log)) return { pod };
      }
      return undefined;
    }, 15 * MIN, 2000);
    if (!found.pod) throw new Error(`the index Job ended before one of its pods could be deleted: ${JSON.stringify(found.ended?.status)}`);
    const victim = found.pod;
    deletedShardPod = victim.metadata.name;
    deletedShard = completionIndex(victim) ?? "";
    expect(deletedShard).toMatch(/^\d+$/);
    await kubectlAsync("delete", "pod", deletedShardPod, "-n", NS, "--wait=false");

    // and a Ranking replica, while the Job still runs
    expect(isComplete(await readJob(firstJob))).toBe(false);
    const ranking = await rankingPods();
    expect(ranking.length).toBe(replicas);
    await kubectlAsync("delete", "pod", ranking[0]!.metadata.name, "-n", NS, "--wait=false");
    times["pods deleted after publish"] = seconds(Date.now() - published);
  }, 25 * MIN);

  it("completes the Job; every Ranking pod serves the 8091 images, and none before the Job stored them", async () => {
    const target = `${production} / ${datasetVersion}`;
    const polls = await pollUntilServed(firstJob, production, (complete) => {
      if (!times["index Job complete after publish"]) times["index Job complete after publish"] = seconds(complete - published);
    });
    times["switch after publish (every replica serves it)"] = seconds(Date.now() - published);

    // no pod served the new gallery before the Job had stored its index
    const early = polls.filter((p) => p.serving.some((s) => s.pair === target) && (!p.indexStored || (p.succeeded < 1 && !p.complete)));
    expect(early, JSON.stringify(early.slice(0, 3))).toEqual([]);

    const job = await readJob(firstJob);
    if (job.status?.startTime && job.status.completionTime) {
      times[`index Job, ${job.spec.completions} pods (its startTime → completionTime)`] = seconds(Date.parse(job.status.completionTime) - Date.parse(job.status.startTime));
    }

    // not one Ranking container restarted (the deleted pod's replacement included)
    const restarts = (await rankingPods()).flatMap((p) => (p.status.containerStatuses ?? []).map((c) => `${p.metadata.name}/${c.name}: ${c.restartCount}`));
    expect(restarts.length).toBeGreaterThanOrEqual(replicas);
    expect(restarts.filter((r) => !r.endsWith(": 0"))).toEqual([]);

    // not one search failed, from the publish to the switch
    expectNoFailedSearch(load.reset(), "publish → switch");

    // computed once, by the Job: each image embedded once, the deleted pod's stored work kept
    const doc = await getJson<{ build?: Build }>(store, indexKey(production, datasetVersion));
    const build = doc.build!;
    expect(build, JSON.stringify(doc).slice(0, 500)).toBeDefined();
    expect(build.job).toBe(firstJob);
    expect(build.shards).toBe(job.spec.completions);
    expectEachImageOnce(build, IMAGES);
    expect(build.chunks.some((c) => c.pod === deletedShardPod), `a chunk stored by the deleted pod ${deletedShardPod}`).toBe(true);
    const replacements = (await jobPods(firstJob)).filter((p) => completionIndex(p) === deletedShard && p.metadata.name !== deletedShardPod).map((p) => p.metadata.name);
    expect(replacements.length, `the Job replaced ${deletedShardPod}`).toBeGreaterThan(0);
    expect(build.chunks.some((c) => replacements.includes(c.pod) && String(c.shard) === deletedShard), `a chunk of shard ${deletedShard} stored by its replacement (${replacements.join(", ")})`).toBe(true);
    console.log(`index of ${production} over ${datasetVersion}: ${build.chunks.length} chunks by ${new Set(build.chunks.map((c) => c.pod)).size} pods, ${build.images_embedded} images embedded`);
  }, 35 * MIN);

  it("promotes another model: its index Job builds the index, the replicas swap only once it is stored, no search fails", async () => {
    const versions = await fetchJson(`${gatewayUrl()}/model/versions`);
    expect(versions.status, JSON.stringify(versions.body)).toBe(200);
    const others = (versions.body.models as { version: string; backbone?: string }[]).filter((m) => m.version !== production);
    expect(others.length, JSON.stringify(versions.body)).toBeGreaterThan(0);
    // the demo model (demo/model) first; one whose index over this gallery is not computed yet
    const demoBackbone = (JSON.parse(readFileSync(join(ROOT, "demo/model/config.json"), "utf8")) as { backbone?: string }).backbone;
    const ordered = [...others.filter((m) => m.backbone === demoBackbone), ...others.filter((m) => m.backbone !== demoBackbone)];
    let next = "";
    for (const m of ordered) {
      if ((await store.stat(indexKey(m.version, datasetVersion))) === undefined && (await indexJob(m.version, datasetVersion)) === undefined) {
        next = m.version;
        break;
      }
    }
    expect(next, `a registered model without an index over ${datasetVersion}: ${JSON.stringify(others)}`).not.toBe("");

    load.reset();
    const t0 = Date.now();
    const promoted = await fetchJson(`${gatewayUrl()}/model/promote`, { method: "POST", headers: auth, body: JSON.stringify({ version: next }) });
    expect(promoted.status, JSON.stringify(promoted.body)).toBe(200);

    const old = `${production} / ${datasetVersion}`;
    const target = `${next} / ${datasetVersion}`;
    const job = await waitFor(`the index Job for ${next} over ${datasetVersion}`, () => indexJob(next, datasetVersion), 5 * MIN, 2000);
    const polls = await pollUntilServed(job.metadata.name, next, (complete) => {
      if (!times["promotion: index Job complete"]) times["promotion: index Job complete"] = seconds(complete - t0);
    });
    times["promotion: switch (every replica serves it)"] = seconds(Date.now() - t0);

    // the new model served nowhere before its index was stored; while the Job had not finished a shard,
    // every pod that answered still served the old model over the same gallery
    const early = polls.filter((p) => p.serving.some((s) => s.pair === target) && (!p.indexStored || (p.succeeded < 1 && !p.complete)));
    expect(early, JSON.stringify(early.slice(0, 3))).toEqual([]);
    const running = polls.filter((p) => p.succeeded < 1 && !p.complete);
    expect(running.length, "polls while the Job ran").toBeGreaterThan(0);
    const elsewhere = running.filter((p) => p.serving.some((s) => s.pair !== undefined && (s.pair !== old || s.images !== IMAGES)));
    expect(elsewhere, JSON.stringify(elsewhere.slice(0, 3))).toEqual([]);

    const done = await readJob(job.metadata.name);
    if (done.status?.startTime && done.status.completionTime) {
      times[`promotion: index Job, ${done.spec.completions} pods (its startTime → completionTime)`] = seconds(Date.parse(done.status.completionTime) - Date.parse(done.status.startTime));
    }
    const restarts = (await rankingPods()).flatMap((p) => (p.status.containerStatuses ?? []).map((c) => `${p.metadata.name}/${c.name}: ${c.restartCount}`));
    expect(restarts.filter((r) => !r.endsWith(": 0"))).toEqual([]);
    expectNoFailedSearch(load.reset(), "promotion → switch");

    const doc = await getJson<{ build?: Build }>(store, indexKey(next, datasetVersion));
    expect(doc.build?.job).toBe(job.metadata.name);
    expectEachImageOnce(doc.build!, IMAGES);
    const status = await fetchJson(`${gatewayUrl()}/model/status`);
    expect(status.body.production_version).toBe(next);
  }, 40 * MIN);

  it("a bucket collection of the 1000 test photos recalls their captions as the test-split gallery does (R@10 within 0.2 points)", async () => {
    const ID = "e2e-test-split";
    const PREFIX = "e2e-real-size/test-photos/";
    const work = mkdtempSync(join(tmpdir(), "glimpse-e2e-test-split-"));
    try {
      await extractZip(join(shared.dir!, ARCHIVES[1]), join(work, "text"));
      const ids = parseSplitList(readFileSync(join(work, "text", "Flickr_8k.testImages.txt"), "utf8"));
      const captions = parseTokenFile(readFileSync(join(work, "text", "Flickr8k.token.txt"), "utf8")).captions;
      expect(ids).toHaveLength(1000);
      await extractZip(join(shared.dir!, ARCHIVES[0]), join(work, "images"));
      for (const id of ids) await store.put(`${PREFIX}${id}.jpg`, readFileSync(join(work, "images", "Flicker8k_Dataset", `${id}.jpg`)), { contentType: "image/jpeg" });

      const created = await fetchJson(`${gatewayUrl()}/v1/collections?collection_id=${ID}`, {
        method: "POST", headers: { ...auth, "content-type": "application/json" },
        body: JSON.stringify({ source: { bucket: { prefix: PREFIX } } }),
      });
      expect(created.status, JSON.stringify(created.body)).toBe(200);
      const t0 = Date.now();
      const c = await waitFor("the test-split collection to serve", async () => {
        const r = await fetchJson(`${gatewayUrl()}/v1/collections/${ID}`);
        const col = r.body.collection as { state: string; version: string; serving_version: string; counts: { indexed: string } } | undefined;
        if (col?.state === "STATE_FAILED") throw new Error(`the sync failed: ${JSON.stringify(col)}`);
        return col && col.version && col.serving_version === col.version ? col : undefined;
      }, 20 * MIN, 2000);
      times["test-split collection: ingest (workflow) + embed (index Job), 1000 photos"] = seconds(Date.now() - t0);
      expect(Number(c.counts.indexed)).toBe(1000);
      // 1000 new files: ingested by the collection workflow, not in the Data service
      const workflows = (await kubectlJsonAsync("get", "workflows.argoproj.io", "-n", NS, "-l", `glimpse.dev/collection=${ID}`)).items as { status: { phase?: string } }[];
      expect(workflows.map((w) => w.status.phase)).toEqual(["Succeeded"]);

      // each photo's first caption: 1000 queries, each asked of both (all 5000 take CI ~12 minutes here;
      // they gave 68.50 and 68.50 when run once, in the closing note of issue #23)
      const queries = ids.map((id) => ({ id, text: captions.get(id)![0]! }));
      expect(queries).toHaveLength(1000);
      let next = 0;
      let collectionHits = 0;
      let galleryHits = 0;
      const models = new Set<string>();
      const post = async (path: string, body: unknown, headers: Record<string, string> = {}) => {
        const r = await fetchJson(`${gatewayUrl()}${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
        if (r.status !== 200) throw new Error(`POST ${path}: ${r.status} ${JSON.stringify(r.body)}`);
        return r.body;
      };
      await Promise.all(
        // concurrent queries share the encoder's batches
        Array.from({ length: 8 }, async () => {
          while (next < queries.length) {
            const q = queries[next++]!;
            const col = await post(`/v1/collections/${ID}:search`, { text: q.text, top_k: 10 });
            if ((col.results as { path: string }[]).some((h) => h.path === `${PREFIX}${q.id}.jpg`)) collectionHits++;
            const gallery = await post("/glimpse.ranking.v1.RankingService/SearchImages", { query: q.text, topK: 10, scope: { split: "SPLIT_TEST" } }, { "connect-protocol-version": "1" });
            if ((gallery.results as { imageId: string }[]).some((h) => h.imageId === q.id)) galleryHits++;
            models.add(`${String(col.model_version)} = ${String(gallery.modelVersion)}`);
          }
        }),
      );
      // one model answered both, every time
      const promotedModel = (await fetchJson(`${gatewayUrl()}/model/status`)).body.production_version as string;
      expect([...models]).toEqual([`${promotedModel} = ${promotedModel}`]);
      const r10 = (hits: number) => (100 * hits) / queries.length;
      console.log(`test split, R@10 over 1000 captions (one a photo): collection ${r10(collectionHits).toFixed(2)}, gallery (split TEST) ${r10(galleryHits).toFixed(2)}`);
      expect(r10(galleryHits)).toBeGreaterThan(20); // the demo model just promoted, not chance (10 of 1000 = 1 %)
      expect(Math.abs(r10(collectionHits) - r10(galleryHits))).toBeLessThanOrEqual(0.2);
    } finally {
      rmSync(work, { recursive: true, force: true });
      // gone before the other files: a model swap waits for every collection's index
      await fetchJson(`${gatewayUrl()}/v1/collections/${ID}`, { method: "DELETE", headers: auth }).catch(() => undefined);
      for await (const o of store.list(PREFIX)) await store.delete(o.key);
    }
  }, 40 * MIN);
});
