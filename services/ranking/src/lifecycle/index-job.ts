/**
 * The Kubernetes Indexed Job that computes one (model version, dataset version) index, built from
 * the operator's template (helm/glimpse/templates/index-job.yaml → GLIMPSE_INDEX_JOB_TEMPLATE).
 *
 * Filled in here: a name derived from the pair (so every replica asking for it names the same Job,
 * and creating it twice is a conflict, not a second Job; a collection version's Job is named
 * apart from every gallery's), the pair's labels on the Job and its
 * pods, Indexed completion with one completion per shard, and the `indexer` container's args: the
 * shard worker of the Ranking CLI (its shard is JOB_COMPLETION_INDEX). Everything else — image,
 * resources, GPUs, store credentials, retries, pod failure policy — is the template's.
 */
import { createHash } from "node:crypto";
import { jobFromTemplate } from "@glimpse/kube/jobs";
import type { V1Job } from "@kubernetes/client-node";
import { collectionOf } from "../collections/source.js";

export interface IndexPair {
  model: string;
  dataset: string;
  datasetVersion: string;
}

export const INDEX_LABELS = {
  model: "glimpse.dev/index-model",
  dataset: "glimpse.dev/index-dataset",
  datasetVersion: "glimpse.dev/index-dataset-version",
  /** Instead of `dataset` for a collection ("collections/<id>" is no label value: no "/"). */
  collection: "glimpse.dev/index-collection",
} as const;

/**
 * `glimpse-index-<model hex>-<dataset version>-<6 hex of the dataset name>` (54 characters); a
 * collection version's (dataset "collections/<id>") `glimpse-cindex-…` (55), so it is never a
 * gallery's, whatever the hashes.
 */
export function indexJobName(p: IndexPair): string {
  const ds = createHash("sha256").update(p.dataset).digest("hex").slice(0, 6);
  return `glimpse-${collectionOf(p.dataset) ? "cindex" : "index"}-${p.model.replace(/^m-/, "")}-${p.datasetVersion}-${ds}`;
}

/** The pair's labels (a label value ends with a letter or digit: a collection id may end with "-"). */
function indexLabels(p: IndexPair): Record<string, string> {
  const id = collectionOf(p.dataset);
  const what = id === undefined ? { [INDEX_LABELS.dataset]: p.dataset } : { [INDEX_LABELS.collection]: id.replace(/-+$/, "") };
  return { [INDEX_LABELS.model]: p.model, ...what, [INDEX_LABELS.datasetVersion]: p.datasetVersion };
}

export function buildIndexJob(template: V1Job, p: IndexPair, shards: number): V1Job {
  const name = indexJobName(p);
  const { job, container } = jobFromTemplate(template, name, indexLabels(p), "indexer", `${p.model} ${p.dataset} ${p.datasetVersion}`);
  job.spec = { ...job.spec!, completionMode: "Indexed", completions: shards, parallelism: shards };
  container.args = [
    "services/ranking/dist/cli.js", "index-shard",
    "--model", p.model,
    "--dataset", p.dataset,
    "--dataset-version", p.datasetVersion,
    "--shards", String(shards),
    "--job", name,
  ];
  // An Indexed Job's pod is named <job>-<index>-<random> but its host name is <job>-<index>: the worker
  // records who embedded each chunk by the pod's real name (what kubectl shows, and what a deletion names)
  container.env = [...(container.env ?? []).filter((e) => e.name !== "GLIMPSE_POD_NAME"), { name: "GLIMPSE_POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } }];
  return job;
}
