import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { data } from "@glimpse/api";
import { PROTO_STEP, resolveParams, type PipelineParams, type StepName } from "@glimpse/pipeline";
import * as k8s from "@kubernetes/client-node";
import { templateOwner, type OwnerReference } from "./argo-owner.js";

export interface ArgoOptions {
  namespace: string;
  template: string;
  bucket: string;
  minioEndpoint?: string | undefined;
  image?: string | undefined;
  syncUrl?: string | undefined;
  /** The Data service's GLIMPSE_SOURCE_ALLOWLIST, re-checked by the download pod. */
  sourceAllowlist?: string | undefined;
  /** The ServiceAccount the workflow's pods (and its artifact-GC pods) run as. */
  serviceAccount?: string | undefined;
  /** Secret holding the sync step's API key (key `api-key`). */
  syncSecret?: string | undefined;
  /** Secret holding the upload step's object-store credentials (keys `access-key`, `secret-key`). */
  storeSecret?: string | undefined;
  /** Called when the template cannot be read for the owner reference (the Workflow is still submitted). */
  onOwnerError?: (err: Error) => void;
}

const GROUP = { group: "argoproj.io", version: "v1alpha1", plural: "workflows" } as const;

/**
 * The Workflow that runs one pipeline run from the argo/ WorkflowTemplate. Parameters are
 * resolved first (the same defaults and checks as a local run), so a bad run fails here and
 * not in the cluster.
 */
export function workflowFor(runId: string, params: PipelineParams, opts: ArgoOptions): Record<string, unknown> {
  const p: Record<string, string | undefined> = {
    dataset: params.dataset,
    "images-url": params.imagesUrl,
    "captions-url": params.captionsUrl,
    "images-sha256": params.imagesSha256 ?? "",
    "captions-sha256": params.captionsSha256 ?? "",
    "dataset-size": params.datasetSize,
    "sample-ratio": String(params.sampleRatio),
    "split-mode": params.splitMode,
    "train-ratio": String(params.trainRatio),
    "dev-ratio": String(params.devRatio),
    "test-ratio": String(params.testRatio),
    seed: String(params.seed),
    bucket: opts.bucket,
    "minio-endpoint": opts.minioEndpoint,
    "sync-url": opts.syncUrl,
    "source-allowlist": opts.sourceAllowlist,
    "sync-secret": opts.syncSecret,
    "store-secret": opts.storeSecret,
    image: opts.image,
  };
  return templateWorkflow(`glimpse-pipeline-${runId}`.toLowerCase(), opts.template, p, { "glimpse.dev/run-id": runId }, opts);
}

/**
 * A Workflow from a WorkflowTemplate in the executor's namespace, run as its ServiceAccount: the
 * parameters given (empty ones left to the template's defaults) and the labels, with part-of glimpse.
 */
export function templateWorkflow(name: string, template: string, params: Record<string, string | undefined>, labels: Record<string, string>, opts: ArgoOptions): Record<string, unknown> {
  return {
    apiVersion: `${GROUP.group}/${GROUP.version}`,
    kind: "Workflow",
    metadata: { name, namespace: opts.namespace, labels: { ...labels, "app.kubernetes.io/part-of": "glimpse" } },
    spec: {
      workflowTemplateRef: { name: template },
      ...(opts.serviceAccount ? { serviceAccountName: opts.serviceAccount } : {}),
      arguments: { parameters: Object.entries(params).filter(([, v]) => v !== undefined && v !== "").map(([name, value]) => ({ name, value })) },
    },
  };
}

export interface WorkflowStatus {
  phase?: string;
  message?: string;
  nodes?: Record<string, { displayName?: string; phase?: string; startedAt?: string; finishedAt?: string; message?: string; outputs?: { parameters?: { name: string; value?: string }[] } }>;
}

const PHASE: Record<string, data.RunState> = {
  Pending: data.RunState.PENDING,
  Running: data.RunState.RUNNING,
  Succeeded: data.RunState.SUCCEEDED,
  Failed: data.RunState.FAILED,
  Error: data.RunState.FAILED,
  Skipped: data.RunState.SKIPPED,
  Omitted: data.RunState.SKIPPED,
};

