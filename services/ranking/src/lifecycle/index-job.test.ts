/**
 * The index Job of a (model, dataset version) pair, from the chart's template, checked against the
 * Kubernetes API models. No cluster here: nothing talks to an API server.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseJobTemplate } from "@glimpse/kube/jobs";
import { fakeKubernetesApi, type FakeApi } from "@glimpse/kube/testing";
import { createLogger } from "@glimpse/logging";
import { validateK8s } from "@glimpse/kube/validate";
import { parseAllDocuments } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KubernetesIndexBuilder } from "./index-builder.js";
import { buildIndexJob, INDEX_LABELS, indexJobName } from "./index-job.js";

/** The index Job template as the chart renders it (k8s/glimpse.yaml is `helm template` of the chart). */
function renderedTemplate(): string {
  const docs = parseAllDocuments(readFileSync(new URL("../../../../k8s/glimpse.yaml", import.meta.url), "utf8")).map((d) => d.toJS() as { kind?: string; data?: Record<string, string> });
  const cm = docs.find((d) => d?.kind === "ConfigMap" && d.data?.["index-job.yaml"]);
  if (!cm) throw new Error("no index-job.yaml ConfigMap in k8s/glimpse.yaml");
  return cm.data!["index-job.yaml"]!;
}

const pair = { model: "m-0123456789abcdef", dataset: "flickr8k", datasetVersion: "fedcba9876543210" };

