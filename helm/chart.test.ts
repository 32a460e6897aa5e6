import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { validateK8s as validate } from "@glimpse/kube/validate";
import { checkCrd, loadArgoCrds, type Crd } from "@glimpse/pipeline/testing";
import { REST_ROUTES } from "@glimpse/rpc";
import { schema as configSchema } from "@glimpse/runtime";
import { parse, parseAllDocuments } from "yaml";
import { beforeAll, describe, expect, it } from "vitest";

const ROOT = new URL("..", import.meta.url).pathname;
const HELM = join(ROOT, ".tools/bin/helm");
const CHART = join(ROOT, "helm/glimpse");
const K8S_MANIFEST = join(ROOT, "k8s/glimpse.yaml");
/** The values k8s/glimpse.yaml is rendered with (`npm run k8s:render`). */
export const PLAIN_MANIFEST_ARGS = ["--namespace", "glimpse", "--set", "auth.apiKeys={change-me-write-key}", "--set", "objectStore.secretKey=change-me-minio-secret-key", "--set", "data.collections.notifications.apiKey=change-me-storage-events-key"];

type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> }; [k: string]: any }; // eslint-disable-line @typescript-eslint/no-explicit-any
function typeOf(obj: Obj): string {
  const version = obj.apiVersion.split("/").pop()!;
  return `${version.charAt(0).toUpperCase()}${version.slice(1)}${obj.kind}`;
}

function renderText(valuesFile: string, ...extra: string[]): string {
  return execFileSync(HELM, ["template", "glimpse", CHART, "-f", valuesFile, "--namespace", "glimpse", ...extra], { encoding: "utf8" });
}
function render(valuesFile: string, ...extra: string[]): Obj[] {
  return parseAllDocuments(renderText(valuesFile, ...extra)).map((d) => d.toJS() as Obj).filter(Boolean);
}

const scenarios = readdirSync(join(CHART, "ci")).filter((f) => f.endsWith("-values.yaml"));

describe("helm chart", () => {
  it("has the helm binary (scripts/install-tools.sh)", () => {
    expect(existsSync(HELM)).toBe(true);
  });

  it.each(scenarios)("lints strictly with %s", (file) => {
    execFileSync(HELM, ["lint", "--strict", CHART, "-f", join(CHART, "ci", file)], { encoding: "utf8" });
  });

  let wftCrd: Crd;
  beforeAll(async () => {
    wftCrd = (await loadArgoCrds(["workflowtemplates"]))["workflowtemplates"]!;
  }, 300_000);

  it.each(scenarios)("renders valid Kubernetes objects with %s", (file) => {
    const objects = render(join(CHART, "ci", file));
    const errors: string[] = [];
    for (const obj of objects) {
      // Argo's objects against Argo's own CRD schemas (strict, as kubectl --validate=strict).
      if (obj.apiVersion.startsWith("argoproj.io/")) {
        expect(obj.kind).toBe("WorkflowTemplate");
        errors.push(...checkCrd(wftCrd, obj).map((e) => `${obj.kind}/${obj.metadata.name}: ${e}`));
        continue;
      }
      validate(obj, typeOf(obj), `${obj.kind}/${obj.metadata.name}`, errors);
      // The Job templates the Training service (runs) and Ranking (index Jobs) fill in are API objects too.
      for (const file of ["training-job.yaml", "index-job.yaml"]) {
        if (obj.kind === "ConfigMap" && typeof (obj as { data?: Record<string, string> }).data?.[file] === "string") {
          const job = parseAllDocuments((obj as unknown as { data: Record<string, string> }).data[file]!)[0]!.toJS() as Obj;
          validate(job, "V1Job", file, errors);
        }
      }
    }
    expect(errors).toEqual([]);
    const kinds = new Set(objects.map((o) => `${o.kind}/${o.metadata.name}`));
    for (const c of ["gateway", "ranking", "training", "data"]) {
      expect(kinds.has(`Deployment/glimpse-${c}`)).toBe(true);
      expect(kinds.has(`Service/glimpse-${c}`)).toBe(true);
    }
  });

  it("rejects values outside the schema", () => {
    expect(() => execFileSync(HELM, ["template", "glimpse", CHART, "--set", "gateway.prot=1"], { stdio: "pipe" })).toThrow(/additional properties|prot/);
    expect(() => execFileSync(HELM, ["template", "glimpse", CHART, "--set", "data.sourceAllowlist={ftp://x}"], { stdio: "pipe" })).toThrow(/sourceAllowlist\/0/);
    expect(() => execFileSync(HELM, ["template", "glimpse", CHART, "--set", "tls.enabled=true"], { stdio: "pipe" })).toThrow(/tls\/secretName|tls\.secretName is required/);
    expect(() => execFileSync(HELM, ["template", "glimpse", CHART, "--set", "ranking.indexExecutor=argo"], { stdio: "pipe" })).toThrow(/indexExecutor/);
    expect(() => execFileSync(HELM, ["template", "glimpse", CHART, "--set", "ranking.indexJob.parallelism=0"], { stdio: "pipe" })).toThrow(/indexJob\/parallelism/);
    expect(() => execFileSync(HELM, ["template", "glimpse", CHART, "--set", "data.collections.workflow.shards=65"], { stdio: "pipe" })).toThrow(/workflow\/shards/);
    expect(() => execFileSync(HELM, ["template", "glimpse", CHART, "--set", "data.collections.workflow.minFiles=0"], { stdio: "pipe" })).toThrow(/workflow\/minFiles/);
    expect(() => execFileSync(HELM, ["template", "glimpse", CHART, "--set", "data.argo.stepResources.collection-ingst.requests.cpu=1"], { stdio: "pipe" })).toThrow(/collection-ingst/);
  });

  it("keeps the plain manifests in k8s/ in step with the chart", () => {
    const fresh = execFileSync(HELM, ["template", "glimpse", CHART, ...PLAIN_MANIFEST_ARGS], { encoding: "utf8" });
    expect(readFileSync(K8S_MANIFEST, "utf8"), "run `npm run k8s:render`").toBe(fresh);
  });
});

const ARGO_DIR = join(ROOT, "argo");
const ARGO_VALUES = join(CHART, "ci", "argo-values.yaml");
const yamlDocs = (file: string): Obj[] => parseAllDocuments(readFileSync(file, "utf8")).map((d) => d.toJS() as Obj);
const find = (objects: Obj[], kind: string, name: string, namespace?: string): Obj | undefined =>
  objects.find((o) => o.kind === kind && o.metadata.name === name && (namespace === undefined || (o.metadata.namespace ?? "glimpse") === namespace));
