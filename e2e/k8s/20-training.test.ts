/**
 * Training as a Kubernetes Job: StartTraining through the gateway creates the Job from the chart's template
 * (GPU request, node selector, tolerations), the real trainer image trains a tiny run on the dataset the
 * pipeline published, mirrors its events to MinIO (WatchTraining streams them), exports, registers and
 * promotes; Ranking hot-swaps to it. Deleting the pod mid-run: the Job's next pod resumes from the
 * checkpoint and the run succeeds. StopTraining deletes the Job.
 */
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { training } from "@glimpse/api";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { NS, RELEASE, WRITE_KEY, env, fetchJson, gatewayUrl, kubectl, kubectlIn, kubectlJson, waitFor } from "./cluster.js";

/**
 * model/configs/tiny_ci.json as a request: a small random-init model that trains at well under a second
 * per epoch on one CPU on the fixture dataset; 200 epochs leave time to delete the pod mid-run.
 */
export const TINY_CONFIG = {
  epochs: 200,
  batch_size: 8,
  learning_rate: 0.003,
  image_encoder: "mobilenet_v3_small",
  overrides: {
    backbone_weights: "none", num_threads: 1, warmup_steps: 10, vocab_min_count: 1, word_dim: 32,
    text_hidden: 64, text_proj_hidden: 128, image_head: "mean", image_hidden: 128,
    text_encoder: "bilstm", max_len: 32, tta_hflip: false, tta_zoom: 0, qb_beta: 0,
  },
  promote: true,
  // the gate compares with production (the demo model, re-evaluated on this dataset's dev split), which a
  // 200-epoch toy does not beat: accept any loss so the hot swap below is exercised
  promotion_margin: -600,
};

const auth = { authorization: `Bearer ${WRITE_KEY}` };

const RUN_ID_LABEL = "glimpse.dev/run-id";

/**
 * What a failed wait on a run leaves to read in CI's log: the events the watch got (and its cuts), the
 * run's pods with their state, the Training and gateway pods' restarts, and the Training pods' last lines.
 */
function diagnose(runId: string, events: { event: string; message: string }[], cuts: string[]): string {
  const lines = [`events watched (${events.length}): ${events.slice(-8).map((e) => `${e.event}: ${e.message}`).join(" | ")}`, `watch cuts: ${cuts.join(" | ") || "none"}`];
  const get = (what: string, f: () => string) => {
    try {
      lines.push(`${what}: ${f()}`);
    } catch (err) {
      lines.push(`${what}: ${(err as Error).message}`);
    }
  };
  type Pod = { metadata: { name: string }; status: { phase: string; containerStatuses?: { restartCount: number; state: Record<string, { reason?: string; message?: string }> }[] } };
  const pods = (selector: string) => (kubectlJson("get", "pods", "-n", NS, "-l", selector).items as Pod[])
    .map((p) => `${p.metadata.name} ${p.status.phase} ${(p.status.containerStatuses ?? []).map((c) => `restarts ${c.restartCount} ${JSON.stringify(c.state)}`).join(", ")}`).join("; ");
  get("the run's pods", () => pods(`${RUN_ID_LABEL}=${runId}`));
  get("Training and gateway pods", () => pods("app.kubernetes.io/component in (training,gateway)"));
  get("Training's last lines", () => kubectl("logs", "-n", NS, "-l", "app.kubernetes.io/component=training", "--tail=20"));
  get("the run's last lines", () => kubectl("logs", "-n", NS, "-l", `${RUN_ID_LABEL}=${runId}`, "--tail=20"));
  get("the namespace's last events", () => kubectl("get", "events", "-n", NS, "--sort-by=.lastTimestamp").split("\n").slice(-15).join("\n"));
  return lines.join("\n");
}

function trainingClient() {
  return createClient(training.TrainingService, createConnectTransport({ baseUrl: gatewayUrl(), httpVersion: "1.1" }));
}

type Promotion = { promoted: boolean; reason: string; metric: string; margin: number; production_version?: string; dataset_version: string };

async function status(runId: string): Promise<{ state: string; model_version?: string; error?: string; epoch?: number; job_name?: string; dataset_version?: string; promotion?: Promotion }> {
  const res = await fetchJson(`${gatewayUrl()}/training/status?run_id=${runId}`);
  expect(res.status).toBe(200);
  return res.body.run;
}

