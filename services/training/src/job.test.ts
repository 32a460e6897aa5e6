/**
 * The Kubernetes Job of a run, checked against the Kubernetes API models. There is no cluster
 * here: nothing talks to an API server.
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import { training } from "@glimpse/api";
import { createLogger } from "@glimpse/logging";
import { FsObjectStore } from "@glimpse/objectstore";
import { parseAllDocuments } from "yaml";
import { describe, expect, it } from "vitest";
import { buildJob, JOB_SCRIPT, jobName, jobStatus, parseJobTemplate, RUN_ID_LABEL } from "./job.js";
import { KubernetesExecutor } from "./kubernetes.js";
import { newRunId } from "./records.js";
import { validateK8s } from "@glimpse/kube/validate";
import { DEFAULT_SEED, planTraining } from "./trainer-config.js";

/** The Job template as the chart renders it (k8s/glimpse.yaml is `helm template` of the chart). */
function renderedTemplate(): string {
  const docs = parseAllDocuments(readFileSync(new URL("../../../k8s/glimpse.yaml", import.meta.url), "utf8")).map((d) => d.toJS() as { kind?: string; metadata?: { name?: string }; data?: Record<string, string> });
  const cm = docs.find((d) => d?.kind === "ConfigMap" && d.data?.["training-job.yaml"]);
  if (!cm) throw new Error("no training-job.yaml ConfigMap in k8s/glimpse.yaml");
  return cm.data!["training-job.yaml"]!;
}

function spec(config: MessageInitShape<typeof training.TrainingConfigSchema> = {}) {
  const cfg = create(training.TrainingConfigSchema, config);
  const run = create(training.TrainingRunSchema, { runId: newRunId(new Date("2026-01-02T03:04:05.678Z")), config: cfg, datasetVersion: "0123456789abcdef" });
  return { run, plan: planTraining(cfg) };
}

