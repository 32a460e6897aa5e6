/**
 * The index Job of a (model, dataset version) pair, from the chart's template, checked against the
 * Kubernetes API models. No cluster here: nothing talks to an API server.
 */
import { readFileSync } from "node:fs";
import { parseJobTemplate } from "@glimpse/kube/jobs";
import { validateK8s } from "@glimpse/kube/validate";
import { parseAllDocuments } from "yaml";
import { describe, expect, it } from "vitest";
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
    // from the template: a deleted pod (SIGTERM → exit 143 after storing its chunk) is replaced without counting as a failure
    expect(job.spec!.template.spec!.restartPolicy).toBe("Never");
    expect(JSON.stringify(job.spec!.podFailurePolicy)).toContain("DisruptionTarget");
    expect(JSON.stringify(job.spec!.podFailurePolicy)).toContain("143");
    // the template itself is not changed
    expect(template.metadata!.name).toBeUndefined();
  });

  it("names the same Job for the same pair, another for another dataset of the same content", () => {
    expect(indexJobName(pair)).toBe(indexJobName({ ...pair }));
    expect(indexJobName({ ...pair, dataset: "photos" })).not.toBe(indexJobName(pair));
    expect(indexJobName({ ...pair, model: "m-1123456789abcdef" })).not.toBe(indexJobName(pair));
  });
});