const configOf = (objects: Obj[]): Record<string, string> => find(objects, "ConfigMap", "glimpse-config")!["data"];
const paramsOf = (wft: Obj): Record<string, string> => Object.fromEntries((wft["spec"]["arguments"]["parameters"] as Obj[]).map((p) => [p["name"], p["value"]]));
/** The WorkflowTemplates the chart installs: the dataset pipeline's and the collection sync's (argo/, copies in files/). */
const TEMPLATE_FILES = ["workflowtemplate.yaml", "collection-workflowtemplate.yaml"] as const;
const stepsOf = (wft: Obj): string[] => (wft["spec"]["templates"] as Obj[]).filter((t) => t["container"]).map((t) => t["name"] as string);

describe("helm chart: the Argo executor (data.argo.enabled)", () => {
  it.each(TEMPLATE_FILES)("installs argo/%s itself: its copy in files/ is identical", (file) => {
    expect(readFileSync(join(CHART, "files", file), "utf8"), `run \`cp argo/${file} helm/glimpse/files/\``).toBe(readFileSync(join(ARGO_DIR, file), "utf8"));
  });

  it.each(TEMPLATE_FILES)("renders %s with only the release's names in it: namespace, labels, ServiceAccount, parameter defaults, pull policy", (file) => {
    const text = renderText(ARGO_VALUES);
    const objects = parseAllDocuments(text).map((d) => d.toJS() as Obj).filter(Boolean);
    // both templates, each once
    expect(objects.filter((o) => o.kind === "WorkflowTemplate").map((o) => o.metadata.name)).toEqual(TEMPLATE_FILES.map((f) => yamlDocs(join(ARGO_DIR, f))[0]!.metadata.name));
    const expected = yamlDocs(join(ARGO_DIR, file))[0]!;
    const rendered = find(objects, "WorkflowTemplate", expected.metadata.name)!;
    expected.metadata.namespace = "glimpse";
    expected.metadata.labels = { ...expected.metadata.labels, ...rendered.metadata.labels };
    expected["spec"]["serviceAccountName"] = "glimpse-workflow";
    const defaults: Record<string, string> = {
      image: "glimpse:0.1.0",
      bucket: "glimpse",
      "minio-endpoint": "http://glimpse-minio.glimpse.svc:9000",
      "store-secret": "glimpse-object-store",
      "sync-url": "http://glimpse-gateway.glimpse.svc:8000/data/register",
      "sync-secret": "glimpse-pipeline-key",
    };
    // (only the parameters the file declares: the collection template has no sync step)
    for (const p of expected["spec"]["arguments"]["parameters"] as Obj[]) if (p["name"] in defaults) p["value"] = defaults[p["name"]];
    for (const t of expected["spec"]["templates"] as Obj[]) if (t["container"]) t["container"]["imagePullPolicy"] = "IfNotPresent";
    expect(rendered).toEqual(expected);
    expect(rendered.metadata.labels).toMatchObject({ "app.kubernetes.io/managed-by": "Helm", "app.kubernetes.io/instance": "glimpse" });
    // Helm's fromYaml/toYaml round trip kept integers integers (no 1.2096e+06 for the API server to refuse).
    expect(text).not.toMatch(/:\s*-?\d+(\.\d+)?e[+-]\d+\s*$/m);
  });

  it.each(["argo-values.yaml", "argo-namespace-values.yaml"])("ties the Workflow side together with %s: template, artifact repository, Secrets, ServiceAccount, Data's config", (file) => {
    const objects = render(join(CHART, "ci", file));
    const values = parse(readFileSync(join(CHART, "ci", file), "utf8")) as Obj;
    const cfg = configOf(objects);
    const ns = values["data"]["argo"]["namespace"] || "glimpse";
    const wft = find(objects, "WorkflowTemplate", cfg["GLIMPSE_ARGO_TEMPLATE"]!, ns)!;
    expect(wft.metadata.namespace).toBe(ns);
    const params = paramsOf(wft);

    // Data's config points at them.
    expect(cfg).toMatchObject({
      GLIMPSE_PIPELINE_EXECUTOR: "argo",
      GLIMPSE_ARGO_NAMESPACE: ns,
      GLIMPSE_ARGO_TEMPLATE: wft.metadata.name,
      GLIMPSE_ARGO_SERVICE_ACCOUNT: wft["spec"]["serviceAccountName"],
      GLIMPSE_ARGO_SYNC_SECRET: params["sync-secret"],
      GLIMPSE_ARGO_STORE_SECRET: params["store-secret"],
      GLIMPSE_ARGO_SYNC_URL: params["sync-url"],
      GLIMPSE_ARGO_IMAGE: params["image"],
      MINIO_ENDPOINT: params["minio-endpoint"],
      MINIO_BUCKET: params["bucket"],
    });
    const data = find(objects, "Deployment", "glimpse-data")!;
    expect(data["spec"]["template"]["spec"]["containers"][0]["image"]).toBe(params["image"]);

    // The collection sync's template, beside it: the same ServiceAccount, image, store and Secret.
    const cwft = find(objects, "WorkflowTemplate", cfg["GLIMPSE_ARGO_COLLECTION_TEMPLATE"]!, ns)!;
    expect(cwft, `WorkflowTemplate ${cfg["GLIMPSE_ARGO_COLLECTION_TEMPLATE"]} in ${ns}`).toBeDefined();
    expect(cwft.metadata.name).toBe(yamlDocs(join(ARGO_DIR, "collection-workflowtemplate.yaml"))[0]!.metadata.name);
    expect(cwft["spec"]["serviceAccountName"]).toBe(wft["spec"]["serviceAccountName"]);
    const cparams = paramsOf(cwft);
    for (const p of ["image", "bucket", "minio-endpoint", "store-secret"]) expect(cparams[p], p).toBe(params[p]);
    // ... and when to use it: data.collections.workflow, as the integers the Data service parses.
    const chartDefaults = parse(readFileSync(join(CHART, "values.yaml"), "utf8")) as Obj;
    const workflow = { ...chartDefaults["data"]["collections"]["workflow"], ...values["data"]["collections"]?.["workflow"] } as { minFiles: number; shards: number };
    expect(cfg["GLIMPSE_COLLECTION_WORKFLOW_MIN_FILES"]).toBe(String(workflow.minFiles));
    expect(cfg["GLIMPSE_COLLECTION_WORKFLOW_SHARDS"]).toBe(String(workflow.shards));
    expect(configSchema.collectionWorkflowMinFiles.parse(cfg["GLIMPSE_COLLECTION_WORKFLOW_MIN_FILES"]!)).toBe(workflow.minFiles);
    expect(configSchema.collectionWorkflowShards.parse(cfg["GLIMPSE_COLLECTION_WORKFLOW_SHARDS"]!)).toBe(workflow.shards);

    // The sync URL is the gateway Service's /data/register, by a name that resolves from any namespace.
    const gw = find(objects, "Service", "glimpse-gateway")!;
    expect(params["sync-url"]).toBe(`http://glimpse-gateway.glimpse.svc:${gw["spec"]["ports"][0]["port"]}/data/register`);

    // The pods' ServiceAccount, in the workflows' namespace, bound to exactly argo/rbac.yaml's rules.
    const sa = wft["spec"]["serviceAccountName"] as string;
    expect(wft["spec"]["artifactGC"]).toBeUndefined();
    expect(find(objects, "ServiceAccount", sa, ns)).toBeDefined();
    const binding = objects.find((o) => o.kind === "RoleBinding" && o["subjects"].some((x: Obj) => x["name"] === sa))!;
    expect(binding.metadata.namespace).toBe(ns);
    expect(binding["subjects"]).toEqual([{ kind: "ServiceAccount", name: sa, namespace: ns }]);
    const role = find(objects, "Role", binding["roleRef"]["name"], ns)!;
    const plainRole = yamlDocs(join(ARGO_DIR, "rbac.yaml")).find((o) => o.kind === "Role")!;
    expect(role["rules"]).toEqual(plainRole["rules"]);
    if (values["imagePullSecrets"]) expect(find(objects, "ServiceAccount", sa, ns)!["imagePullSecrets"]).toEqual(values["imagePullSecrets"]);

    // The artifact repository the template names: the chart's object store and store Secret.
    const ref = wft["spec"]["artifactRepositoryRef"] as { configMap: string; key: string };
    const cm = find(objects, "ConfigMap", ref.configMap, ns)!;
    expect(cm.metadata.annotations?.["workflows.argoproj.io/default-artifact-repository"]).toBe(ref.key);
    const repo = parse(cm["data"][ref.key]) as Obj;
    const plainRepo = parse(yamlDocs(join(ARGO_DIR, "artifact-repositories.yaml"))[0]!["data"][ref.key]) as Obj;
    expect(Object.keys(repo["s3"]).sort()).toEqual(Object.keys(plainRepo["s3"]).sort());
    const endpoint = new URL(params["minio-endpoint"]!);
    expect(repo["s3"]).toMatchObject({
      endpoint: endpoint.host,
      insecure: endpoint.protocol === "http:",
      bucket: values["data"]["argo"]["artifactBucket"] ?? "argo-artifacts",
      keyFormat: plainRepo["s3"]["keyFormat"],
      accessKeySecret: { name: params["store-secret"], key: "access-key" },
      secretKeySecret: { name: params["store-secret"], key: "secret-key" },
    });

    // The Secrets the pods read exist in their namespace (or are the user's existing one).
    const store = find(objects, "Secret", params["store-secret"]!, ns);
    if (values["objectStore"]?.["existingSecret"]) expect(params["store-secret"]).toBe(values["objectStore"]["existingSecret"]);
    else expect(Object.keys(store!["data"]).sort()).toEqual(["access-key", "secret-key"]);
    const key = find(objects, "Secret", params["sync-secret"]!, ns)!;
    expect(Object.keys(key["data"])).toEqual(["api-key"]);
    // ... and every service accepts that key as a write key, besides the clients' keys.
    const pipelineKey = Buffer.from(key["data"]["api-key"], "base64").toString();
    expect(pipelineKey).toMatch(/^glk_\w{20,}$/);
    for (const c of ["gateway", "ranking", "training", "data"]) {
      const env = find(objects, "Deployment", `glimpse-${c}`)!["spec"]["template"]["spec"]["containers"][0]["env"] as Obj[];
      const names = env.map((e) => e["name"]);
      // Kubernetes expands $(VAR) only from variables defined before it.
      expect(names.indexOf("GLIMPSE_API_KEYS")).toBeGreaterThan(names.indexOf("GLIMPSE_PIPELINE_API_KEY"));
      expect(names.indexOf("GLIMPSE_API_KEYS")).toBeGreaterThan(names.indexOf("GLIMPSE_CLIENT_API_KEYS"));
      // (and the bucket notifications' key, with the bundled MinIO: see below)
      expect(env.find((e) => e["name"] === "GLIMPSE_API_KEYS")!["value"]).toMatch(/^\$\(GLIMPSE_CLIENT_API_KEYS\),\$\(GLIMPSE_PIPELINE_API_KEY\):write(,\$\(GLIMPSE_STORAGE_EVENTS_API_KEY\):write)?$/);
      expect(env.find((e) => e["name"] === "GLIMPSE_PIPELINE_API_KEY")!["valueFrom"]).toEqual({ secretKeyRef: { name: params["sync-secret"], key: "api-key" } });
    }
    // stepResources are merged over a step's own resources, in whichever template has the step.
    const plains = TEMPLATE_FILES.map((f) => yamlDocs(join(ARGO_DIR, f))[0]!);
    for (const [step, over] of Object.entries((values["data"]["argo"]["stepResources"] ?? {}) as Record<string, Obj>)) {
      const plain = plains.find((p) => stepsOf(p).includes(step));
      expect(plain, `stepResources.${step}: no template has that step`).toBeDefined();
      const own = (plain!["spec"]["templates"] as Obj[]).find((t) => t["name"] === step)!["container"]["resources"];
      const rendered = find(objects, "WorkflowTemplate", plain!.metadata.name, ns)!;
      const got = (rendered["spec"]["templates"] as Obj[]).find((t) => t["name"] === step)!["container"]["resources"];
      expect(got).toEqual({ requests: { ...own["requests"], ...over["requests"] }, limits: { ...own["limits"], ...over["limits"] } });
    }
    if (ns !== "glimpse") {
      // The copy in the release's namespace (the services') holds the same key.
      const home = find(objects, "Secret", params["sync-secret"]!, "glimpse")!;
      expect(home["data"]).toEqual(key["data"]);
    }
  });

  it("data.argo.stepResources takes exactly the steps of the two templates", () => {
    const schema = JSON.parse(readFileSync(join(CHART, "values.schema.json"), "utf8")) as Obj;
    const accepted = Object.keys(schema["properties"]["data"]["properties"]["argo"]["properties"]["stepResources"]["properties"]);
    const steps = TEMPLATE_FILES.flatMap((f) => stepsOf(yamlDocs(join(ARGO_DIR, f))[0]!));
    expect(new Set(steps).size).toBe(steps.length); // no step name in both
    expect([...accepted].sort()).toEqual([...steps].sort());
  });

  it("installs nothing of Argo's by default: pipeline runs execute in the Data service, whose token is not even mounted", () => {
    const objects = render(join(CHART, "ci", "default-values.yaml"));
    expect(objects.filter((o) => o.apiVersion.startsWith("argoproj.io/") || o.metadata.name === "artifact-repositories")).toEqual([]);
    expect(configOf(objects)["GLIMPSE_PIPELINE_EXECUTOR"]).toBe("local");
    expect(Object.keys(configOf(objects)).filter((k) => k.startsWith("GLIMPSE_ARGO_") || k.startsWith("GLIMPSE_COLLECTION_WORKFLOW_"))).toEqual([]);
    expect(find(objects, "Role", "glimpse-data")).toBeUndefined();
    expect(find(objects, "Secret", "glimpse-pipeline-key")).toBeUndefined();
    expect(find(objects, "Deployment", "glimpse-data")!["spec"]["template"]["spec"]["automountServiceAccountToken"]).toBe(false);
  });
});