/** Folds an Argo Workflow's status into the run: overall phase, one StepStatus per DAG task. */
export function applyWorkflowStatus(run: data.PipelineRun, status: WorkflowStatus): void {
  run.state = PHASE[status.phase ?? "Pending"] ?? data.RunState.RUNNING;
  if (run.state === data.RunState.FAILED) run.error = status.message ?? "workflow failed";
  for (const node of Object.values(status.nodes ?? {})) {
    const step = PROTO_STEP[node.displayName as StepName];
    if (!step) continue;
    const s = run.steps.find((x) => x.step === step);
    if (!s) continue;
    s.state = PHASE[node.phase ?? "Pending"] ?? data.RunState.RUNNING;
    s.message = node.message ?? "";
    if (node.startedAt) s.startedAt = timestampFromDate(new Date(node.startedAt));
    if (node.finishedAt) s.finishedAt = timestampFromDate(new Date(node.finishedAt));
    const version = node.outputs?.parameters?.find((x) => x.name === "version")?.value;
    if (version) run.datasetVersion = version;
  }
  if (run.state !== data.RunState.PENDING && run.state !== data.RunState.RUNNING) run.finishedAt ??= timestampFromDate(new Date());
}

/** Submits, polls and stops Workflows through the Kubernetes API. */
export class ArgoClient {
  private readonly owners = new Map<string, Promise<OwnerReference | undefined>>();

  constructor(private readonly api: k8s.CustomObjectsApi, private readonly opts: ArgoOptions) {}

  static fromCluster(opts: ArgoOptions): ArgoClient {
    const kc = new k8s.KubeConfig();
    kc.loadFromDefault(); // in-cluster service account, or ~/.kube/config when run outside
    return new ArgoClient(kc.makeApiClient(k8s.CustomObjectsApi), opts);
  }

  get options(): Readonly<ArgoOptions> {
    return this.opts;
  }

  async submit(runId: string, input: Parameters<typeof resolveParams>[0]): Promise<string> {
    return this.create(workflowFor(runId, resolveParams(input), this.opts));
  }

  /** Creates a Workflow from a template (spec.workflowTemplateRef), owned by that template. */
  async create(body: Record<string, unknown>): Promise<string> {
    const template = (body["spec"] as { workflowTemplateRef?: { name: string } }).workflowTemplateRef?.name ?? this.opts.template;
    const owner = await this.ownerReference(template);
    if (owner) (body["metadata"] as { ownerReferences?: OwnerReference[] }).ownerReferences = [owner];
    await this.api.createNamespacedCustomObject({ ...GROUP, namespace: this.opts.namespace, body });
    return (body["metadata"] as { name: string }).name;
  }

  /** The WorkflowTemplate owns the Workflows (read once; tried again at the next submit when it fails). */
  private ownerReference(template: string): Promise<OwnerReference | undefined> {
    let owner = this.owners.get(template);
    if (!owner) {
      owner = templateOwner(this.api, this.opts.namespace, template).catch((err: unknown) => {
        this.owners.delete(template);
        this.opts.onOwnerError?.(err as Error);
        return undefined;
      });
      this.owners.set(template, owner);
    }
    return owner;
  }

  async status(name: string): Promise<WorkflowStatus> {
    const wf = (await this.api.getNamespacedCustomObject({ ...GROUP, namespace: this.opts.namespace, name })) as { status?: WorkflowStatus };
    return wf.status ?? {};
  }

  /**
   * Argo's own stop: a merge patch of spec.shutdown=Terminate (RBAC verb `patch` on
   * workflows); the controller kills running steps and skips exit handlers.
   */
  async terminate(name: string): Promise<void> {
    await this.api.patchNamespacedCustomObject(
      { ...GROUP, namespace: this.opts.namespace, name, body: { spec: { shutdown: "Terminate" } } },
      // merge-patch: the CRD has no strategic-merge schema
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    );
  }
}
