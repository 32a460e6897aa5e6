/**
 * argo/: the manifests are valid against Argo's own CRD schemas (the "full" CRDs from the
 * pinned argo-workflows Go module, fetched by argo/scripts/fetch-crds.sh into .tools/), the
 * DAG is consistent, and running its steps one by one — each in a fresh work dir holding only
 * the artifacts the DAG hands it, as in the cluster — publishes the same version as a local run.
 * The collection sync's template (argo/collection-workflowtemplate.yaml) is checked the same way,
 * short of running its steps (packages/pipeline/src/collections/ runs those).
 */
import { Ajv } from "ajv";
import { spawnSync } from "node:child_process";
import { cp, mkdir, mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { FsObjectStore } from "@glimpse/objectstore";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";
import { EXIT, main } from "./cli.js";
import { collectionMain, COLLECTION_COMMANDS } from "./collections/cli.js";
import { STEPS } from "./events.js";
import { runPipeline } from "./pipeline.js";
import { readPublished } from "./read.js";
import { makeFlickr8kFixture, type Fixture } from "./testing/fixture.js";
import { checkCrd as check, loadArgoCrds, type Crd, type Obj } from "./testing/argo-crds.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const ARGO = join(ROOT, "argo");

/** What Argo v3.7's emissary executor (WorkflowTaskResults) and artifact GC need; argo/rbac.yaml and the chart grant exactly this. */
const WORKFLOW_POD_RULES = [
  { apiGroups: ["argoproj.io"], resources: ["workflowtaskresults"], verbs: ["create", "patch"] },
];

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
      // The stable entry point (packages/pipeline/bin), not a path into the sources or a loader flag.
      expect(c["command"]).toEqual(["node", "packages/pipeline/bin/glimpse-pipeline.mjs"]);
      expect(t["container"]["workingDir"]).toBe("/app");
      // As the chart's pods: read-only root filesystem, with /work and /tmp as emptyDirs.
      expect(c["securityContext"]).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"] } });
      expect(Object.fromEntries((c["volumeMounts"] as Obj[]).map((m) => [m["mountPath"], m["name"]]))).toEqual({ "/work": "work", "/tmp": "tmp" });
      expect(c["args"][0]).toBe(t["name"]);
      expect(c["image"]).toBe("{{workflow.parameters.image}}");
      expect(c["resources"]["requests"]).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) });
      expect(c["resources"]["limits"]["memory"]).toEqual(expect.any(String));
      const r = t["retryStrategy"] as Obj;
      expect(r["backoff"]).toMatchObject({ duration: expect.any(String), factor: expect.anything() });
      expect(r["expression"]).toContain(`asInt(lastRetry.exitCode) == ${EXIT.transient}`);
    }
  });

  it("pods run non-root as the glimpse-workflow ServiceAccount, which argo/rbac.yaml gives exactly what Argo's executor and artifact GC need", async () => {
    const spec = wft["spec"] as Obj;
    expect(spec["securityContext"]).toMatchObject({ runAsNonRoot: true, runAsUser: 10001 });
    for (const v of spec["volumes"] as Obj[]) expect(v["emptyDir"], v["name"]).toEqual({});
    const [sa, role, binding] = parseAllDocuments(await readFile(join(ARGO, "rbac.yaml"), "utf8")).map((d) => d.toJS() as Obj) as [Obj, Obj, Obj];
    expect(spec["serviceAccountName"]).toBe(sa["metadata"]["name"]);
    // No artifact GC: its finalizer can make a Workflow undeletable (argoproj/argo-workflows#10840).
    expect(spec["artifactGC"]).toBeUndefined();
    expect(role["rules"]).toEqual(WORKFLOW_POD_RULES);
    expect(binding).toMatchObject({ roleRef: { kind: "Role", name: role["metadata"]["name"] }, subjects: [{ kind: "ServiceAccount", name: sa["metadata"]["name"] }] });
  });

  it("the upload and sync steps take their Secrets from parameters (the chart passes its own names)", () => {
    const templates = new Map<string, Obj>((wft["spec"]["templates"] as Obj[]).map((t) => [t["name"], t]));
    const env = (step: string): Record<string, Obj> => Object.fromEntries((templates.get(step)?.["container"]["env"] as Obj[]).map((e) => [e["name"], e]));
    const upload = env("upload");
    for (const [name, key] of [["MINIO_ACCESS_KEY", "access-key"], ["MINIO_SECRET_KEY", "secret-key"]]) {
      expect(upload[name as string]?.["valueFrom"]).toEqual({ secretKeyRef: { name: "{{workflow.parameters.store-secret}}", key } });
    }
    // Optional: without the Secret the step sends no key (a mesh without keys).
    expect(env("sync")["GLIMPSE_SYNC_API_KEY"]?.["valueFrom"]).toEqual({ secretKeyRef: { name: "{{workflow.parameters.sync-secret}}", key: "api-key", optional: true } });
    // No other step sees a Secret.
    for (const [name, t] of templates) {
      if (name === "upload" || name === "sync") continue;
      expect(JSON.stringify(t), name).not.toContain("secretKeyRef");
    }
  });

  it("a step's exact command and args run the CLI from the repository root (the image's /app), as a pod would", async () => {
    const spec = wft["spec"] as Obj;
    const tpl = (spec["templates"] as Obj[]).find((t) => t["name"] === "download") as Obj;
    const values: Record<string, string> = Object.fromEntries((spec["arguments"]["parameters"] as Obj[]).map((p) => [p["name"], p["value"] ?? ""]));
    values["images-url"] = pathToFileURL(fx.imagesZip).href;
    values["captions-url"] = pathToFileURL(fx.captionsZip).href;
    const work = join(dir, "command-pod");
    const argsOf = () => (tpl["container"]["args"] as string[])
      .map((a) => a.replace(/\{\{workflow\.parameters\.([\w-]+)\}\}/g, (_, p: string) => values[p] as string))
      .map((a) => (a === "--work-dir=/work" ? `--work-dir=${work}` : a));
    const [cmd, ...cmdArgs] = tpl["container"]["command"] as string[];
    const env = { ...process.env, GLIMPSE_LOG_LEVEL: "warn" };
    // the template's own allow-list (https only) refuses the pod a file:// source: bad input, exit 1
    expect(values["source-allowlist"]).toBe("https:");
    const refused = spawnSync(cmd as string, [...cmdArgs, ...argsOf()], { cwd: ROOT, encoding: "utf8", env, timeout: 60_000 });
    expect(refused.status, refused.stderr).toBe(EXIT.failed);
    expect(refused.stdout + refused.stderr).toContain("file: sources are not allowed here");
    // the Data service passes its own list: here, the fixture's folder
    values["source-allowlist"] = pathToFileURL(dirname(fx.imagesZip)).href;
    const r = spawnSync(cmd as string, [...cmdArgs, ...argsOf()], { cwd: ROOT, encoding: "utf8", env, timeout: 60_000 });
    expect(r.status, r.stderr).toBe(EXIT.ok);
    await stat(join(work, "download", ".done.json"));
    // And a bad flag is a usage error (exit 2), not a crash of the entry point.
    expect(spawnSync(cmd as string, [...cmdArgs, "download", "--no-such-flag"], { cwd: ROOT, encoding: "utf8" }).status).toBe(EXIT.usage);
  }, 90_000);

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
    values["source-allowlist"] = pathToFileURL(dirname(fx.imagesZip)).href;
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

