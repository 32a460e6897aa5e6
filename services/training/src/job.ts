/**
 * The Kubernetes Job of a training run, built from the operator's template
 * (helm/glimpse/templates/training-job.yaml → GLIMPSE_TRAINING_JOB_TEMPLATE).
 *
 * The service fills in: the name `glimpse-train-<run_id>`, the label `glimpse.dev/run-id` on the
 * Job and its pods, the trainer container's command and args, its environment
 * (GLIMPSE_TRAIN_CONFIG = the trainer config document) and, when the template mounts nothing
 * at /runs, an emptyDir there so a restarted container continues from its checkpoint. A new pod
 * (the Job's retry after the pod was deleted or evicted) starts with an empty /runs and
 * continues from the copy the trainer mirrors to `runs/<run_id>/` in the object store.
 *
 * The trainer has no "export when done" flag, so the container runs a short shell script:
 * train, then export + register (`--upload`, `--promote` with the gate's metric and margin when
 * asked) in the same pod, where the run folder is. The export appends the gate's decision (a
 * `promotion` event) to the run's events.jsonl in the object store, where the executor reads it. Everything else (image, resources, GPU scheduling, envFrom, secrets) is the
 * template's.
 */
import { jobFromTemplate } from "@glimpse/kube/jobs";
import type { V1EnvVar, V1Job } from "@kubernetes/client-node";
import type { LaunchSpec } from "./executor.js";

export { jobStatus, parseJobTemplate } from "@glimpse/kube/jobs";

export const RUN_ID_LABEL = "glimpse.dev/run-id";
/** Where the trainer image keeps run folders (model/Dockerfile: VOLUME /runs). */
const RUNS_MOUNT = "/runs";

export const jobName = (runId: string): string => `glimpse-train-${runId}`;

/**
 * `$@` are the trainer flags (args); the export reads the run folder the trainer just wrote.
 * `--resume` in args makes a restarted container continue from /runs/<run>/checkpoint.pt (a new
 * pod: from runs/<run>/checkpoint.pt in the object store).
 */
export const JOB_SCRIPT = [
  "set -e",
  `python -m glimpse_model.train --out-dir ${RUNS_MOUNT} --cache-dir ${RUNS_MOUNT}/.cache --progress none "$@"`,
  `python -m glimpse_model.export --run-dir "${RUNS_MOUNT}/$GLIMPSE_RUN_ID" --upload --dataset "$GLIMPSE_DATASET" --dataset-version "$GLIMPSE_DATASET_VERSION" \${GLIMPSE_EXPORT_PROMOTE:+--promote} --promotion-metric="$GLIMPSE_PROMOTION_METRIC" --promotion-margin="$GLIMPSE_PROMOTION_MARGIN"`,
].join("\n");

/** The Job for one run: a deep copy of the template with the run filled in. */
export function buildJob(template: V1Job, spec: LaunchSpec): V1Job {
  const { run, plan } = spec;
  const { job, pod, container } = jobFromTemplate(template, jobName(run.runId), { [RUN_ID_LABEL]: run.runId }, "trainer", `run id ${run.runId}`);

  container.command = ["/bin/sh", "-c", JOB_SCRIPT, "glimpse-train"];
  container.args = [
    "--run-name", run.runId,
    "--dataset", plan.dataset,
    "--dataset-version", run.datasetVersion,
    "--resume",
  ];
  const ours: V1EnvVar[] = [
    { name: "GLIMPSE_TRAIN_CONFIG", value: JSON.stringify(plan.trainerConfig) },
    { name: "GLIMPSE_RUN_ID", value: run.runId },
    { name: "GLIMPSE_DATASET", value: plan.dataset },
    { name: "GLIMPSE_DATASET_VERSION", value: run.datasetVersion },
    { name: "GLIMPSE_EXPORT_PROMOTE", value: plan.promote ? "1" : "" },
    { name: "GLIMPSE_PROMOTION_METRIC", value: plan.promotionMetric },
    { name: "GLIMPSE_PROMOTION_MARGIN", value: String(plan.promotionMargin) },
    { name: "PYTHONUNBUFFERED", value: "1" },
  ];
  const names = new Set(ours.map((e) => e.name));
  container.env = [...(container.env ?? []).filter((e) => !names.has(e.name)), ...ours];

  if (!(container.volumeMounts ?? []).some((m) => m.mountPath === RUNS_MOUNT)) {
    const volume = "glimpse-runs";
    pod.volumes = [...(pod.volumes ?? []).filter((v) => v.name !== volume), { name: volume, emptyDir: {} }];
    container.volumeMounts = [...(container.volumeMounts ?? []), { name: volume, mountPath: RUNS_MOUNT }];
  }
  return job;
}

