import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fakeKubernetesApi, type ApiRequest, type FakeApi } from "@glimpse/kube/testing";
import { createLogger } from "@glimpse/logging";
import { FsObjectStore } from "@glimpse/objectstore";
import * as k8s from "@kubernetes/client-node";
import { create } from "@bufbuild/protobuf";
import { data } from "@glimpse/api";
import { resolveParams, SourceAllowList } from "@glimpse/pipeline";
import { checkCrd, loadArgoCrds, type Crd } from "@glimpse/pipeline/testing";
import { parse } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ObjectStore } from "@glimpse/objectstore";
import { ArgoClient, applyWorkflowStatus, workflowFor } from "./argo.js";
import type { DatasetCatalog } from "./catalog.js";
import { PipelineRuns, pipelineInput } from "./runs.js";
import { dataService } from "./service.js";

const TEMPLATE = parse(readFileSync(new URL("../../../argo/workflowtemplate.yaml", import.meta.url), "utf8")) as {
  metadata: { name: string };
  spec: { arguments: { parameters: { name: string }[] } };
};

describe("the Argo executor's Workflow", () => {
  let workflowCrd: Crd;
  beforeAll(async () => {
    workflowCrd = (await loadArgoCrds(["workflows"]))["workflows"]!;
  });

  const params = create(data.PipelineParamsSchema, { datasetSize: data.DatasetSize.SAMPLE, sampleRatio: 0.25, imagesUrl: "https://example.com/i.zip" });
  const wf = workflowFor("pr-20261126-abc123", resolveParams(pipelineInput(params)), {
    namespace: "glimpse",
    template: TEMPLATE.metadata.name,
    bucket: "glimpse",
    minioEndpoint: "http://glimpse-minio:9000",
    image: "glimpse:0.1.0",
    syncUrl: "http://glimpse-gateway.glimpse.svc:8000/data/register",
    serviceAccount: "glimpse-workflow",
    syncSecret: "glimpse-pipeline-key",
    storeSecret: "glimpse-object-store",
  });

  it("is valid against Argo's Workflow CRD schema", () => {
    expect(checkCrd(workflowCrd, wf)).toEqual([]);
  });

  it("references the WorkflowTemplate in argo/ and only parameters it declares", () => {
    const spec = wf["spec"] as { workflowTemplateRef: { name: string }; arguments: { parameters: { name: string; value: string }[] } };
    expect(spec.workflowTemplateRef.name).toBe(TEMPLATE.metadata.name);
    const declared = new Set(TEMPLATE.spec.arguments.parameters.map((p) => p.name));
    for (const p of spec.arguments.parameters) expect(declared, p.name).toContain(p.name);
    const byName = Object.fromEntries(spec.arguments.parameters.map((p) => [p.name, p.value]));
    expect(byName).toMatchObject({ "dataset-size": "sample", "sample-ratio": "0.25", "images-url": "https://example.com/i.zip", dataset: "flickr8k" });
  });

  it("runs its pods and its artifact-GC pods as the configured ServiceAccount, with the chart's Secrets", () => {
    const spec = wf["spec"] as { serviceAccountName?: string; artifactGC?: Record<string, unknown>; arguments: { parameters: { name: string; value: string }[] } };
    expect(spec.serviceAccountName).toBe("glimpse-workflow");
    // No artifact GC (its finalizer can make a Workflow undeletable: argoproj/argo-workflows#10840).
    expect(spec.artifactGC).toBeUndefined();
    const byName = Object.fromEntries(spec.arguments.parameters.map((p) => [p.name, p.value]));
    expect(byName).toMatchObject({ "sync-secret": "glimpse-pipeline-key", "store-secret": "glimpse-object-store", "sync-url": "http://glimpse-gateway.glimpse.svc:8000/data/register" });
    // Without one configured, the template's own ServiceAccount and Secrets apply.
    const bare = workflowFor("pr-1", resolveParams({}), { namespace: "ns", template: "t", bucket: "b" })["spec"] as Record<string, unknown>;
    expect(bare["serviceAccountName"]).toBeUndefined();
    expect(bare["artifactGC"]).toBeUndefined();
  });

  it("refuses file:// archives when runs execute in the cluster (the pods cannot read them)", async () => {
    const started: unknown[] = [];
    const runs = { executor: "argo", start: async (p: unknown) => void started.push(p) } as unknown as PipelineRuns;
    const svc = dataService({} as ObjectStore, {} as DatasetCatalog, runs, SourceAllowList.parse(["file:", "https:"]));
    const err = await Promise.resolve(svc.startPipelineRun!(create(data.StartPipelineRunRequestSchema, { params: { imagesUrl: "file:///data/i.zip", captionsUrl: "https://example.com/c.zip" } }), {} as never)).catch((e: unknown) => ConnectError.from(e));
    expect(err).toMatchObject({ code: Code.InvalidArgument });
    expect((err as ConnectError).message).toMatch(/params\.images_url: file:\/\/ URLs are not readable by the Argo workflow's pods/);
    expect((err as ConnectError).message).not.toContain("captions_url");
    expect(started).toEqual([]);
    // The local executor reads them (the embedded default's usual source).
    const local = dataService({} as ObjectStore, {} as DatasetCatalog, { ...runs, executor: "local", start: runs.start } as unknown as PipelineRuns, SourceAllowList.parse(["file:", "https:"]));
    await local.startPipelineRun!(create(data.StartPipelineRunRequestSchema, { params: { imagesUrl: "file:///data/i.zip" } }), {} as never);
    expect(started).toHaveLength(1);
  });

  it("folds the workflow's node statuses into the run's steps", () => {
    const run = create(data.PipelineRunSchema, {
      state: data.RunState.RUNNING,
      steps: [1, 2, 3, 4, 5, 6, 7].map((step) => create(data.StepStatusSchema, { step, state: data.RunState.PENDING })),
    });
    applyWorkflowStatus(run, {
      phase: "Running",
      nodes: {
        a: { displayName: "download", phase: "Succeeded", startedAt: "2026-11-26T10:00:00Z", finishedAt: "2026-11-26T10:00:05Z" },
        b: { displayName: "extract", phase: "Running" },
        c: { displayName: "glimpse-pipeline-x", phase: "Running" },
      },
    });
    expect(run.state).toBe(data.RunState.RUNNING);
    expect(run.steps[0]!.state).toBe(data.RunState.SUCCEEDED);
    expect(run.steps[1]!.state).toBe(data.RunState.RUNNING);
    applyWorkflowStatus(run, { phase: "Succeeded", nodes: { u: { displayName: "upload", phase: "Succeeded", outputs: { parameters: [{ name: "version", value: "0123456789abcdef" }] } } } });
    expect(run.state).toBe(data.RunState.SUCCEEDED);
    expect(run.datasetVersion).toBe("0123456789abcdef");
    expect(run.finishedAt).toBeDefined();
    applyWorkflowStatus(run, { phase: "Failed", message: "child failed" });
    expect(run.error).toBe("child failed");
  });
});

/**
 * The executor against a stand-in Kubernetes API server over HTTP: the requests it makes are
 * exactly what the chart's Role for Data allows (workflows create, get, patch), and
 * CancelPipelineRun terminates the Workflow with Argo's spec.shutdown — retried until the
 * API server accepts it.
 */
describe("the Argo executor against a Kubernetes API server", () => {
  let requests: ApiRequest[] = [];
  const workflows = new Map<string, Record<string, any>>(); // eslint-disable-line @typescript-eslint/no-explicit-any
  let refusePatches = 1;
  let api: FakeApi;
  let dir: string;
  let runs: PipelineRuns;

  beforeAll(async () => {
    api = await fakeKubernetesApi((req, send) => {
      const body = req.body;
      const m = /^\/apis\/argoproj\.io\/v1alpha1\/namespaces\/glimpse\/workflows(?:\/([\w.-]+))?$/.exec(req.path);
      if (req.method === "GET" && req.path === "/apis/argoproj.io/v1alpha1/namespaces/glimpse/workflowtemplates/glimpse-dataset-pipeline") {
        return send(200, { kind: "WorkflowTemplate", metadata: { name: "glimpse-dataset-pipeline", uid: "0b5e7c1e-template-uid" } });
      }
      if (!m) return send(404, { kind: "Status", code: 404 });
      if (req.method === "POST" && !m[1]) {
        const wf = JSON.parse(body) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
        wf["status"] = { phase: "Running", nodes: { a: { displayName: "download", phase: "Running" } } };
        workflows.set(wf["metadata"]["name"], wf);
        return send(201, wf);
      }
      const wf = m[1] ? workflows.get(m[1]) : undefined;
      if (!wf) return send(404, { kind: "Status", code: 404 });
      if (req.method === "GET") return send(200, wf);
      if (req.method === "PATCH") {
        if (refusePatches-- > 0) return send(403, { kind: "Status", code: 403, message: "workflows is forbidden" });
        Object.assign(wf["spec"], (JSON.parse(body) as { spec: object }).spec);
        wf["status"] = { phase: "Failed", message: "Stopped with strategy 'Terminate'" };
        return send(200, wf);
      }
      send(405, { kind: "Status", code: 405 });
    });
    const { kc } = api;
    requests = api.requests;
    const argo = new ArgoClient(kc.makeApiClient(k8s.CustomObjectsApi), { namespace: "glimpse", template: "glimpse-dataset-pipeline", bucket: "glimpse", serviceAccount: "glimpse-workflow" });
    dir = await mkdtemp(join(tmpdir(), "glimpse-argo-runs-"));
    const store = new FsObjectStore(join(dir, "store"), "glimpse", { fsync: false });
    await store.init();
    runs = new PipelineRuns({ store, logger: createLogger("test", "silent"), workRoot: dir, register: async () => {}, argo, pollMs: 20, allow: SourceAllowList.parse(["https:"]) });
  });
  afterAll(async () => {
    await api.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("submits the Workflow, follows it, and on CancelPipelineRun terminates it (a refused patch is retried)", async () => {
    const run = await runs.start(create(data.PipelineParamsSchema, { imagesUrl: "https://example.com/i.zip" }));
    for (let i = 0; i < 200 && (await runs.get(run.runId)).state !== data.RunState.RUNNING; i++) await new Promise((r) => setTimeout(r, 10));
    const running = await runs.get(run.runId);
    expect(running.workflowName).toBe(`glimpse-pipeline-${run.runId}`);
    expect(running.steps[0]!.state).toBe(data.RunState.RUNNING);

    const cancelled = await runs.cancel(run.runId);
    expect(cancelled.state).toBe(data.RunState.CANCELLED);
    expect(workflows.get(running.workflowName)!["spec"]["shutdown"]).toBe("Terminate");

    const patches = requests.filter((r) => r.method === "PATCH");
    expect(patches).toHaveLength(2); // refused once (403), then accepted
    for (const p of patches) {
      expect(p.contentType).toBe("application/merge-patch+json");
      expect(JSON.parse(p.body)).toEqual({ spec: { shutdown: "Terminate" } });
    }
    // create, get and patch on workflows, get on its template, nothing else: what the chart's Role for Data allows.
    const verbs = new Set(requests.map((r) => `${r.method} ${r.path.replace(/\/workflows\/[\w.-]+$/, "/workflows/{name}")}`));
    expect([...verbs].sort()).toEqual([
      "GET /apis/argoproj.io/v1alpha1/namespaces/glimpse/workflows/{name}",
      "GET /apis/argoproj.io/v1alpha1/namespaces/glimpse/workflowtemplates/glimpse-dataset-pipeline",
      "PATCH /apis/argoproj.io/v1alpha1/namespaces/glimpse/workflows/{name}",
      "POST /apis/argoproj.io/v1alpha1/namespaces/glimpse/workflows",
    ]);
    const submitted = JSON.parse(requests.find((r) => r.method === "POST")!.body) as { spec: Record<string, unknown>; metadata: { ownerReferences?: unknown[] } };
    expect(submitted.spec["serviceAccountName"]).toBe("glimpse-workflow");
    // owned by the template: removing it (helm uninstall) garbage-collects the Workflow
    expect(submitted.metadata.ownerReferences).toEqual([{ apiVersion: "argoproj.io/v1alpha1", kind: "WorkflowTemplate", name: "glimpse-dataset-pipeline", uid: "0b5e7c1e-template-uid" }]);
  }, 30_000);
});
