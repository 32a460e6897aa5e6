/**
 * Argo's own CRD schemas (the "full" CRDs of the pinned argo-workflows Go module, fetched and
 * cached by argo/scripts/fetch-crds.sh), for validating manifests and generated Workflows.
 */
import { execFileSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Ajv, type ValidateFunction } from "ajv";
import { parse } from "yaml";

const ARGO = fileURLToPath(new URL("../../../../argo/", import.meta.url));

export type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** kubectl --validate=strict: unknown fields are errors (CRD schemas only prune them). */
function strictify(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(strictify);
  if (schema === null || typeof schema !== "object") return schema;
  const out: Obj = {};
  for (const [k, v] of Object.entries(schema as Obj)) {
    out[k] = k === "properties" ? Object.fromEntries(Object.entries(v as Obj).map(([p, s]) => [p, strictify(s)])) : strictify(v);
  }
  if (out["type"] === "object" && out["properties"] && out["additionalProperties"] === undefined && !out["x-kubernetes-preserve-unknown-fields"]) out["additionalProperties"] = false;
  return out;
}

export interface Crd {
  kind: string;
  apiVersion: string;
  validate: ValidateFunction;
  schema: Obj;
}

async function loadCrd(ajv: Ajv, dir: string, plural: string): Promise<Crd> {
  const doc = parse(await readFile(join(dir, `argoproj.io_${plural}.yaml`), "utf8")) as Obj;
  const version = doc["spec"]["versions"].find((v: Obj) => v["served"] && v["storage"]) as Obj;
  const schema = strictify(version["schema"]["openAPIV3Schema"]) as Obj;
  return { kind: doc["spec"]["names"]["kind"], apiVersion: `${doc["spec"]["group"]}/${version["name"]}`, validate: ajv.compile(schema), schema };
}

export function checkCrd(crd: Crd, manifest: Obj): string[] {
  const errs: string[] = [];
  if (manifest["apiVersion"] !== crd.apiVersion) errs.push(`apiVersion ${manifest["apiVersion"]} ≠ ${crd.apiVersion}`);
  if (manifest["kind"] !== crd.kind) errs.push(`kind ${manifest["kind"]} ≠ ${crd.kind}`);
  if (!crd.validate(manifest)) for (const e of crd.validate.errors ?? []) errs.push(`${e.instancePath} ${e.message} ${JSON.stringify(e.params)}`);
  return errs;
}


/** Fetches (once) and compiles the named CRDs, e.g. ["workflows", "workflowtemplates"]. */
export async function loadArgoCrds(plurals: string[]): Promise<Record<string, Crd>> {
  const dir = execFileSync(join(ARGO, "scripts", "fetch-crds.sh"), { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim().split("\n").at(-1) as string;
  const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
  const out: Record<string, Crd> = {};
  for (const p of plurals) out[p] = await loadCrd(ajv, dir, p);
  return out;
}