describe("helm chart: bucket notifications for watched bucket collections (data.collections.notifications)", () => {
  const minioEnv = (objects: Obj[]) => Object.fromEntries((find(objects, "Deployment", "glimpse-minio")!["spec"]["template"]["spec"]["containers"][0]["env"] as Obj[]).map((e) => [e["name"], e["value"] ?? e["valueFrom"]]));
  const envOf = (objects: Obj[], c: string) => find(objects, "Deployment", `glimpse-${c}`)!["spec"]["template"]["spec"]["containers"][0]["env"] as Obj[];

  it("with the bundled MinIO (default): its webhook target posts to the gateway with a write key of its own, which every service accepts", () => {
    const objects = render(join(CHART, "ci", "default-values.yaml"));
    const key = find(objects, "Secret", "glimpse-storage-events-key")!;
    expect(Object.keys(key["data"])).toEqual(["api-key"]);
    expect(Buffer.from(key["data"]["api-key"], "base64").toString()).toMatch(/^glk_events_\w{32}$/);
    const env = minioEnv(objects);
    expect(env).toMatchObject({
      MINIO_NOTIFY_WEBHOOK_ENABLE_GLIMPSE: "on",
      MINIO_NOTIFY_WEBHOOK_ENDPOINT_GLIMPSE: "http://glimpse-gateway.glimpse.svc:8000/v1/storage-events",
      MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_GLIMPSE: { secretKeyRef: { name: "glimpse-storage-events-key", key: "api-key" } },
      MINIO_NOTIFY_WEBHOOK_QUEUE_DIR_GLIMPSE: "/var/lib/minio-events",
    });
    // the endpoint is the RPC's REST path, which the gateway serves
    expect(REST_ROUTES.some((r) => r.method === "POST" && r.path === new URL(env["MINIO_NOTIFY_WEBHOOK_ENDPOINT_GLIMPSE"]).pathname && r.rpc.name === "ReceiveStorageEvents")).toBe(true);
    const mounts = find(objects, "Deployment", "glimpse-minio")!["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] as Obj[];
    expect(mounts.map((m) => m["mountPath"])).toContain("/var/lib/minio-events");
    expect(configOf(objects)["GLIMPSE_STORE_NOTIFY_ARN"]).toBe("arn:minio:sqs::GLIMPSE:webhook");
    for (const c of ["gateway", "ranking", "training", "data"]) {
      const env = envOf(objects, c);
      const names = env.map((e) => e["name"]);
      expect(names.indexOf("GLIMPSE_API_KEYS")).toBeGreaterThan(names.indexOf("GLIMPSE_STORAGE_EVENTS_API_KEY"));
      expect(env.find((e) => e["name"] === "GLIMPSE_API_KEYS")!["value"]).toBe("$(GLIMPSE_CLIENT_API_KEYS),$(GLIMPSE_STORAGE_EVENTS_API_KEY):write");
    }
    // with the Argo executor too: both extra keys
    const argo = render(ARGO_VALUES);
    expect(envOf(argo, "data").find((e) => e["name"] === "GLIMPSE_API_KEYS")!["value"]).toBe("$(GLIMPSE_CLIENT_API_KEYS),$(GLIMPSE_PIPELINE_API_KEY):write,$(GLIMPSE_STORAGE_EVENTS_API_KEY):write");
  });

  it("off when asked, and with an external object store (the chart cannot configure its server): the re-list only", () => {
    for (const objects of [render(join(CHART, "ci", "default-values.yaml"), "--set", "data.collections.notifications.enabled=false"), render(join(CHART, "ci", "external-minio-values.yaml"))]) {
      expect(find(objects, "Secret", "glimpse-storage-events-key")).toBeUndefined();
      expect(configOf(objects)["GLIMPSE_STORE_NOTIFY_ARN"]).toBeUndefined();
      const minio = find(objects, "Deployment", "glimpse-minio");
      if (minio) expect(Object.keys(minioEnv(objects)).filter((k) => k.startsWith("MINIO_NOTIFY_"))).toEqual([]);
      expect(envOf(objects, "data").map((e) => e["name"])).not.toContain("GLIMPSE_STORAGE_EVENTS_API_KEY");
    }
  });

  it("over TLS, MinIO posts https and trusts the services' CA", () => {
    const objects = render(join(CHART, "ci", "tls-ingress-values.yaml"));
    expect(minioEnv(objects)["MINIO_NOTIFY_WEBHOOK_ENDPOINT_GLIMPSE"]).toBe("https://glimpse-gateway.glimpse.svc:8000/v1/storage-events");
    const spec = find(objects, "Deployment", "glimpse-minio")!["spec"]["template"]["spec"];
    expect(spec["containers"][0]["args"]).toEqual(expect.arrayContaining(["--certs-dir", "/etc/minio/certs"]));
    expect(spec["containers"][0]["volumeMounts"]).toContainEqual({ name: "tls", mountPath: "/etc/minio/certs/CAs/ca.crt", subPath: "ca.crt", readOnly: true });
  });
});

/**
 * The Kubernetes API calls a service's code makes, read from its sources: typed-client calls
 * (createNamespacedJob, readNamespacedPodLog, getNamespacedCustomObject, …) and watch paths.
 * As "group/resource:verb" (core group: "").
 */
const KIND_RESOURCE: Record<string, string> = { Job: "batch/jobs", Pod: "/pods", PodLog: "/pods/log", ConfigMap: "/configmaps", Secret: "/secrets", Event: "/events" };
const METHOD_VERB: Record<string, string> = { create: "create", read: "get", get: "get", list: "list", delete: "delete", patch: "patch", replace: "update" };
function apiCallsOf(dir: string): Set<string> {
  const calls = new Set<string>();
  const walk = (d: string): string[] =>
    readdirSync(d).flatMap((f) => {
      const p = join(d, f);
      return statSync(p).isDirectory() ? (f === "testing" ? [] : walk(p)) : p.endsWith(".ts") && !p.endsWith(".test.ts") ? [p] : [];
    });
  const files = new Set(walk(dir));
  // What a service calls through the shared @glimpse/kube modules it imports counts as its own.
  for (const file of [...files]) {
    for (const [, mod] of readFileSync(file, "utf8").matchAll(/from\s+"@glimpse\/kube\/(\w+)"/g)) {
      const shared = join(ROOT, "packages/kube/src", `${mod}.ts`);
      if (existsSync(shared)) files.add(shared);
    }
  }
  for (const file of files) {
    const text = readFileSync(file, "utf8");
    for (const [, method, kind] of text.matchAll(/\.(create|read|get|list|delete|patch|replace)Namespaced(\w+)\(/g)) {
      let resource: string | undefined;
      if (kind === "CustomObject") {
        const g = /group:\s*"([^"]+)"[^}]*plural:\s*"([^"]+)"/.exec(text);
        if (!g) throw new Error(`${file}: a custom-object call without a { group, plural } constant`);
        resource = `${g[1]}/${g[2]}`;
      } else resource = KIND_RESOURCE[kind!];
      if (!resource) throw new Error(`${file}: ${method}Namespaced${kind}: add its resource to KIND_RESOURCE`);
      calls.add(`${resource}:${METHOD_VERB[method!]}`);
    }
    for (const [, group, resource] of text.matchAll(/\.watch\(\s*`\/apis?\/(?:([\w.]+)\/)?v\w+\/namespaces\/\$\{[^}]+\}\/([\w/]+)`/g)) {
      calls.add(`${group ?? ""}/${resource}:watch`);
    }
  }
  return calls;
}
function roleGrants(role: Obj): Set<string> {
  const out = new Set<string>();
  for (const r of role["rules"] as Obj[]) for (const g of r["apiGroups"]) for (const res of r["resources"]) for (const v of r["verbs"]) out.add(`${g}/${res}:${v}`);
  return out;
}

describe("helm chart: RBAC", () => {
  it("reads the API calls from the code (the scan sees what the services do)", () => {
    expect([...apiCallsOf(join(ROOT, "services/data/src"))].sort()).toEqual(["argoproj.io/workflows:create", "argoproj.io/workflows:get", "argoproj.io/workflows:patch", "argoproj.io/workflowtemplates:get"]);
    expect(apiCallsOf(join(ROOT, "services/training/src"))).toContain("batch/jobs:watch");
    // the template ConfigMap's read, in the shared @glimpse/kube/jobs
    expect(apiCallsOf(join(ROOT, "services/training/src"))).toContain("/configmaps:get");
    expect(apiCallsOf(join(ROOT, "services/ranking/src"))).toContain("batch/jobs:create");
  });

  it.each(["argo-values.yaml", "argo-namespace-values.yaml"])("gives each service account's Role exactly the Kubernetes API calls its code makes, in the namespace it makes them (%s)", (file) => {
    const objects = render(join(CHART, "ci", file));
    const cfg = configOf(objects);
    const expected: Record<string, { calls: Set<string>; namespace: string; configMap?: string }> = {
      "glimpse-training": { calls: apiCallsOf(join(ROOT, "services/training/src")), namespace: "glimpse", configMap: "glimpse-training-job" },
      "glimpse-data": { calls: apiCallsOf(join(ROOT, "services/data/src")), namespace: cfg["GLIMPSE_ARGO_NAMESPACE"]! },
      // index Jobs (ranking.indexExecutor=kubernetes, the default)
      "glimpse-ranking": { calls: apiCallsOf(join(ROOT, "services/ranking/src")), namespace: "glimpse", configMap: "glimpse-index-job" },
    };
    const deployments = objects.filter((o) => o.kind === "Deployment" && o.metadata.name !== "glimpse-minio");
    for (const d of deployments) {
      const spec = d["spec"]["template"]["spec"] as Obj;
      const sa = spec["serviceAccountName"] as string | undefined;
      if (!sa) {
        // No service account of its own: no API access at all.
        expect(spec["automountServiceAccountToken"], d.metadata.name).toBe(false);
        continue;
      }
      const want = expected[sa];
      expect(want, `${d.metadata.name} runs as ${sa}: what does its code call?`).toBeDefined();
      const bindings = objects.filter((o) => o.kind === "RoleBinding" && o["subjects"].some((x: Obj) => x["name"] === sa && x["namespace"] === "glimpse"));
      expect(bindings.map((b) => b.metadata.namespace ?? "glimpse"), sa).toEqual([want!.namespace]);
      expect(objects.filter((o) => o.kind === "ClusterRoleBinding")).toEqual([]);
      const role = find(objects, "Role", bindings[0]!["roleRef"]["name"], want!.namespace)!;
      expect([...roleGrants(role)].sort(), sa).toEqual([...want!.calls].sort());
      // the owners are read by name: the Job template's ConfigMap, the WorkflowTemplate — not every one
      for (const rule of role["rules"] as Obj[]) {
        if (rule["resources"].includes("configmaps")) expect(rule["resourceNames"], sa).toEqual([want!.configMap]);
        if (rule["resources"].includes("workflowtemplates")) expect(rule["resourceNames"], sa).toEqual([cfg["GLIMPSE_ARGO_TEMPLATE"], cfg["GLIMPSE_ARGO_COLLECTION_TEMPLATE"]]);
      }
    }
  });
});

type Container = { name: string; image: string; args?: string[]; env?: Obj[]; envFrom?: Obj[]; resources: Obj; securityContext: Obj; volumeMounts?: Obj[] };
const podSpecOf = (objects: Obj[], name: string): Obj => find(objects, "Deployment", name)!["spec"]["template"]["spec"];
const indexJobOf = (objects: Obj[]): Obj | undefined => {
  const cm = find(objects, "ConfigMap", "glimpse-index-job");
  return cm ? (parse(cm["data"]["index-job.yaml"]) as Obj) : undefined;
};

describe("helm chart: collections", () => {
  it("renders data.collections.relistMs as the integer GLIMPSE_COLLECTION_RELIST_MS parses, however large (helm would print 3.6e+06)", () => {
    expect(configOf(render(join(CHART, "ci", "default-values.yaml")))["GLIMPSE_COLLECTION_RELIST_MS"]).toBe("15000");
    expect(configOf(render(join(CHART, "ci", "default-values.yaml"), "--set", "data.collections.relistMs=3600000"))["GLIMPSE_COLLECTION_RELIST_MS"]).toBe("3600000");
  });

  it("renders data.collections.workflow (the Argo executor's) as the integers GLIMPSE_COLLECTION_WORKFLOW_* parse, however large; its defaults are the service's", () => {
    const cfg = configOf(render(ARGO_VALUES, "--set", "data.collections.workflow.minFiles=5000000", "--set", "data.collections.workflow.shards=64"));
    expect(cfg["GLIMPSE_COLLECTION_WORKFLOW_MIN_FILES"]).toBe("5000000");
    expect(cfg["GLIMPSE_COLLECTION_WORKFLOW_SHARDS"]).toBe("64");
    const workflow = (parse(readFileSync(join(CHART, "values.yaml"), "utf8")) as Obj)["data"]["collections"]["workflow"];
    expect(workflow).toEqual({ minFiles: configSchema.collectionWorkflowMinFiles.default, shards: configSchema.collectionWorkflowShards.default });
    expect(configSchema.argoCollectionTemplate.default).toBe(yamlDocs(join(ARGO_DIR, "collection-workflowtemplate.yaml"))[0]!.metadata.name);
  });

  it("mounts the Secrets data.collections.sourceSecrets lists into the Data pod alone, one folder each, where GLIMPSE_SOURCE_SECRETS_DIR says", () => {
    const none = render(join(CHART, "ci", "default-values.yaml"));
    expect(configOf(none)["GLIMPSE_SOURCE_SECRETS_DIR"]).toBeUndefined();
    expect(JSON.stringify(podSpecOf(none, "glimpse-data"))).not.toContain("source-secrets");
    const objects = render(join(CHART, "ci", "default-values.yaml"), "--set", "data.collections.sourceSecrets={shop-s3,archive-s3}");
    const dir = configOf(objects)["GLIMPSE_SOURCE_SECRETS_DIR"]!;
    const spec = podSpecOf(objects, "glimpse-data");
    const mount = (spec["containers"][0] as Container).volumeMounts!.find((m) => m["mountPath"] === dir)!;
    expect(mount["readOnly"]).toBe(true);
    const sources = ((spec["volumes"] as Obj[]).find((v) => v["name"] === mount["name"])!["projected"] as Obj)["sources"] as Obj[];
    expect(sources.map((s) => s["secret"])).toEqual(["shop-s3", "archive-s3"].map((name) => ({ name, items: [{ key: "access-key", path: `${name}/access-key` }, { key: "secret-key", path: `${name}/secret-key` }] })));
    for (const other of ["glimpse-ranking", "glimpse-gateway", "glimpse-training"]) expect(JSON.stringify(podSpecOf(objects, other))).not.toContain("source-secrets");
    expect(() => render(join(CHART, "ci", "default-values.yaml"), "--set", "data.collections.sourceSecrets={../etc}")).toThrow();
  });
});

describe("helm chart: index Jobs (ranking.indexExecutor)", () => {
  const defaults = parse(readFileSync(join(CHART, "values.yaml"), "utf8")) as Obj;

  it("gives Ranking the index Job template, as Training gets its own: mounted where GLIMPSE_INDEX_JOB_TEMPLATE says, the ConfigMap named by GLIMPSE_INDEX_JOB_OWNER", () => {
    const objects = render(join(CHART, "ci", "default-values.yaml"));
    const cfg = configOf(objects);
    expect(defaults["ranking"]["indexExecutor"]).toBe("kubernetes");
    expect(cfg).toMatchObject({
      GLIMPSE_INDEX_EXECUTOR: "kubernetes",
      GLIMPSE_INDEX_JOB_TEMPLATE: "/etc/glimpse/index-job.yaml",
      GLIMPSE_INDEX_JOB_OWNER: "glimpse-index-job",
      GLIMPSE_INDEX_JOB_PARALLELISM: String(defaults["ranking"]["indexJob"]["parallelism"]),
    });
    const spec = podSpecOf(objects, "glimpse-ranking");
    expect(spec["serviceAccountName"]).toBe("glimpse-ranking");
    expect(spec["automountServiceAccountToken"]).toBeUndefined();
    const mount = (spec["containers"][0] as Container).volumeMounts!.find((m) => m["mountPath"] === cfg["GLIMPSE_INDEX_JOB_TEMPLATE"])!;
    expect(mount["subPath"]).toBe("index-job.yaml");
    const volume = (spec["volumes"] as Obj[]).find((v) => v["name"] === mount["name"])!;
    expect(volume["configMap"]).toEqual({ name: cfg["GLIMPSE_INDEX_JOB_OWNER"] });
    expect(find(objects, "ConfigMap", cfg["GLIMPSE_INDEX_JOB_OWNER"]!)).toBeDefined();
    // a changed template reaches the pods by a rollout (a subPath mount never sees ConfigMap updates)
    expect(find(objects, "Deployment", "glimpse-ranking")!["spec"]["template"]["metadata"]["annotations"]["checksum/index-job"]).toMatch(/^[0-9a-f]{64}$/);
  });

  it("templates an Indexed Job whose shard pods run the Glimpse image as the services do: config, store keys, security context, a writable /tmp, no API token", () => {
    const objects = render(join(CHART, "ci", "default-values.yaml"));
    const job = indexJobOf(objects)!;
    const values = defaults["ranking"]["indexJob"];
    expect(job["spec"]).toMatchObject({
      completionMode: "Indexed",
      completions: values["parallelism"],
      parallelism: values["parallelism"],
      backoffLimit: values["backoffLimit"],
      ttlSecondsAfterFinished: values["ttlSecondsAfterFinished"],
    });
    // evicted, drained or SIGTERMed shard pods (which store their chunk first) do not count as failures
    expect(job["spec"]["podFailurePolicy"]["rules"]).toEqual([
      { action: "Ignore", onPodConditions: [{ type: "DisruptionTarget", status: "True" }] },
      { action: "Ignore", onExitCodes: { containerName: "indexer", operator: "In", values: [143] } },
    ]);
    const pod = job["spec"]["template"] as Obj;
    // release-wide selectors (app.kubernetes.io/instance) must not pick up finished shard pods
    expect(pod["metadata"]["labels"]).toEqual({ "app.kubernetes.io/part-of": "glimpse", "app.kubernetes.io/component": "index-job" });
    const spec = pod["spec"] as Obj;
    expect(spec["restartPolicy"]).toBe("Never");
    expect(spec["automountServiceAccountToken"]).toBe(false);
    expect(spec["terminationGracePeriodSeconds"]).toBe(60);
    expect(spec["securityContext"]).toEqual(defaults["podSecurityContext"]);
    const ranking = podSpecOf(objects, "glimpse-ranking")["containers"][0] as Container;
    const [indexer, ...rest] = spec["containers"] as Container[];
    expect(rest).toEqual([]);
    expect(indexer!.name).toBe("indexer");
    expect(indexer!.image).toBe(ranking.image);
    expect(indexer!.args?.[0]).toBe("services/ranking/dist/cli.js");
    expect(indexer!.envFrom).toEqual([{ configMapRef: { name: "glimpse-config" } }]);
    expect(indexer!.env).toEqual([
      ...ranking.env!.filter((e) => e["name"].startsWith("MINIO_")).map((e) => ({ name: e["name"], valueFrom: e["valueFrom"] })),
      // one onnxruntime thread per pod, matching its CPU request (the replicas' setting is for their own CPU)
      { name: "GLIMPSE_RANKING_INTRA_OP_THREADS", value: String(values["intraOpThreads"]) },
    ]);
    expect(indexer!.securityContext).toEqual(defaults["securityContext"]);
    expect(indexer!.resources).toEqual({ requests: values["resources"]["requests"], limits: values["resources"]["limits"] });
    const tmp = indexer!.volumeMounts!.find((m) => m["mountPath"] === "/tmp")!;
    expect((spec["volumes"] as Obj[]).find((v) => v["name"] === tmp["name"])).toEqual({ name: tmp["name"], emptyDir: {} });
    expect(spec["nodeSelector"]).toBeUndefined();
    expect(spec["tolerations"]).toBeUndefined();
  });

  it("puts index Jobs on GPUs when asked: the GPU limit, CUDA for the encoders, the pool's scheduling", () => {
    const file = join(CHART, "ci", "gpu-index-values.yaml");
    const values = (parse(readFileSync(file, "utf8")) as Obj)["ranking"]["indexJob"];
    const objects = render(file);
    const job = indexJobOf(objects)!;
    expect(configOf(objects)["GLIMPSE_INDEX_JOB_PARALLELISM"]).toBe(String(values["parallelism"]));
    expect(job["spec"]["completions"]).toBe(values["parallelism"]);
    const spec = job["spec"]["template"]["spec"] as Obj;
    const indexer = spec["containers"][0] as Container;
    expect(indexer.resources["limits"]).toEqual({ ...values["resources"]["limits"], "nvidia.com/gpu": String(values["gpus"]) });
    expect(indexer.env).toContainEqual({ name: "GLIMPSE_RANKING_EXECUTION_PROVIDER", value: "cuda" });
    expect(spec["nodeSelector"]).toEqual(values["nodeSelector"]);
    expect(spec["tolerations"]).toEqual(values["tolerations"]);
  });

  it("with indexExecutor=local: no template, no Role, and Ranking has no API token", () => {
    const objects = render(join(CHART, "ci", "local-index-values.yaml"));
    const cfg = configOf(objects);
    expect(cfg["GLIMPSE_INDEX_EXECUTOR"]).toBe("local");
    expect(Object.keys(cfg).filter((k) => k.startsWith("GLIMPSE_INDEX_JOB_"))).toEqual([]);
    expect(find(objects, "ConfigMap", "glimpse-index-job")).toBeUndefined();
    expect(find(objects, "Role", "glimpse-ranking")).toBeUndefined();
    expect(find(objects, "RoleBinding", "glimpse-ranking")).toBeUndefined();
    const spec = podSpecOf(objects, "glimpse-ranking");
    expect(spec["automountServiceAccountToken"]).toBe(false);
    expect((spec["volumes"] as Obj[]).map((v) => v["name"])).not.toContain("index-job");
  });

  it("probes Ranking so that a replica waiting for an index, or loading a model, is never killed: liveness and startup ask the `liveness` entry", () => {
    const objects = render(join(CHART, "ci", "default-values.yaml"));
    for (const c of ["gateway", "ranking", "training", "data"]) {
      const container = podSpecOf(objects, `glimpse-${c}`)["containers"][0] as Obj;
      for (const probe of ["readinessProbe", "livenessProbe"]) expect(container[probe]["timeoutSeconds"], `${c} ${probe}`).toBeGreaterThanOrEqual(5);
    }
    const ranking = podSpecOf(objects, "glimpse-ranking")["containers"][0] as Obj;
    expect(ranking["readinessProbe"]["grpc"]).toEqual({ port: 50051, service: "glimpse.ranking.v1.RankingService" });
    expect(ranking["livenessProbe"]["grpc"]).toEqual({ port: 50051, service: "liveness" });
    expect(ranking["startupProbe"]["grpc"]).toEqual({ port: 50051, service: "liveness" });
    expect(ranking["startupProbe"]["periodSeconds"] * ranking["startupProbe"]["failureThreshold"]).toBeGreaterThanOrEqual(300);
    const tls = render(join(CHART, "ci", "tls-ingress-values.yaml"));
    for (const c of ["ranking", "training", "data"]) {
      const container = podSpecOf(tls, `glimpse-${c}`)["containers"][0] as Obj;
      expect(container["readinessProbe"]["tcpSocket"], c).toEqual({ port: "grpc" });
      expect(container["livenessProbe"]["tcpSocket"], c).toEqual({ port: "grpc" });
      expect(container["livenessProbe"]["timeoutSeconds"], c).toBeGreaterThanOrEqual(5);
    }
  });
});

describe("helm chart: the gateway's calls spread over Ranking's pods, and autoscaling", () => {
  const defaults = parse(readFileSync(join(CHART, "values.yaml"), "utf8")) as Obj;
  const envOf = (objects: Obj[], c: string): Record<string, unknown> =>
    Object.fromEntries((podSpecOf(objects, `glimpse-${c}`)["containers"][0]["env"] as Obj[]).map((e) => [e["name"], e["value"] ?? e["valueFrom"]]));

  it.each([["default-values.yaml", "http"], ["tls-ingress-values.yaml", "https"]])("gives the gateway a headless Service of Ranking's Ready pods to spread its calls over (%s)", (file, scheme) => {
    const objects = render(join(CHART, "ci", file));
    const cfg = configOf(objects);
    const headless = find(objects, "Service", cfg["GLIMPSE_RANKING_DNS_NAME"]!)!;
    const clusterIp = find(objects, "Service", "glimpse-ranking")!;
    expect(headless.metadata.name).toBe("glimpse-ranking-headless");
    expect(headless["spec"]).toMatchObject({ clusterIP: "None", publishNotReadyAddresses: false, selector: clusterIp["spec"]["selector"] });
    expect(headless["spec"]["ports"]).toEqual(clusterIp["spec"]["ports"]);
    // the selector picks Ranking's pods (not the gateway's)
    const ranking = find(objects, "Deployment", "glimpse-ranking")!;
    expect(ranking["spec"]["template"]["metadata"]["labels"]).toMatchObject(headless["spec"]["selector"]);
    expect(find(objects, "Deployment", "glimpse-gateway")!["spec"]["template"]["metadata"]["labels"]).not.toMatchObject(headless["spec"]["selector"]);
    // the URL (scheme, port, TLS name, and where calls go while the name resolves to nothing) stays the ClusterIP Service's
    expect(cfg["GLIMPSE_RANKING_URL"]).toBe(`${scheme}://glimpse-ranking:${clusterIp["spec"]["ports"][0]["port"]}`);
    for (const c of ["gateway", "ranking", "training", "data"]) expect(envOf(objects, c)["GLIMPSE_RANKING_URL"], c).toBeUndefined();
    // re-resolved at the service's default interval
    expect(cfg["GLIMPSE_BACKEND_RESOLVE_MS"]).toBeUndefined();
    expect(configSchema.backendResolveMs.default).toBeGreaterThan(0);
  });

  it("has no autoscaler by default, and the Deployments set their replicas", () => {
    const objects = render(join(CHART, "ci", "default-values.yaml"));
    expect(objects.filter((o) => o.kind === "HorizontalPodAutoscaler")).toEqual([]);
    for (const c of ["gateway", "ranking"]) {
      expect(defaults[c]["autoscaling"]["enabled"], c).toBe(false);
      expect(find(objects, "Deployment", `glimpse-${c}`)!["spec"]["replicas"], c).toBe(defaults[c]["replicas"]);
    }
  });

  it("scales the gateway and Ranking on CPU with autoscaling/v2 HorizontalPodAutoscalers, whose Deployments leave the count to them", () => {
    const file = join(CHART, "ci", "autoscaling-values.yaml");
    const values = parse(readFileSync(file, "utf8")) as Obj;
    const objects = render(file);
    const hpas = objects.filter((o) => o.kind === "HorizontalPodAutoscaler");
    expect(hpas.map((h) => h.metadata.name).sort()).toEqual(["glimpse-gateway", "glimpse-ranking"]);
    for (const c of ["gateway", "ranking"]) {
      const want = { ...defaults[c]["autoscaling"], ...values[c]["autoscaling"] };
      const hpa = find(objects, "HorizontalPodAutoscaler", `glimpse-${c}`)!;
      expect(hpa.apiVersion).toBe("autoscaling/v2");
      expect(hpa.metadata.labels).toMatchObject({ "app.kubernetes.io/component": c, "app.kubernetes.io/instance": "glimpse" });
      const target = find(objects, "Deployment", hpa["spec"]["scaleTargetRef"]["name"])!;
      expect(hpa["spec"]["scaleTargetRef"]).toEqual({ apiVersion: target.apiVersion, kind: target.kind, name: `glimpse-${c}` });
      expect(hpa["spec"]).toMatchObject({ minReplicas: want.minReplicas, maxReplicas: want.maxReplicas });
      expect(hpa["spec"]["metrics"]).toEqual([{ type: "Resource", resource: { name: "cpu", target: { type: "Utilization", averageUtilization: want.targetCPUUtilizationPercentage } } }]);
      // utilisation is measured against the CPU request: there must be one
      expect(target["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"], c).toBeDefined();
      expect("replicas" in target["spec"], `${c} Deployment sets replicas`).toBe(false);
    }
    for (const c of ["training", "data"]) expect(find(objects, "Deployment", `glimpse-${c}`)!["spec"]["replicas"], c).toBe(1);
    // one of them alone
    const one = render(join(CHART, "ci", "default-values.yaml"), "--set", "ranking.autoscaling.enabled=true");
    expect(one.filter((o) => o.kind === "HorizontalPodAutoscaler").map((h) => h.metadata.name)).toEqual(["glimpse-ranking"]);
    expect(find(one, "Deployment", "glimpse-gateway")!["spec"]["replicas"]).toBe(defaults["gateway"]["replicas"]);
  });

  it("refuses autoscaling values that cannot work", () => {
    const fails = (...set: string[]) => expect(() => execFileSync(HELM, ["template", "glimpse", CHART, ...set.flatMap((s) => ["--set", s])], { stdio: "pipe" }));
    fails("gateway.autoscaling.enabled=true", "gateway.autoscaling.minReplicas=5", "gateway.autoscaling.maxReplicas=3").toThrow(/maxReplicas \(3\) must be at least minReplicas \(5\)/);
    fails("ranking.autoscaling.minReplicas=0").toThrow(/minReplicas/);
    fails("ranking.autoscaling.targetCPU=50").toThrow(/targetCPU/);
  });
});