describe("training Job", () => {
  const template = parseJobTemplate(renderedTemplate());

  it("is a valid batch/v1 Job with the run filled in", () => {
    const s = spec({ epochs: 30, learningRate: 0.0005, promote: true, promotionMetric: "t2i_r10", promotionMargin: -0.5, overrides: { warmup_steps: 100 } });
    const before = structuredClone(template);
    const job = buildJob(template, s);
    expect(template).toEqual(before); // the template is not modified
    expect(validateK8s(job, "V1Job", "job")).toEqual([]);

    const id = s.run.runId;
    expect(job.metadata!.name).toBe(`glimpse-train-${id}`);
    expect(job.metadata!.name!.length).toBeLessThanOrEqual(63);
    expect(job.metadata!.labels).toMatchObject({ [RUN_ID_LABEL]: id, "app.kubernetes.io/component": "training-job" });
    expect(job.spec!.template.metadata!.labels).toMatchObject({ [RUN_ID_LABEL]: id });
    const c = job.spec!.template.spec!.containers[0]!;
    expect(c.name).toBe("trainer");
    expect(c.image).toBe(template.spec!.template.spec!.containers[0]!.image); // the template's, untouched
    expect(c.resources).toEqual(template.spec!.template.spec!.containers[0]!.resources);
    expect(c.command).toEqual(["/bin/sh", "-c", JOB_SCRIPT, "glimpse-train"]);
    expect(c.args).toEqual(["--run-name", id, "--dataset", "flickr8k", "--dataset-version", "0123456789abcdef", "--resume"]);
    const env = Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value ?? e.valueFrom]));
    expect(JSON.parse(env["GLIMPSE_TRAIN_CONFIG"] as string)).toEqual({ epochs: 30, lr: 0.0005, seed: DEFAULT_SEED, warmup_steps: 100, phase2_epochs: 0 });
    expect(env).toMatchObject({ GLIMPSE_RUN_ID: id, GLIMPSE_DATASET: "flickr8k", GLIMPSE_DATASET_VERSION: "0123456789abcdef", GLIMPSE_EXPORT_PROMOTE: "1", GLIMPSE_PROMOTION_METRIC: "t2i_r10", GLIMPSE_PROMOTION_MARGIN: "-0.5", PYTHONUNBUFFERED: "1" });
    expect(env["MINIO_SECRET_KEY"]).toBeDefined(); // the template's secrets stay
    expect(c.envFrom).toEqual(template.spec!.template.spec!.containers[0]!.envFrom);
    expect(c.volumeMounts).toEqual([{ name: "glimpse-runs", mountPath: "/runs" }]);
    expect(job.spec!.template.spec!.volumes).toEqual([{ name: "glimpse-runs", emptyDir: {} }]);
    expect(job.spec!.template.spec!.restartPolicy).toBe("OnFailure");
  });

  it("keeps a template's own /runs volume and has no --promote unless asked", () => {
    const t = structuredClone(template);
    t.spec!.template.spec!.volumes = [{ name: "runs", persistentVolumeClaim: { claimName: "training-runs" } }];
    t.spec!.template.spec!.containers[0]!.volumeMounts = [{ name: "runs", mountPath: "/runs" }];
    const job = buildJob(t, spec());
    expect(validateK8s(job, "V1Job", "job")).toEqual([]);
    expect(job.spec!.template.spec!.volumes).toEqual(t.spec!.template.spec!.volumes);
    const env = job.spec!.template.spec!.containers[0]!.env!;
    expect(env.find((e) => e.name === "GLIMPSE_EXPORT_PROMOTE")!.value).toBe("");
    expect(env.find((e) => e.name === "GLIMPSE_PROMOTION_METRIC")!.value).toBe("rsum"); // the proto's defaults
    expect(env.find((e) => e.name === "GLIMPSE_PROMOTION_MARGIN")!.value).toBe("0");
  });

  it("runs the export with the gate's flags only when asked to promote", () => {
    const argv = (promote: string) =>
      execFileSync("/bin/sh", ["-c", JOB_SCRIPT.replaceAll("python -m glimpse_model.", "printf '%s|' "), "glimpse-train"], {
        env: { GLIMPSE_RUN_ID: "r", GLIMPSE_DATASET: "d", GLIMPSE_DATASET_VERSION: "v", GLIMPSE_EXPORT_PROMOTE: promote, GLIMPSE_PROMOTION_METRIC: "rsum", GLIMPSE_PROMOTION_MARGIN: "-0.5" },
        encoding: "utf8",
      });
    const tail = "|--promotion-metric=rsum|--promotion-margin=-0.5|";
    expect(argv("1")).toContain(`--dataset-version|v|--promote${tail}`);
    expect(argv("")).toContain(`--dataset-version|v${tail}`);
  });

  it("refuses a template that is not a Job", () => {
    expect(() => parseJobTemplate("apiVersion: v1\nkind: Pod\n")).toThrow(/not a batch\/v1 Job/);
    expect(() => parseJobTemplate("apiVersion: batch/v1\nkind: Job\nspec: {template: {spec: {containers: []}}}\n")).toThrow(/no containers/);
  });

  it("reads the outcome from the Job's conditions", () => {
    expect(jobStatus({})).toEqual({ done: false });
    expect(jobStatus({ status: { active: 1 } })).toEqual({ done: false });
    expect(jobStatus({ status: { conditions: [{ type: "Complete", status: "True" }] } })).toEqual({ done: true, succeeded: true });
    expect(jobStatus({ status: { succeeded: 1 } })).toEqual({ done: true, succeeded: true });
    expect(jobStatus({ status: { conditions: [{ type: "Failed", status: "True", reason: "BackoffLimitExceeded", message: "Job has reached the specified backoff limit" }] } })).toEqual({
      done: true,
      succeeded: false,
      message: "BackoffLimitExceeded: Job has reached the specified backoff limit",
    });
    expect(jobStatus({ status: { conditions: [{ type: "Failed", status: "False" }] } })).toEqual({ done: false });
  });

  it("the executor builds the same Job from its template file (no API calls)", () => {
    const dir = mkdtempSync(join(tmpdir(), "glimpse-job-"));
    try {
      const file = join(dir, "training-job.yaml");
      writeFileSync(file, renderedTemplate());
      const kc = new k8s.KubeConfig();
      kc.loadFromOptions({ clusters: [{ name: "none", server: "https://127.0.0.1:9" }], users: [{ name: "u" }], contexts: [{ name: "c", cluster: "none", user: "u" }], currentContext: "c" });
      const ex = new KubernetesExecutor({ templateFile: file, namespace: "glimpse", store: new FsObjectStore(dir, "b"), pollMs: 1000, logger: createLogger("t", "silent"), kubeConfig: kc });
      const s = spec();
      expect(ex.namespace).toBe("glimpse");
      expect(ex.jobFor(s)).toEqual(buildJob(template, s));
      expect(jobName(s.run.runId)).toBe(ex.jobFor(s).metadata!.name);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
