/**
 * argo/: the manifests are valid against Argo's own CRD schemas (the "full" CRDs from the
 * pinned argo-workflows Go module, fetched by argo/scripts/fetch-crds.sh into .tools/), the
 * DAG is consistent, and running its steps one by one — each in a fresh work dir holding only
 * the artifacts the DAG hands it, as in the cluster — publishes the same version as a local run.
 */
import { Ajv } from "ajv";
import { cp, mkdir, mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { FsObjectStore } from "@glimpse/objectstore";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";
import { EXIT, main } from "./cli.js";
import { STEPS } from "./events.js";
import { runPipeline } from "./pipeline.js";
import { readPublished } from "./read.js";
import { makeFlickr8kFixture, type Fixture } from "./testing/fixture.js";
import { checkCrd as check, loadArgoCrds, type Crd, type Obj } from "./testing/argo-crds.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const ARGO = join(ROOT, "argo");

const refs = (text: string, re: RegExp): string[] => [...text.matchAll(re)].map((m) => m[1] as string);

describe("argo manifests", () => {
  let crds: { wft: Crd; cron: Crd };
  let wft: Obj;
  let cron: Obj;
  let cm: Obj;
  let dir: string;
  let fx: Fixture;

  beforeAll(async () => {
    const all = await loadArgoCrds(["workflowtemplates", "cronworkflows"]);
    crds = { wft: all["workflowtemplates"]!, cron: all["cronworkflows"]! };
    const load = async (f: string): Promise<Obj[]> => parseAllDocuments(await readFile(join(ARGO, f), "utf8")).map((d) => d.toJS() as Obj);
    [wft] = (await load("workflowtemplate.yaml")) as [Obj];
    [cron] = (await load("cronworkflow.yaml")) as [Obj];
    [cm] = (await load("artifact-repositories.yaml")) as [Obj];
    dir = await mkdtemp(join(tmpdir(), "glimpse-argo-"));
    fx = await makeFlickr8kFixture(join(dir, "fx"));
  }, 120_000);
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it("the WorkflowTemplate and CronWorkflow are valid against Argo's CRD schemas", () => {
    expect(check(crds.wft, wft)).toEqual([]);
    expect(check(crds.cron, cron)).toEqual([]);
    // The strict check does catch mistakes.
    const broken = structuredClone(wft);
    broken["spec"]["templates"][1]["retryStrategy"]["backof"] = {};
    broken["spec"]["templates"][1]["container"]["resources"]["requests"]["cpu"] = { cores: 2 };
    const errs = check(crds.wft, broken).join("\n");
    expect(errs).toMatch(/retryStrategy must NOT have additional properties .*backof/);
    expect(errs).toMatch(/requests\/cpu must match a schema in anyOf/);
  });

  it("the DAG is consistent: templates, dependencies, artifacts and parameters", () => {
    const spec = wft["spec"] as Obj;
    const templates = new Map<string, Obj>((spec["templates"] as Obj[]).map((t) => [t["name"], t]));
    expect(templates.has(spec["entrypoint"])).toBe(true);
    const dag = templates.get(spec["entrypoint"])?.["dag"] as Obj;
    const tasks = new Map<string, Obj>((dag["tasks"] as Obj[]).map((t) => [t["name"], t]));
    const declared = new Set((spec["arguments"]["parameters"] as Obj[]).map((p) => p["name"] as string));

    // Every parameter used is declared, and every declared one is used.
    const text = JSON.stringify(spec);
    const used = new Set(refs(text, /\{\{workflow\.parameters\.([\w-]+)\}\}/g));
    expect([...used].filter((p) => !declared.has(p))).toEqual([]);
    expect([...declared].filter((p) => !used.has(p))).toEqual([]);

    for (const [name, task] of tasks) {
      const tpl = templates.get(task["template"]);
      expect(tpl, `task ${name}: template ${task["template"]}`).toBeDefined();
      const deps = (task["dependencies"] ?? []) as string[];
      for (const d of deps) expect(tasks.has(d), `task ${name} depends on unknown ${d}`).toBe(true);
      // Artifacts: each input is supplied, from an output of a task it depends on.
      const inputs = ((tpl?.["inputs"]?.["artifacts"] ?? []) as Obj[]).map((a) => a["name"]);
      const given = (task["arguments"]?.["artifacts"] ?? []) as Obj[];
      expect(given.map((a) => a["name"]).sort(), `task ${name} artifacts`).toEqual([...inputs].sort());
      for (const a of given) {
        const m = /^\{\{tasks\.([\w-]+)\.outputs\.artifacts\.([\w-]+)\}\}$/.exec(a["from"]);
        expect(m, `task ${name}: ${a["from"]}`).not.toBeNull();
        const [, from, art] = m as RegExpExecArray;
        expect(deps, `task ${name} uses ${from} without depending on it`).toContain(from);
        const outs = ((templates.get(tasks.get(from as string)?.["template"])?.["outputs"]?.["artifacts"] ?? []) as Obj[]).map((o) => o["name"]);
        expect(outs, `task ${from} has no output artifact ${art}`).toContain(art);
      }
    }
    // No cycles: a topological order exists.
    const order: string[] = [];
    const seen = new Set<string>();
    const visit = (n: string, path: string[]): void => {
      if (path.includes(n)) throw new Error(`cycle ${[...path, n].join(" → ")}`);
      if (seen.has(n)) return;
      for (const d of (tasks.get(n)?.["dependencies"] ?? []) as string[]) visit(d, [...path, n]);
      seen.add(n);
      order.push(n);
    };
    for (const n of tasks.keys()) visit(n, []);
    expect(order).toEqual([...STEPS]);
    // The DAG output names the published version.
    expect(JSON.stringify(templates.get("pipeline")?.["outputs"])).toContain("{{tasks.upload.outputs.parameters.version}}");
  });

  it("each step runs the CLI sub-command of its name, with retries on transient failures and resource requests", () => {
    const templates = (wft["spec"]["templates"] as Obj[]).filter((t) => t["container"]);
    expect(templates.map((t) => t["name"])).toEqual([...STEPS]);
    for (const t of templates) {
      const c = t["container"] as Obj;
      expect(c["command"]).toEqual(["node", "--import", "tsx", "packages/pipeline/src/cli.ts"]);
      expect(c["args"][0]).toBe(t["name"]);
      expect(c["image"]).toBe("{{workflow.parameters.image}}");
      expect(c["resources"]["requests"]).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) });
      expect(c["resources"]["limits"]["memory"]).toEqual(expect.any(String));
      const r = t["retryStrategy"] as Obj;
      expect(r["backoff"]).toMatchObject({ duration: expect.any(String), factor: expect.anything() });
      expect(r["expression"]).toContain(`asInt(lastRetry.exitCode) == ${EXIT.transient}`);
    }
  });

  it("the artifact repository is MinIO, in a versioned key of the artifact-repositories ConfigMap", () => {
    expect(cm).toMatchObject({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "artifact-repositories" } });
    const key = cm["metadata"]["annotations"]["workflows.argoproj.io/default-artifact-repository"] as string;
    expect(key).toMatch(/-v\d+$/);
    expect(wft["spec"]["artifactRepositoryRef"]).toEqual({ configMap: "artifact-repositories", key });
    const repo = parse(cm["data"][key] as string) as Obj;
    expect(Object.keys(repo).sort()).toEqual(["archiveLogs", "s3"]);
    expect(repo["s3"]).toMatchObject({ endpoint: expect.stringMatching(/minio/), bucket: expect.any(String), keyFormat: expect.stringContaining("{{workflow.name}}") });
    // Its s3 block is an S3 artifact location as Argo's schema defines it (keyFormat aside).
    const artSchema = crds.wft.schema["properties"]["spec"]["properties"]["templates"]["items"]["properties"]["outputs"]["properties"]["artifacts"]["items"]["properties"]["s3"];
    const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
    const { keyFormat: _k, ...s3 } = repo["s3"] as Obj;
    const ok = ajv.validate(artSchema, { ...s3, key: "x" });
    expect(ajv.errors ?? [], JSON.stringify(ajv.errors)).toEqual([]);
    expect(ok).toBe(true);
  });

  it("running the DAG's steps with only the artifacts it passes publishes what a local run publishes", async () => {
    const spec = wft["spec"] as Obj;
    const values: Record<string, string> = Object.fromEntries((spec["arguments"]["parameters"] as Obj[]).map((p) => [p["name"], p["value"] ?? ""]));
    values["images-url"] = pathToFileURL(fx.imagesZip).href;
    values["captions-url"] = pathToFileURL(fx.captionsZip).href;
    values["bucket"] = "argo-sim";
    const subst = (s: string): string => s.replace(/\{\{workflow\.parameters\.([\w-]+)\}\}/g, (_, p: string) => values[p] as string);
    const templates = new Map<string, Obj>((spec["templates"] as Obj[]).map((t) => [t["name"], t]));
    const tasks = templates.get(spec["entrypoint"])?.["dag"]["tasks"] as Obj[];
    const storeRoot = join(dir, "store");
    const workOf = (task: string): string => join(dir, "pods", task);
    const local = (podPath: string, task: string): string => join(workOf(task), podPath.replace(/^\/work\/?/, ""));

    const savedEnv = { ...process.env };
    process.env["GLIMPSE_LOG_LEVEL"] = "silent";
    try {
      for (const task of tasks) {
        const tpl = templates.get(task["template"]) as Obj;
        await mkdir(workOf(task["name"]), { recursive: true });
        // Input artifacts: copied from the producing task's output path (nothing else is shared).
        for (const a of (task["arguments"]?.["artifacts"] ?? []) as Obj[]) {
          const [, from, art] = /^\{\{tasks\.([\w-]+)\.outputs\.artifacts\.([\w-]+)\}\}$/.exec(a["from"]) as RegExpExecArray;
          const out = (templates.get(from as string)?.["outputs"]["artifacts"] as Obj[]).find((o) => o["name"] === art) as Obj;
          const inp = (tpl["inputs"]["artifacts"] as Obj[]).find((i) => i["name"] === a["name"]) as Obj;
          const dest = local(inp["path"], task["name"]);
          await mkdir(dirname(dest), { recursive: true });
          await cp(local(out["path"], from as string), dest, { recursive: true });
        }
        for (const e of (tpl["container"]["env"] ?? []) as Obj[]) if (e["value"] !== undefined) process.env[e["name"]] = subst(e["value"]);
        const args = (tpl["container"]["args"] as string[]).map(subst).map((a) => (a === "--work-dir=/work" ? `--work-dir=${workOf(task["name"])}` : a));
        if (task["name"] === "upload") args.push("--store=fs", `--store-root=${storeRoot}`);
        process.env["GLIMPSE_LOG_LEVEL"] = "silent";
        const code = await main(args);
        expect(code, `step ${task["name"]} (${args.join(" ")})`).toBe(EXIT.ok);
        for (const o of (tpl["outputs"]?.["artifacts"] ?? []) as Obj[]) await stat(local(o["path"], task["name"])); // every declared output exists
      }
    } finally {
      process.env = savedEnv;
    }
    const store = new FsObjectStore(storeRoot, "argo-sim", { fsync: false });
    const published = await readPublished(store, "flickr8k");
    expect(await readFile(join(workOf("upload"), "upload", "version"), "utf8")).toBe(published.version);

    const localStore = new FsObjectStore(join(dir, "local-store"), "glimpse", { fsync: false });
    const r = await runPipeline({ imagesUrl: values["images-url"], captionsUrl: values["captions-url"] }, { store: localStore, workDir: join(dir, "local-work") });
    expect(r.version).toBe(published.version);
  });
});
