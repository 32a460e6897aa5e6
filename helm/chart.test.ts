import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { validateK8s as validate } from "@glimpse/kube/validate";
import { parseAllDocuments } from "yaml";
import { describe, expect, it } from "vitest";

const ROOT = new URL("..", import.meta.url).pathname;
const HELM = join(ROOT, ".tools/bin/helm");
const CHART = join(ROOT, "helm/glimpse");
const K8S_MANIFEST = join(ROOT, "k8s/glimpse.yaml");
/** The values k8s/glimpse.yaml is rendered with (`npm run k8s:render`). */
export const PLAIN_MANIFEST_ARGS = ["--namespace", "glimpse", "--set", "auth.apiKeys={change-me-write-key}", "--set", "objectStore.secretKey=change-me-minio-secret-key"];

type Obj = { apiVersion: string; kind: string; metadata: { name: string }; [k: string]: unknown };
function typeOf(obj: Obj): string {
  const version = obj.apiVersion.split("/").pop()!;
  return `${version.charAt(0).toUpperCase()}${version.slice(1)}${obj.kind}`;
}

function render(valuesFile: string): Obj[] {
  const out = execFileSync(HELM, ["template", "glimpse", CHART, "-f", valuesFile, "--namespace", "glimpse"], { encoding: "utf8" });
  return parseAllDocuments(out).map((d) => d.toJS() as Obj).filter(Boolean);
}

const scenarios = readdirSync(join(CHART, "ci")).filter((f) => f.endsWith("-values.yaml"));

describe("helm chart", () => {
  it("has the helm binary (scripts/install-tools.sh)", () => {
    expect(existsSync(HELM)).toBe(true);
  });

  it.each(scenarios)("lints strictly with %s", (file) => {
    execFileSync(HELM, ["lint", "--strict", CHART, "-f", join(CHART, "ci", file)], { encoding: "utf8" });
  });

  it.each(scenarios)("renders valid Kubernetes objects with %s", (file) => {
    const objects = render(join(CHART, "ci", file));
    const errors: string[] = [];
    for (const obj of objects) {
      validate(obj, typeOf(obj), `${obj.kind}/${obj.metadata.name}`, errors);
      // The training Job template the Training service fills in is an API object too.
      if (obj.kind === "ConfigMap" && typeof (obj as { data?: Record<string, string> }).data?.["training-job.yaml"] === "string") {
        const job = parseAllDocuments((obj as unknown as { data: Record<string, string> }).data["training-job.yaml"]!)[0]!.toJS() as Obj;
        validate(job, "V1Job", "training-job.yaml", errors);
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
    expect(() => execFileSync(HELM, ["template", "glimpse", CHART, "--set", "tls.enabled=true"], { stdio: "pipe" })).toThrow();
  });

  it("keeps the plain manifests in k8s/ in step with the chart", () => {
    const fresh = execFileSync(HELM, ["template", "glimpse", CHART, ...PLAIN_MANIFEST_ARGS], { encoding: "utf8" });
    expect(readFileSync(K8S_MANIFEST, "utf8"), "run `npm run k8s:render`").toBe(fresh);
  });
});