describe("training as a Kubernetes Job", () => {
  let runId = "";
  let jobName = "";
  const events: { event: string; message: string; epoch: number }[] = [];
  let watching: Promise<void> | undefined;
  const watchCuts: string[] = [];
  let watchFailed: Error | undefined;

  it("StartTraining creates the Job from the chart's template with the GPU request, node selector and tolerations", async () => {
    const res = await fetchJson(`${gatewayUrl()}/training/start`, { method: "POST", headers: auth, body: JSON.stringify(TINY_CONFIG) });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    runId = res.body.run.run_id;
    expect(res.body.run.executor).toBe("kubernetes");
    jobName = await waitFor("the run's Job name", async () => (await status(runId)).job_name || undefined, 60_000);
    const job = kubectlJson("get", "job", jobName, "-n", NS);
    const pod = job.spec.template.spec;
    const trainer = pod.containers[0];
    expect(trainer.image).toBe(env("GLIMPSE_E2E_TRAINER_IMAGE"));
    expect(trainer.resources.limits["nvidia.com/gpu"]).toBe("1");
    expect(pod.nodeSelector).toEqual({ "kubernetes.io/hostname": "node-0" });
    expect(pod.tolerations).toContainEqual({ key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" });
    expect(job.metadata.labels[RUN_ID_LABEL]).toBe(runId);

    // WatchTraining through the gateway: the events the trainer mirrors to MinIO, as they come. A watch
    // cut UNAVAILABLE (a connection lost on the way) is watched again, as a client should: it starts with
    // a snapshot of the run, so nothing of its state is lost. Each cut is printed; more than two fail.
    watching = (async () => {
      for (let cuts = 0; ; cuts++) {
        try {
          for await (const m of trainingClient().watchTraining({ runId }, { headers: auth })) events.push({ event: m.event, message: m.message, epoch: m.run?.epoch ?? 0 });
          return;
        } catch (err) {
          const e = ConnectError.from(err);
          watchCuts.push(e.message);
          console.log(`WatchTraining cut after ${events.length} messages: ${e.message}`);
          if (e.code !== Code.Unavailable || cuts >= 2) throw e;
        }
      }
    })();
    watching.catch((err: Error) => (watchFailed = err));
  });

  it("survives the loss of its pod: the Job's next pod resumes from the checkpoint", async () => {
    // after the first epoch's checkpoint is written (and mirrored), kill the pod
    // (a watch that failed for good fails this at once, with its error)
    const epoch1 = await waitFor("epoch 1 done", () => watchFailed ?? (events.some((e) => e.event === "epoch" && e.epoch >= 1) ? true : undefined), 480_000)
      .catch((err: Error) => err);
    if (epoch1 !== true) throw new Error(`${epoch1.message}\n${diagnose(runId, events, watchCuts)}`);
    const pods = kubectlJson("get", "pods", "-n", NS, "-l", `${RUN_ID_LABEL}=${runId}`).items as { metadata: { name: string } }[];
    expect(pods).toHaveLength(1);
    const first = pods[0]!.metadata.name;
    kubectl("delete", "pod", first, "-n", NS, "--wait=false");
    const second = await waitFor("a new pod for the Job", () => {
      const now = kubectlJson("get", "pods", "-n", NS, "-l", `${RUN_ID_LABEL}=${runId}`).items as { metadata: { name: string } }[];
      return now.find((p) => p.metadata.name !== first)?.metadata.name;
    }, 120_000);
    const done = await waitFor("the run to finish", async () => {
      const s = await status(runId);
      return ["TRAINING_STATE_SUCCEEDED", "TRAINING_STATE_FAILED", "TRAINING_STATE_STOPPED"].includes(s.state) ? s : undefined;
    }, 900_000, 3000).catch((err: Error) => {
      throw new Error(`${err.message}\n${diagnose(runId, events, watchCuts)}`);
    });
    expect(done.state, done.error).toBe("TRAINING_STATE_SUCCEEDED");
    expect(done.model_version).toMatch(/^m-[0-9a-f]{16}$/);
    // the second pod resumed: its trainer started from the stored checkpoint
    const log = kubectl("logs", second, "-n", NS);
    expect(log).toMatch(/"event":\s*"start"[^\n]*"resumed":\s*true/);
    await watching;
    expect(events.map((e) => e.event)).toContain("epoch");
    expect(events.at(-1)).toMatchObject({ event: "state", message: expect.stringMatching(/SUCCEEDED/) });
  });

  it("promoted the model past the quality gate and Ranking serves it (hot swap)", async () => {
    const run = await status(runId);
    const version = run.model_version!;
    // the gate compared with the seeded production model, re-evaluated on this run's dataset version
    expect(run.promotion, JSON.stringify(run)).toMatchObject({ promoted: true, metric: "rsum", margin: -600, dataset_version: run.dataset_version });
    expect(run.promotion?.production_version).toMatch(/^m-[0-9a-f]{16}$/);
    await waitFor(`Ranking to serve ${version}`, async () => {
      const s = await fetchJson(`${gatewayUrl()}/model/status`);
      return s.body.serving_version === version ? true : undefined;
    }, 300_000, 2000);
    // two Ranking replicas swap on their own polls: wait until searches answer with the new version
    const hit = await waitFor(`searches answered by ${version}`, async () => {
      const h = await fetchJson(`${gatewayUrl()}/inference/text-to-image`, { method: "POST", body: JSON.stringify({ query: "a dog", top_k: 3 }) });
      return h.status === 200 && h.body.model_version === version ? h : undefined;
    }, 300_000, 2000);
    expect(hit.body.results.length).toBe(3);
  });

  it("places GPU Jobs by the template's scheduling: the kwok GPU pool takes 8, the real node refuses 2", async () => {
    // the chart's Job template, as the Training service reads it, with another pool's scheduling
    const cm = kubectlJson("get", "configmap", `${RELEASE}-training-job`, "-n", NS);
    const job = parse(cm.data["training-job.yaml"] as string) as any; // eslint-disable-line @typescript-eslint/no-explicit-any
    const place = (name: string, gpus: string, pool: Record<string, unknown>) => {
      const j = structuredClone(job);
      j.metadata = { ...j.metadata, name, namespace: NS };
      j.spec.template.spec = { ...j.spec.template.spec, ...pool };
      const c = j.spec.template.spec.containers[0];
      c.command = ["sh", "-c", "true"];
      c.resources.limits["nvidia.com/gpu"] = gpus;
      kubectlIn(JSON.stringify(j), "create", "-f", "-");
    };
    place("gpu-pool-8", "8", { nodeSelector: { type: "kwok" }, tolerations: [{ key: "kwok.x-k8s.io/node", operator: "Exists", effect: "NoSchedule" }, ...job.spec.template.spec.tolerations] });
    place("gpu-node0-2", "2", {});
    try {
      const node = await waitFor("the pool's pod to be scheduled", () => {
        const pods = kubectlJson("get", "pods", "-n", NS, "-l", "job-name=gpu-pool-8").items as { spec: { nodeName?: string } }[];
        return pods[0]?.spec.nodeName;
      }, 120_000);
      expect(node).toBe("kwok-gpu-0");
      const why = await waitFor("the 2-GPU pod to be refused", () => {
        const pods = kubectlJson("get", "pods", "-n", NS, "-l", "job-name=gpu-node0-2").items as { status: { conditions?: { type: string; reason?: string; message?: string }[] } }[];
        return pods[0]?.status.conditions?.find((c) => c.type === "PodScheduled" && c.reason === "Unschedulable")?.message;
      }, 120_000);
      expect(why).toMatch(/Insufficient nvidia\.com\/gpu/);
    } finally {
      kubectl("delete", "job", "gpu-pool-8", "gpu-node0-2", "-n", NS, "--cascade=foreground", "--wait=true");
    }
  });

  it("StopTraining deletes the Job", async () => {
    const res = await fetchJson(`${gatewayUrl()}/training/start`, { method: "POST", headers: auth, body: JSON.stringify({ ...TINY_CONFIG, promote: false, promotion_margin: 0, epochs: 500 }) });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const id = res.body.run.run_id as string;
    const job = await waitFor("the Job", async () => (await status(id)).job_name || undefined, 60_000);
    expect(kubectlJson("get", "job", job, "-n", NS).metadata.name).toBe(job);
    const stop = await fetchJson(`${gatewayUrl()}/training/stop`, { method: "POST", headers: auth, body: JSON.stringify({ run_id: id }) });
    expect(stop.status, JSON.stringify(stop.body)).toBe(200);
    expect(stop.body.run.state).toBe("TRAINING_STATE_STOPPED");
    await waitFor("the Job and its pods to be gone", () => {
      const jobs = kubectlJson("get", "jobs", "-n", NS, "-l", `${RUN_ID_LABEL}=${id}`).items as unknown[];
      const pods = kubectlJson("get", "pods", "-n", NS, "-l", `${RUN_ID_LABEL}=${id}`).items as unknown[];
      return jobs.length === 0 && pods.length === 0 ? true : undefined;
    }, 120_000);
  });
});