describe("argo collection sync manifest (collection-workflowtemplate.yaml)", () => {
  let crd: Crd;
  let wft: Obj;
  let templates: Map<string, Obj>;

  beforeAll(async () => {
    crd = (await loadArgoCrds(["workflowtemplates"]))["workflowtemplates"]!;
    [wft] = parseAllDocuments(await readFile(join(ARGO, "collection-workflowtemplate.yaml"), "utf8")).map((d) => d.toJS() as Obj) as [Obj];
    templates = new Map<string, Obj>((wft["spec"]["templates"] as Obj[]).map((t) => [t["name"], t]));
  }, 120_000);

  const steps = (): Obj[] => (wft["spec"]["templates"] as Obj[]).filter((t) => t["container"]);

  it("is valid against Argo's WorkflowTemplate CRD schema", () => {
    expect(wft).toMatchObject({ apiVersion: crd.apiVersion, kind: "WorkflowTemplate", metadata: { name: "glimpse-collection-sync" } });
    expect(check(crd, wft)).toEqual([]);
  });

  it("the DAG is consistent: parameters, templates, dependencies, the ingest fan-out", () => {
    const spec = wft["spec"] as Obj;
    expect(templates.has(spec["entrypoint"])).toBe(true);
    const tasks = new Map<string, Obj>(((templates.get(spec["entrypoint"])?.["dag"] as Obj)["tasks"] as Obj[]).map((t) => [t["name"], t]));
    const declared = new Set((spec["arguments"]["parameters"] as Obj[]).map((p) => p["name"] as string));

    // Every workflow parameter used is declared, and every declared one is used.
    const used = new Set(refs(JSON.stringify(spec), /\{\{workflow\.parameters\.([\w-]+)\}\}/g));
    expect([...used].filter((p) => !declared.has(p))).toEqual([]);
    expect([...declared].filter((p) => !used.has(p))).toEqual([]);

    for (const [name, task] of tasks) {
      const tpl = templates.get(task["template"]);
      expect(tpl, `task ${name}: template ${task["template"]}`).toBeDefined();
      for (const d of (task["dependencies"] ?? []) as string[]) expect(tasks.has(d), `task ${name} depends on unknown ${d}`).toBe(true);
      // Each input parameter of its template is passed, and nothing else; the template uses only those.
      const inputs = ((tpl?.["inputs"]?.["parameters"] ?? []) as Obj[]).map((p) => p["name"] as string);
      expect(((task["arguments"]?.["parameters"] ?? []) as Obj[]).map((p) => p["name"]).sort(), `task ${name} parameters`).toEqual([...inputs].sort());
      const usedInputs = new Set(refs(JSON.stringify(tpl), /\{\{inputs\.parameters\.([\w-]+)\}\}/g));
      expect([...usedInputs].filter((p) => !inputs.includes(p)), `template ${task["template"]}`).toEqual([]);
      expect(inputs.filter((p) => !usedInputs.has(p)), `template ${task["template"]}`).toEqual([]);
      // Only the DAG's own fan-out item, no artifacts (everything goes through the object store).
      expect(task["arguments"]?.["artifacts"], name).toBeUndefined();
      expect(tpl?.["outputs"]?.["artifacts"], name).toBeUndefined();
    }
    expect(spec["artifactRepositoryRef"]).toBeUndefined();
    expect(spec["artifactGC"]).toBeUndefined();
    // ingest × shards (shard = the sequence item 0…shards-1), then publish once they all succeeded.
    const ingest = [...tasks.values()].find((t) => t["template"] === "collection-ingest")!;
    const publish = [...tasks.values()].find((t) => t["template"] === "collection-publish")!;
    expect(ingest["withSequence"]).toEqual({ count: "{{workflow.parameters.shards}}" });
    expect(ingest["arguments"]["parameters"]).toEqual([{ name: "shard", value: "{{item}}" }]);
    expect(ingest["dependencies"] ?? []).toEqual([]);
    expect(publish["dependencies"]).toEqual([ingest["name"]]);
    expect(publish["withSequence"] ?? publish["withItems"] ?? publish["withParam"]).toBeUndefined();
    expect([...tasks.values()].map((t) => t["template"]).sort()).toEqual([...COLLECTION_COMMANDS].sort());
  });

  it("each step runs the pipeline CLI's collection sub-command of its name, through the stable entry point, as the dataset steps do", async () => {
    expect(steps().map((t) => t["name"]).sort()).toEqual([...COLLECTION_COMMANDS].sort());
    const [sa] = parseAllDocuments(await readFile(join(ARGO, "rbac.yaml"), "utf8")).map((d) => d.toJS() as Obj) as [Obj];
    expect(wft["spec"]["serviceAccountName"]).toBe(sa["metadata"]["name"]);
    expect(wft["spec"]["securityContext"]).toMatchObject({ runAsNonRoot: true, runAsUser: 10001 });
    for (const v of wft["spec"]["volumes"] as Obj[]) expect(v["emptyDir"], v["name"]).toEqual({});
    for (const t of steps()) {
      const c = t["container"] as Obj;
      expect(c["command"]).toEqual(["node", "packages/pipeline/bin/glimpse-pipeline.mjs"]);
      expect(c["workingDir"]).toBe("/app");
      expect(c["image"]).toBe("{{workflow.parameters.image}}");
      expect(c["args"][0]).toBe(t["name"]);
      expect(COLLECTION_COMMANDS).toContain(c["args"][0]);
      expect(c["securityContext"]).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"] } });
      expect(c["resources"]["requests"]).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) });
      expect(c["resources"]["limits"]["memory"]).toEqual(expect.any(String));
      expect(t["retryStrategy"]["expression"]).toContain(`asInt(lastRetry.exitCode) == ${EXIT.transient}`);
      // The object store from the parameters, its keys from the store-secret Secret.
      const env = Object.fromEntries((c["env"] as Obj[]).map((e) => [e["name"], e]));
      expect(env["MINIO_ENDPOINT"]?.["value"]).toBe("{{workflow.parameters.minio-endpoint}}");
      expect(env["MINIO_BUCKET"]?.["value"]).toBe("{{workflow.parameters.bucket}}");
      for (const [name, key] of [["MINIO_ACCESS_KEY", "access-key"], ["MINIO_SECRET_KEY", "secret-key"]]) {
        expect(env[name as string]?.["valueFrom"]).toEqual({ secretKeyRef: { name: "{{workflow.parameters.store-secret}}", key } });
      }
    }
  });

  it("each step's args are flags the collection CLI accepts (its OPTIONS), and pass its parsing once Argo fills them in", async () => {
    // The CLI's own option table (packages/pipeline/src/collections/cli.ts).
    const source = await readFile(join(ROOT, "packages/pipeline/src/collections/cli.ts"), "utf8");
    const block = /const OPTIONS = \{([\s\S]*?)\n\} as const;/.exec(source)?.[1];
    expect(block, "OPTIONS in collections/cli.ts").toBeDefined();
    const accepted = new Set([...block!.matchAll(/^\s*"?([\w-]+)"?\s*:\s*\{/gm)].map((m) => m[1] as string));
    expect(accepted).toContain("collection");
    const fill: Record<string, string> = { "{{workflow.parameters.collection}}": "holiday", "{{workflow.parameters.sync}}": "abc123", "{{inputs.parameters.shard}}": "0", "{{workflow.parameters.source-allowlist}}": "https:" };
    const savedLevel = process.env["GLIMPSE_LOG_LEVEL"];
    process.env["GLIMPSE_LOG_LEVEL"] = "silent";
    try {
      for (const t of steps()) {
        const [command, ...args] = t["container"]["args"] as string[];
        for (const a of args) {
          const m = /^--([\w-]+)=(.*)$/.exec(a);
          expect(m, `${command}: ${a} is --flag=value`).not.toBeNull();
          expect(accepted.has(m![1]!), `${command}: --${m![1]} is not among the CLI's options ${[...accepted].join(", ")}`).toBe(true);
          expect(m![2], `${command} ${a}: a parameter`).toMatch(/^\{\{(workflow|inputs)\.parameters\.[\w-]+\}\}$/);
        }
        // Filled in as Argo would, the args pass the CLI's parsing and checks (no usage error, exit 2):
        // it gets as far as opening the object store, which this test refuses (nothing runs).
        let opened: Obj | undefined;
        const code = await collectionMain(command as (typeof COLLECTION_COMMANDS)[number], args.map((a) => a.replace(/\{\{[^}]+\}\}/g, (p) => fill[p] ?? p)), (v) => {
          opened = v;
          throw new Error("not opening a store here");
        });
        expect(opened, `${command} ${args.join(" ")}: refused before opening the store`).toBeDefined();
        expect(code).toBe(EXIT.failed);
      }
    } finally {
      if (savedLevel === undefined) delete process.env["GLIMPSE_LOG_LEVEL"];
      else process.env["GLIMPSE_LOG_LEVEL"] = savedLevel;
    }
  });
});
