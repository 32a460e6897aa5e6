/**
 * What the services that create batch/v1 Jobs from an operator's template share (Training's
 * runs, Ranking's index Jobs): the template file, the namespace, the template's ConfigMap as
 * the Jobs' owner, and a Job's outcome.
 */
import { readFileSync } from "node:fs";
import type * as k8s from "@kubernetes/client-node";
import { parse } from "yaml";

const SA_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/** The pod's own namespace (its service account's), else "default". */
export function serviceAccountNamespace(): string {
  try {
    return readFileSync(SA_NAMESPACE_FILE, "utf8").trim() || "default";
  } catch {
    return "default";
  }
}

export const isNotFound = (err: unknown): boolean => (err as { code?: unknown }).code === 404;
export const isConflict = (err: unknown): boolean => (err as { code?: unknown }).code === 409;

/** Parses and checks a Job template file's text. */
export function parseJobTemplate(text: string, source = "the Job template"): k8s.V1Job {
  const job = parse(text) as k8s.V1Job | null;
  if (!job || typeof job !== "object" || job.kind !== "Job" || job.apiVersion !== "batch/v1") {
    throw new Error(`${source} is not a batch/v1 Job`);
  }
  const containers = job.spec?.template?.spec?.containers;
  if (!containers || containers.length === 0) throw new Error(`${source} has no containers`);
  return job;
}

/**
 * A deep copy of a Job template named `name`, with `labels` on the Job and its pod template, and the
 * container named `container` (else the first one) to fill in. Throws when `name` is no valid Job name
 * (`what` says what it was made from).
 */
export function jobFromTemplate(template: k8s.V1Job, name: string, labels: Record<string, string>, container: string, what: string): { job: k8s.V1Job; pod: k8s.V1PodSpec; container: k8s.V1Container } {
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name) || name.length > 63) throw new Error(`${what} does not make a valid Job name`);
  const job = structuredClone(template);
  job.metadata = { ...job.metadata, name, labels: { ...job.metadata?.labels, ...labels } };
  delete job.metadata.generateName;
  delete job.metadata.resourceVersion;
  delete job.metadata.uid;
  const podTemplate = job.spec!.template;
  podTemplate.metadata = { ...podTemplate.metadata, labels: { ...podTemplate.metadata?.labels, ...labels } };
  const pod = podTemplate.spec!;
  return { job, pod, container: pod.containers.find((c) => c.name === container) ?? pod.containers[0]! };
}

/**
 * The ConfigMap holding a Job template as the owner of the Jobs made from it, so removing the
 * template (helm uninstall) garbage-collects them and their pods, running ones included. Read
 * once (its uid stays the same across helm upgrades); a failed read is retried on the next call.
 */
export class ConfigMapOwner {
  private owner: Promise<k8s.V1OwnerReference> | undefined;

  constructor(
    private readonly core: k8s.CoreV1Api,
    private readonly namespace: string,
    private readonly name: string,
  ) {}

  get(): Promise<k8s.V1OwnerReference> {
    const { name, namespace } = this;
    this.owner ??= this.core.readNamespacedConfigMap({ name, namespace }).then(
      (cm) => ({ apiVersion: "v1", kind: "ConfigMap", name, uid: cm.metadata!.uid! }),
      (err: unknown) => {
        this.owner = undefined;
        throw new Error(`cannot read the Job template's ConfigMap ${namespace}/${name}: ${(err as Error).message}`);
      },
    );
    return this.owner;
  }
}

export type JobStatus = { done: false } | { done: true; succeeded: true } | { done: true; succeeded: false; message: string };

/** A Job's outcome from its status: the Complete/Failed conditions (or, for a one-pod Job, the succeeded count). */
export function jobStatus(job: k8s.V1Job): JobStatus {
  const conditions = job.status?.conditions ?? [];
  const failed = conditions.find((c) => c.type === "Failed" && c.status === "True");
  if (failed) return { done: true, succeeded: false, message: [failed.reason, failed.message].filter(Boolean).join(": ") || "the Job failed" };
  const completions = job.spec?.completions ?? 1;
  if (conditions.some((c) => c.type === "Complete" && c.status === "True") || (job.status?.succeeded ?? 0) >= completions) return { done: true, succeeded: true };
  return { done: false };
}
