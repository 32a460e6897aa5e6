/**
 * What the end-to-end suite needs to drive a real cluster: kubectl and helm as the user runs them, the
 * images scripts/cluster/images.sh pushed (GLIMPSE_E2E_* variables), and waits on observable state.
 * The suite runs where the cluster's Services are reachable (scripts/cluster/test.sh: inside its network
 * namespace), so the gateway is called at its Service's cluster IP.
 */
import { execFile, execFileSync } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { createObjectStore, type ObjectStore } from "@glimpse/objectstore";

export const ROOT = new URL("../..", import.meta.url).pathname;
export const CHART = join(ROOT, "helm/glimpse");
export const NS = process.env["GLIMPSE_E2E_NAMESPACE"] ?? "glimpse-e2e";
export const RELEASE = "glimpse";
export const WRITE_KEY = "e2e-write-key-0001";
export const READ_KEY = "e2e-read-key-0001";
const HELM = process.env["GLIMPSE_E2E_HELM"] ?? join(ROOT, ".tools/bin/helm");

export function env(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the suite with npm run test:k8s (scripts/cluster/test.sh)`);
  return v;
}

/** `repo:tag` of an image reference (the registry may carry a port). */
export function splitImage(ref: string): { repository: string; tag: string } {
  const at = ref.lastIndexOf(":");
  return { repository: ref.slice(0, at), tag: ref.slice(at + 1) };
}

/** The command's own words (stderr, else stdout) when it fails. */
function failed(bin: string, args: string[], err: unknown): Error {
  const e = err as { stderr?: string; stdout?: string; message: string };
  return new Error(`${bin} ${args.join(" ")} failed: ${e.stderr || e.stdout || e.message}`);
}
function run(bin: string, args: string[], input?: string): string {
  try {
    return execFileSync(bin, args, { encoding: "utf8", input, stdio: ["pipe", "pipe", "pipe"], maxBuffer: 64 << 20 });
  } catch (err) {
    throw failed(bin, args, err);
  }
}
const runAsync = promisify(execFile);

export const kubectl = (...args: string[]): string => run("kubectl", args);
export const kubectlIn = (input: string, ...args: string[]): string => run("kubectl", args, input);
export const helm = (...args: string[]): string => run(HELM, args);
/** helm without blocking the event loop (a load loop runs beside it). */
export async function helmAsync(...args: string[]): Promise<string> {
  try {
    return (await runAsync(HELM, args, { maxBuffer: 64 << 20 })).stdout;
  } catch (err) {
    throw failed(HELM, args, err);
  }
}
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const kubectlJson = (...args: string[]): any => JSON.parse(kubectl(...args, "-o", "json"));
/** kubectl without blocking the event loop (a load loop runs beside it). */
export async function kubectlAsync(...args: string[]): Promise<string> {
  try {
    return (await runAsync("kubectl", args, { maxBuffer: 64 << 20 })).stdout;
  } catch (err) {
    throw failed("kubectl", args, err);
  }
}
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const kubectlJsonAsync = async (...args: string[]): Promise<any> => JSON.parse(await kubectlAsync(...args, "-o", "json"));

/** Polls `check` until it returns a value (not undefined); fails naming `what` and the last state seen. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined> | T | undefined, timeoutMs = 300_000, everyMs = 1000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err instanceof Error ? err.message : err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? ` (last: ${String(last)})` : ""}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** http://<cluster IP>:<port> of a Service in the suite's namespace. */
export function serviceUrl(service: string, ns = NS): string {
  const svc = kubectlJson("get", "service", service, "-n", ns);
  const port = svc.spec.ports[0].port as number;
  return `http://${svc.spec.clusterIP as string}:${port}`;
}

export const gatewayUrl = (): string => serviceUrl(`${RELEASE}-gateway`);

/** The pipeline test's archive server, a Service of the suite's namespace. */
export const FIXTURE_SOURCE = `http://fixture-server.${NS}.svc.cluster.local`;
/** The real-size test's server of the full Flickr8K archives (25-real-size.test.ts), a Service of the suite's namespace. */
export const FLICKR8K_SOURCE = `http://flickr8k-server.${NS}.svc.cluster.local`;

