/**
 * Large collection syncs handed to Argo: the Data service plans the sync, writes the plan and
 * submits a Workflow from the collection template (to a Kubernetes API server on a socket; a test
 * controller runs the workflow's steps against the same store, as the pods would); it follows the
 * workflow to the published version, and removes the sync's plan and shards. A small sync stays in
 * the process; a failed workflow fails the sync and leaves the previous version serving; a restarted
 * Data service follows the workflow its predecessor started instead of starting another.
 */
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { create } from "@bufbuild/protobuf";
import { collection as pb } from "@glimpse/api";
import { fakeKubernetesApi, type FakeApi } from "@glimpse/kube/testing";
import { collectionStatusKey, readCollectionPointer, syncsPrefix } from "@glimpse/layout";
import { createLogger } from "@glimpse/logging";
import { FsObjectStore } from "@glimpse/objectstore";
import { ingestShard, publishShards, SourceAllowList } from "@glimpse/pipeline";
import * as k8s from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ArgoClient } from "../argo.js";
import { CollectionManager } from "./manager.js";
import { CollectionWorkflows } from "./workflow.js";

const DEMO = resolve(import.meta.dirname, "../../../../demo/images");
const TEMPLATE = "glimpse-collection-sync";
type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

describe("collection syncs as Argo workflows (GLIMPSE_PIPELINE_EXECUTOR=argo)", () => {
  let api: FakeApi;
  let dir: string;
  let store: FsObjectStore;
  const workflows = new Map<string, Obj>();
  /** What the test controller does with the next workflow: run its steps, or fail it. */
  let outcome: "run" | "fail" | "hold" = "run";
  const allow = SourceAllowList.parse([]);
  const logger = createLogger("test", "silent");

  async function execute(wf: Obj): Promise<void> {
    const p = Object.fromEntries((wf["spec"]["arguments"]["parameters"] as Obj[]).map((x) => [x["name"], x["value"]]));
    if (outcome === "fail") {
      wf["status"] = { phase: "Failed", message: "child 'ingest(0:0)' failed" };
      return;
    }
    if (outcome === "hold") return;
    await Promise.all(Array.from({ length: Number(p["shards"]) }, (_, shard) => ingestShard({ store, allow, collection: p["collection"], sync: p["sync"], shard })));
    await publishShards(store, p["collection"], p["sync"]);
    wf["status"] = { phase: "Succeeded" };
  }

  const manager = (store: FsObjectStore) =>
    new CollectionManager({
      store,
      allow,
      logger,
      relistMs: 3_600_000,
      workflows: new CollectionWorkflows({
        argo: new ArgoClient(api.kc.makeApiClient(k8s.CustomObjectsApi), { namespace: "glimpse", template: "glimpse-dataset-pipeline", bucket: "glimpse", image: "glimpse:0.1.0", storeSecret: "glimpse-object-store", serviceAccount: "glimpse-workflow" }),
        store,
        logger,
        template: TEMPLATE,
        minFiles: 10,
        shards: 2,
        pollMs: 20,
      }),
    });

  async function settled(m: CollectionManager, id: string): Promise<pb.Collection> {
    let last: pb.Collection | undefined;
    for await (const r of m.watch(id, true, AbortSignal.timeout(60_000))) last = r.collection;
    return last!;
  }

  const bucketCollection = create(pb.CollectionSchema, { source: { kind: { case: "bucket", value: { prefix: "shop/" } } } });

  beforeAll(async () => {
    api = await fakeKubernetesApi((req, send) => {
      if (req.method === "GET" && req.path === `/apis/argoproj.io/v1alpha1/namespaces/glimpse/workflowtemplates/${TEMPLATE}`) return send(200, { kind: "WorkflowTemplate", metadata: { name: TEMPLATE, uid: "c011ec71-template-uid" } });
      const m = /^\/apis\/argoproj\.io\/v1alpha1\/namespaces\/glimpse\/workflows(?:\/([\w.-]+))?$/.exec(req.path);
      if (!m) return send(404, { kind: "Status", code: 404 });
      if (req.method === "POST") {
        const wf = JSON.parse(req.body) as Obj;
        wf["status"] = { phase: "Running" };
        workflows.set(wf["metadata"]["name"], wf);
        void execute(wf).catch((err: unknown) => (wf["status"] = { phase: "Error", message: String(err) }));
        return send(201, wf);
      }
      const wf = m[1] ? workflows.get(m[1]) : undefined;
      if (!wf) return send(404, { kind: "Status", code: 404 });
      if (req.method === "GET") return send(200, wf);
      send(405, { kind: "Status", code: 405 });
    });
    dir = await mkdtemp(join(tmpdir(), "glimpse-collection-workflows-"));
    store = new FsObjectStore(join(dir, "store"), "glimpse", { fsync: false });
    await store.init();
    const names = (await readdir(DEMO)).sort();
    for (const n of names.slice(0, 24)) await store.put(`shop/${n}`, await readFile(join(DEMO, n)));
  });
  afterAll(async () => {
    await api.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("hands a large sync's ingest to a workflow, follows it to the published version, and cleans up", async () => {
    const m = manager(store);
    await m.init();
    await m.create("shop", bucketCollection);
    const c = await settled(m, "shop");
    expect(c.state).toBe(pb.Collection_State.READY);
    expect(Number(c.counts!.indexed)).toBe(24);
    expect(c.version).toBe((await readCollectionPointer(store, "shop"))!.version);

    const [wf] = [...workflows.values()];
    expect(wf!["spec"]["workflowTemplateRef"]).toEqual({ name: TEMPLATE });
    expect(wf!["metadata"]["ownerReferences"]).toEqual([{ apiVersion: "argoproj.io/v1alpha1", kind: "WorkflowTemplate", name: TEMPLATE, uid: "c011ec71-template-uid" }]);
    expect(wf!["metadata"]["labels"]).toMatchObject({ "glimpse.dev/collection": "shop" });
    const params = Object.fromEntries((wf!["spec"]["arguments"]["parameters"] as Obj[]).map((x) => [x["name"], x["value"]]));
    expect(params).toMatchObject({ collection: "shop", shards: "2", image: "glimpse:0.1.0", "store-secret": "glimpse-object-store", bucket: "glimpse" });
    const left: string[] = [];
    for await (const o of store.list(syncsPrefix("shop"))) left.push(o.key);
    expect(left).toEqual([]);

    // A few new photos: ingested here, no workflow.
    const names = (await readdir(DEMO)).sort();
    for (const n of names.slice(24, 27)) await store.put(`shop/${n}`, await readFile(join(DEMO, n)));
    const small = await m.sync("shop");
    expect(small).toMatchObject({ changed: true, read: 3, decoded: 3 });
    expect(small!.workflow).toBeUndefined();
    expect(workflows.size).toBe(1);

    // A failed workflow fails the sync; the previous version keeps serving.
    const before = (await readCollectionPointer(store, "shop"))!.version;
    for (const n of names.slice(27, 47)) await store.put(`shop/${n}`, await readFile(join(DEMO, n)));
    outcome = "fail";
    expect(await m.sync("shop")).toBeUndefined();
    const failed = (await m.describe("shop"));
    expect(failed.state).toBe(pb.Collection_State.FAILED);
    expect(failed.error).toMatch(/ingest workflow glimpse-collection-\w+ failed: child 'ingest\(0:0\)' failed/);
    expect((await readCollectionPointer(store, "shop"))!.version).toBe(before);
    await m.close();
  }, 120_000);

  it("a restarted Data service follows the workflow its predecessor started", async () => {
    outcome = "hold";
    const first = manager(store);
    await first.init();
    void first.sync("shop");
    let status: Obj | undefined;
    for (let i = 0; i < 500 && !status?.["workflow"]; i++) {
      await new Promise((r) => setTimeout(r, 20));
      status = JSON.parse((await store.getBuffer(collectionStatusKey("shop")).catch(() => Buffer.from("{}"))).toString()) as Obj;
    }
    expect(status).toMatchObject({ state: "syncing", workflow: expect.stringMatching(/^glimpse-collection-/) });
    // the process stops (a rolling update): its workflow runs on
    await first.close();
    const count = workflows.size;
    expect(workflows.get(status!["workflow"])!["spec"]["shutdown"]).toBeUndefined();

    const second = manager(store);
    await second.init();
    const wf = workflows.get(status!["workflow"])!;
    outcome = "run";
    await execute(wf);
    const c = await settled(second, "shop");
    expect(c.state).toBe(pb.Collection_State.READY);
    expect(Number(c.counts!.indexed)).toBe(47);
    expect(workflows.size).toBe(count); // followed, not submitted again
    await second.close();
  }, 120_000);
});
