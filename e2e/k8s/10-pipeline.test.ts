/**
 * The dataset pipeline on Argo Workflows: the Data service (Argo executor, as the chart configures it)
 * runs the WorkflowTemplate on a small Flickr8K-format fixture served over HTTP inside the cluster; every
 * step runs as a pod, the version is published to MinIO and registered through the gateway; cancel
 * terminates the Workflow.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeFlickr8kFixture, type Fixture } from "@glimpse/pipeline/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FIXTURE_SOURCE, NS, WRITE_KEY, fetchJson, gatewayUrl, kubectl, kubectlJson, serveFiles, unreadyPods, waitFor } from "./cluster.js";

const auth = { authorization: `Bearer ${WRITE_KEY}` };
const FINISHED = ["RUN_STATE_SUCCEEDED", "RUN_STATE_FAILED", "RUN_STATE_CANCELLED", "RUN_STATE_SKIPPED"];

/** The fixture archives, from a ConfigMap, served inside the cluster. */
function serveFixture(fx: Fixture): string {
  kubectl("delete", "configmap", "flickr8k-fixture", "-n", NS, "--ignore-not-found");
  kubectl("create", "configmap", "flickr8k-fixture", "-n", NS, `--from-file=${fx.imagesZip}`, `--from-file=${fx.captionsZip}`);
  serveFiles("fixture-server", { configMap: { name: "flickr8k-fixture" } });
  return FIXTURE_SOURCE;
}

async function runOf(runId: string): Promise<{ state: string; error?: string; dataset_version?: string; workflow_name?: string; executor?: string; steps?: { step: string; state: string }[] }> {
  const res = await fetchJson(`${gatewayUrl()}/data/run?run_id=${runId}`);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.run;
}

describe("the dataset pipeline on Argo Workflows", () => {
  let fx: Fixture;
  let source = "";

  beforeAll(async () => {
    fx = await makeFlickr8kFixture(mkdtempSync(join(tmpdir(), "glimpse-e2e-fixture-")));
    source = serveFixture(fx);
  });
  afterAll(() => {
    // the fixture server is the test's, not the release's: gone before helm uninstall is checked
    kubectl("delete", "deployment/fixture-server", "service/fixture-server", "configmap/flickr8k-fixture", "-n", NS, "--ignore-not-found", "--wait=true");
  });

  it("runs every step as a pod, publishes the version to MinIO and registers it", async () => {
    const start = await fetchJson(`${gatewayUrl()}/data/download`, {
      method: "POST", headers: auth,
      body: JSON.stringify({ images_url: `${source}/Flickr8k_Dataset.zip`, captions_url: `${source}/Flickr8k_text.zip` }),
    });
    expect(start.status, JSON.stringify(start.body)).toBe(200);
    const runId = start.body.run.run_id as string;
    expect(start.body.run.executor).toBe("argo");
    const run = await waitFor("the pipeline run to finish", async () => {
      const r = await runOf(runId);
      return FINISHED.includes(r.state) ? r : undefined;
    }, 900_000, 3000);
    const wf = kubectlJson("get", "workflow", run.workflow_name!, "-n", NS);
    expect(run.state, `${run.error ?? ""}\n${JSON.stringify(wf.status?.nodes ?? {}, null, 1).slice(0, 4000)}`).toBe("RUN_STATE_SUCCEEDED");
    expect(wf.status.phase).toBe("Succeeded");
    // one pod per step, each Succeeded
    const podNodes = Object.values(wf.status.nodes as Record<string, { type: string; phase: string; displayName: string }>).filter((n) => n.type === "Pod");
    // (a step with a retry strategy runs its pods as "<step>(<attempt>)")
    expect(podNodes.map((n) => n.displayName.replace(/\(\d+\)$/, "")).sort()).toEqual(["download", "extract", "process", "split", "sync", "upload", "validate"]);
    expect(podNodes.every((n) => n.phase === "Succeeded")).toBe(true);
    // published and registered: the Data service lists it as the latest version, with the fixture's counts
    const version = run.dataset_version!;
    expect(version).toMatch(/^[0-9a-f]{16}$/);
    const info = await fetchJson(`${gatewayUrl()}/data/info?dataset=flickr8k&version=${version}`);
    expect(info.status, JSON.stringify(info.body)).toBe(200);
    const v = info.body.version;
    expect(v.version).toBe(version);
    expect(v.latest).toBe(true);
    expect([Number(v.image_count), Number(v.caption_count)]).toEqual([fx.expected.images, fx.expected.captions]);
    const split = (name: string) => Number(v.splits.find((x: { split?: string }) => x.split === name)?.images);
    expect([split("SPLIT_TRAIN"), split("SPLIT_DEV"), split("SPLIT_TEST")]).toEqual([fx.expected.train, fx.expected.dev, fx.expected.test]);
    const versions = await fetchJson(`${gatewayUrl()}/data/versions?dataset=flickr8k`);
    expect(JSON.stringify(versions.body)).toContain(version);
  });

  it("cancel terminates the Workflow", async () => {
    const start = await fetchJson(`${gatewayUrl()}/data/download`, {
      method: "POST", headers: auth,
      body: JSON.stringify({ images_url: `${source}/Flickr8k_Dataset.zip`, captions_url: `${source}/Flickr8k_text.zip`, dataset_size: "DATASET_SIZE_SAMPLE", sample_ratio: 0.5, seed: 7 }),
    });
    expect(start.status, JSON.stringify(start.body)).toBe(200);
    const runId = start.body.run.run_id as string;
    const name = await waitFor("the Workflow", async () => (await runOf(runId)).workflow_name || undefined, 60_000);
    await waitFor("the Workflow to run", () => (kubectlJson("get", "workflow", name, "-n", NS).status?.phase === "Running" ? true : undefined), 120_000);
    const cancel = await fetchJson(`${gatewayUrl()}/data/cancel`, { method: "POST", headers: auth, body: JSON.stringify({ run_id: runId }) });
    expect(cancel.status, JSON.stringify(cancel.body)).toBe(200);
    const phase = await waitFor("the Workflow to stop", () => {
      const p = kubectlJson("get", "workflow", name, "-n", NS).status?.phase as string | undefined;
      return p === "Failed" || p === "Error" ? p : undefined;
    }, 180_000);
    expect(phase).toBe("Failed");
    // the Data service sees the Workflow stop at its next poll
    const final = await waitFor("the run to end", async () => {
      const r = await runOf(runId);
      return FINISHED.includes(r.state) ? r.state : undefined;
    }, 60_000);
    expect(final).toBe("RUN_STATE_CANCELLED");
    await waitFor("the Workflow's pods to stop", () => {
      const pods = kubectlJson("get", "pods", "-n", NS, "-l", `workflows.argoproj.io/workflow=${name}`).items as { status: { phase: string } }[];
      return pods.every((p) => p.status.phase !== "Running" && p.status.phase !== "Pending") ? true : undefined;
    }, 180_000);
    expect(unreadyPods().filter((p) => !p.startsWith("fixture-server"))).toEqual([]);
  });
});