describe("index Job", () => {
  const template = parseJobTemplate(renderedTemplate());

  it("is a valid Indexed batch/v1 Job running one shard worker per completion", () => {
    const job = buildIndexJob(template, pair, 3);
    expect(validateK8s(job, "V1Job", "job")).toEqual([]);
    expect(job.metadata!.name).toBe(indexJobName(pair));
    expect(job.metadata!.name).toMatch(/^glimpse-index-0123456789abcdef-fedcba9876543210-[0-9a-f]{6}$/);
    expect(job.metadata!.name!.length).toBeLessThanOrEqual(63);
    const labels = { [INDEX_LABELS.model]: pair.model, [INDEX_LABELS.dataset]: pair.dataset, [INDEX_LABELS.datasetVersion]: pair.datasetVersion };
    expect(job.metadata!.labels).toMatchObject(labels);
    expect(job.spec!.template.metadata!.labels).toMatchObject(labels);
    expect(job.spec).toMatchObject({ completionMode: "Indexed", completions: 3, parallelism: 3 });
    const c = job.spec!.template.spec!.containers.find((x) => x.name === "indexer")!;
    expect(c.args).toEqual(["services/ranking/dist/cli.js", "index-shard", "--model", pair.model, "--dataset", "flickr8k", "--dataset-version", pair.datasetVersion, "--shards", "3", "--job", job.metadata!.name]);
    expect(c.env).toContainEqual({ name: "GLIMPSE_POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } });
    // from the template: a deleted pod (SIGTERM → exit 143 after storing its chunk) is replaced without counting as a failure
    expect(job.spec!.template.spec!.restartPolicy).toBe("Never");
    expect(JSON.stringify(job.spec!.podFailurePolicy)).toContain("DisruptionTarget");
    expect(JSON.stringify(job.spec!.podFailurePolicy)).toContain("143");
    // the template itself is not changed
    expect(template.metadata!.name).toBeUndefined();
  });

  it("a collection version's Job: named apart from every gallery's, valid labels, the shard worker on dataset collections/<id>", () => {
    const c = { model: pair.model, dataset: "collections/holiday-photos-", datasetVersion: pair.datasetVersion };
    const job = buildIndexJob(template, c, 2);
    expect(validateK8s(job, "V1Job", "job")).toEqual([]);
    expect(job.metadata!.name).toMatch(/^glimpse-cindex-0123456789abcdef-fedcba9876543210-[0-9a-f]{6}$/);
    expect(job.metadata!.name!.length).toBeLessThanOrEqual(63);
    expect(job.metadata!.name).not.toBe(indexJobName({ ...c, dataset: "holiday" }));
    // "collections/…" is no label value: the collection's id is, without its trailing hyphen
    expect(job.metadata!.labels).toMatchObject({ [INDEX_LABELS.model]: pair.model, [INDEX_LABELS.collection]: "holiday-photos", [INDEX_LABELS.datasetVersion]: pair.datasetVersion });
    expect(job.metadata!.labels![INDEX_LABELS.dataset]).toBeUndefined();
    const args = job.spec!.template.spec!.containers.find((x) => x.name === "indexer")!.args!;
    expect(args.slice(1, 8)).toEqual(["index-shard", "--model", pair.model, "--dataset", "collections/holiday-photos-", "--dataset-version", pair.datasetVersion]);
  });

  it("names the same Job for the same pair, another for another dataset of the same content", () => {
    expect(indexJobName(pair)).toBe(indexJobName({ ...pair }));
    expect(indexJobName({ ...pair, dataset: "photos" })).not.toBe(indexJobName(pair));
    expect(indexJobName({ ...pair, model: "m-1123456789abcdef" })).not.toBe(indexJobName(pair));
  });
});

describe("KubernetesIndexBuilder against a fake API server", () => {
  const requests: string[] = [];
  const jobs = new Map<string, Record<string, any>>(); // eslint-disable-line @typescript-eslint/no-explicit-any
  /** Jobs another replica makes between this one's read (404) and its create (409). */
  const madeMeanwhile = new Set<string>();
  let api: FakeApi;
  let builder: KubernetesIndexBuilder;
  let dir: string;

  beforeAll(async () => {
    api = await fakeKubernetesApi((req, send) => {
      requests.push(`${req.method} ${req.path}`);
      if (req.method === "GET" && req.path === "/api/v1/namespaces/glimpse/configmaps/glimpse-index-job") return send(200, { kind: "ConfigMap", metadata: { name: "glimpse-index-job", uid: "cm-uid-1" } });
      const m = /^\/apis\/batch\/v1\/namespaces\/glimpse\/jobs(?:\/([\w.-]+))?$/.exec(req.path);
      if (!m) return send(404, { kind: "Status", code: 404 });
      if (req.method === "POST") {
        const job = JSON.parse(req.body) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
        if (madeMeanwhile.delete(job["metadata"].name)) jobs.set(job["metadata"].name, job);
        if (jobs.has(job["metadata"].name)) return send(409, { kind: "Status", code: 409, reason: "AlreadyExists" });
        jobs.set(job["metadata"].name, job);
        return send(201, job);
      }
      const job = m[1] ? jobs.get(m[1]) : undefined;
      if (!job) return send(404, { kind: "Status", code: 404 });
      if (req.method === "GET") return send(200, job);
      if (req.method === "DELETE") {
        jobs.delete(m[1]!);
        return send(200, { kind: "Status", status: "Success" });
      }
      send(405, { kind: "Status", code: 405 });
    });
    const kc = api.kc;
    dir = mkdtempSync(join(tmpdir(), "glimpse-index-job-"));
    writeFileSync(join(dir, "index-job.yaml"), renderedTemplate());
    builder = new KubernetesIndexBuilder({ templateFile: join(dir, "index-job.yaml"), namespace: "glimpse", ownerConfigMap: "glimpse-index-job", parallelism: 2, logger: createLogger("test", "silent"), kubeConfig: kc });
  });
  afterAll(async () => {
    await api.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("creates the pair's Job once, owned by the template's ConfigMap, and reports its shards", async () => {
    const name = indexJobName(pair);
    expect(await builder.ensure(pair)).toEqual({ executor: "kubernetes", job: name, detail: "created", failed: false });
    const made = jobs.get(name)!;
    expect(made["metadata"].ownerReferences).toEqual([{ apiVersion: "v1", kind: "ConfigMap", name: "glimpse-index-job", uid: "cm-uid-1" }]);
    expect(made["spec"]).toMatchObject({ completionMode: "Indexed", completions: 2, parallelism: 2 });
    // every later check (this replica or another) reads it; nothing is created twice
    made["status"] = { active: 1, succeeded: 1 };
    expect(await builder.ensure(pair)).toMatchObject({ detail: "1/2 shards done, 1 running", failed: false });
    expect(requests.filter((r) => r.startsWith("POST"))).toHaveLength(1);
  });

  it("another replica's create of the same Job (a conflict) is fine", async () => {
    const other = { ...pair, datasetVersion: "1111111111111111" };
    madeMeanwhile.add(indexJobName(other));
    const posts = requests.filter((r) => r.startsWith("POST")).length;
    expect(await builder.ensure(other)).toMatchObject({ detail: "created", failed: false });
    expect(requests.filter((r) => r.startsWith("POST")).length).toBe(posts + 1);
    expect(jobs.has(indexJobName(other))).toBe(true);
  });

  it("a failed Job is reported, and deleted (to be made again) once it has been failed for a while", async () => {
    const failed = { ...pair, datasetVersion: "2222222222222222" };
    const name = indexJobName(failed);
    const failedJob = (at: Date) => ({ metadata: { name }, spec: { completions: 2 }, status: { conditions: [{ type: "Failed", status: "True", reason: "BackoffLimitExceeded", message: "Job has reached the specified backoff limit", lastTransitionTime: at.toISOString() }] } });
    jobs.set(name, failedJob(new Date()));
    expect(await builder.ensure(failed)).toEqual({ executor: "kubernetes", job: name, detail: "failed: BackoffLimitExceeded: Job has reached the specified backoff limit", failed: true });
    expect(jobs.has(name)).toBe(true);
    jobs.set(name, failedJob(new Date(Date.now() - 11 * 60_000)));
    expect((await builder.ensure(failed)).failed).toBe(true);
    expect(jobs.has(name)).toBe(false);
    expect(await builder.ensure(failed)).toMatchObject({ detail: "created", failed: false });
  });

  it("a completed Job whose index is not stored is made again after a minute", async () => {
    const gone = { ...pair, datasetVersion: "3333333333333333" };
    const name = indexJobName(gone);
    const complete = (at: Date) => ({ metadata: { name }, spec: { completions: 2 }, status: { succeeded: 2, completionTime: at.toISOString(), conditions: [{ type: "Complete", status: "True" }] } });
    jobs.set(name, complete(new Date()));
    expect(await builder.ensure(gone)).toMatchObject({ detail: "completed, but no index is stored", failed: false });
    expect(jobs.has(name)).toBe(true);
    jobs.set(name, complete(new Date(Date.now() - 2 * 60_000)));
    await builder.ensure(gone);
    expect(jobs.has(name)).toBe(false);
  });
});