/** The values every install of the suite uses: the images just built and the keys the tests send. */
export function imageValues(image = env("GLIMPSE_E2E_IMAGE")): string[] {
  const { repository, tag } = splitImage(image);
  return [
    "--set", `image.repository=${repository}`, "--set", `image.tag=${tag}`,
    "--set", `training.job.image=${env("GLIMPSE_E2E_TRAINER_IMAGE")}`,
    "--set", `minio.image=${env("GLIMPSE_E2E_MINIO_IMAGE")}`,
    "--set", `auth.apiKeys={${WRITE_KEY},${READ_KEY}:read}`,
    // https as the chart's default, plus the suite's archive servers (10-pipeline, 25-real-size), by name
    "--set", `data.sourceAllowlist={https:,${FIXTURE_SOURCE},${FLICKR8K_SOURCE}}`,
  ];
}

/** Pods of the release that are not Ready (names and phase), excluding finished ones (hooks, Jobs). */
export function unreadyPods(ns = NS): string[] {
  const pods = kubectlJson("get", "pods", "-n", ns).items as { metadata: { name: string }; status: { phase: string; conditions?: { type: string; status: string }[] } }[];
  return pods
    .filter((p) => p.status.phase !== "Succeeded" && p.status.phase !== "Failed")
    .filter((p) => !(p.status.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True"))
    .map((p) => `${p.metadata.name} (${p.status.phase})`);
}

export async function fetchJson(url: string, init?: RequestInit): Promise<{ status: number; body: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(30_000) });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON: keep the text */
  }
  return { status: res.status, body };
}

/**
 * A static file server in the cluster (the project image's Node) for the suite's archives: the files of
 * `volume` (mounted read-only at /srv) streamed with their size from stat; anything but a file of that
 * folder is 404. A Deployment and a Service named `name` in NS, answering on port 80.
 */
export function serveFiles(name: string, volume: Record<string, unknown>): void {
  const server = `const http = require("http"), fs = require("fs");
  http.createServer((q, r) => {
    const no = () => { r.writeHead(404); r.end(); };
    let file;
    try { file = decodeURIComponent(q.url.split("?")[0]).replace(/^\\/+/, ""); } catch { return no(); }
    if (!file || file.includes("..") || file.includes("/")) return no();
    const f = "/srv/" + file;
    fs.stat(f, (e, s) => {
      if (e || !s.isFile()) return no();
      r.writeHead(200, { "content-length": s.size, "content-type": "application/zip" });
      if (q.method === "HEAD") return r.end();
      fs.createReadStream(f).on("error", () => r.destroy()).pipe(r);
    });
  }).listen(8080)`;
  kubectlIn(
    JSON.stringify({
      apiVersion: "v1",
      kind: "List",
      items: [
        {
          apiVersion: "apps/v1", kind: "Deployment", metadata: { name, namespace: NS },
          spec: {
            selector: { matchLabels: { app: name } },
            template: {
              metadata: { labels: { app: name } },
              spec: {
                containers: [{
                  name: "http", image: env("GLIMPSE_E2E_IMAGE"), command: ["node", "-e", server],
                  ports: [{ containerPort: 8080 }], readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 },
                  volumeMounts: [{ name: "files", mountPath: "/srv", readOnly: true }],
                }],
                volumes: [{ name: "files", ...volume }],
              },
            },
          },
        },
        { apiVersion: "v1", kind: "Service", metadata: { name, namespace: NS }, spec: { selector: { app: name }, ports: [{ port: 80, targetPort: 8080 }] } },
      ],
    }),
    "apply", "-f", "-",
  );
  kubectl("rollout", "status", `deployment/${name}`, "-n", NS, "--timeout=180s");
}

/** The release's MinIO bucket, with the credentials the chart gave the services. */
export function releaseStore(): ObjectStore {
  const secret = kubectlJson("get", "secret", `${RELEASE}-object-store`, "-n", NS).data as Record<string, string>;
  const cfg = kubectlJson("get", "configmap", `${RELEASE}-config`, "-n", NS).data as Record<string, string>;
  return createObjectStore({
    kind: "minio",
    endpoint: serviceUrl(`${RELEASE}-minio`),
    accessKey: Buffer.from(secret["access-key"]!, "base64").toString(),
    secretKey: Buffer.from(secret["secret-key"]!, "base64").toString(),
    bucket: cfg["MINIO_BUCKET"]!,
  });
}
