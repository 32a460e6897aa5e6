/**
 * helm install of helm/glimpse with the bundled MinIO on a real cluster: every pod Ready, `helm test`
 * passes, the search page and /demo/search answer through the gateway Service, searches through the
 * two gateways are spread evenly over the two Ranking pods, the chart's HorizontalPodAutoscalers are
 * accepted by the API server, and each service account can do what its service needs and no more.
 */
import * as http from "node:http";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { describe, expect, it } from "vitest";
import { CHART, NS, READ_KEY, RELEASE, ROOT, WRITE_KEY, fetchJson, gatewayUrl, helm, imageValues, kubectl, kubectlIn, kubectlJson, unreadyPods, waitFor } from "./cluster.js";

/** A JSON POST on a connection of its own (none kept alive), as a new client's would be. */
function postOnNewConnection(url: string, body: unknown): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: "POST", agent: false, headers: { "content-type": "application/json" }, timeout: 30_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`no answer from ${url} within 30 s`)));
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}

/** SearchImages calls a pod has answered (Ranking) or passed on (a gateway), from its own /metrics (whatever the code). */
async function searchesOn(podIp: string, metricsPort: number): Promise<number> {
  const text = await (await fetch(`http://${podIp}:${metricsPort}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
  let n = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith("glimpse_rpc_requests_total{") && line.includes('service="glimpse.ranking.v1.RankingService"') && line.includes('method="SearchImages"')) n += Number(line.split(" ").pop());
  }
  return n;
}

describe("helm install", () => {
  it("installs the chart; every pod becomes Ready", async () => {
    kubectl("create", "namespace", NS);
    helm("install", RELEASE, CHART, "-n", NS, "-f", join(ROOT, "e2e/k8s/values.yaml"), ...imageValues(), "--wait", "--timeout", "10m");
    const pods = await waitFor("every pod Ready", () => {
      const all = kubectlJson("get", "pods", "-n", NS).items as unknown[];
      return all.length > 0 && unreadyPods().length === 0 ? all.length : undefined;
    }, 300_000);
    // gateway ×2, ranking ×2, training, data, minio
    expect(pods).toBeGreaterThanOrEqual(7);
    const pvc = kubectlJson("get", "pvc", `${RELEASE}-minio`, "-n", NS);
    expect(pvc.status.phase).toBe("Bound");
  });

  it("passes helm test", () => {
    // (no --logs: the hook pod is deleted once it succeeds; a failed one stays for `kubectl logs`)
    const out = helm("test", RELEASE, "-n", NS, "--timeout", "5m");
    expect(out).toMatch(/TEST SUITE:\s+glimpse-test-gateway[\s\S]*Phase:\s+Succeeded/);
  });

  it("runs compiled JavaScript from an image without TypeScript, test code or a TypeScript runner", () => {
    const cmd = kubectlJson("get", "deployment", `${RELEASE}-gateway`, "-n", NS).spec.template.spec.containers[0];
    expect([...(cmd.command ?? []), ...(cmd.args ?? [])].join(" ")).toMatch(/services\/gateway\/dist\/main\.js$/);
    // walks /app in the running gateway container with the image's own node
    const script = `const fs=require("fs"),p=require("path");const out=[];const walk=(d)=>{for(const e of fs.readdirSync(d,{withFileTypes:true})){const f=p.join(d,e.name);if(e.isDirectory()){if(e.name!=="node_modules")walk(f)}else if(/\\.(ts|tsx|mts)$/.test(e.name)||/\\.test\\./.test(e.name)||/\\/(src|testing)\\//.test(f))out.push(f)}};walk("/app");for(const m of ["tsx","typescript","vitest"])if(fs.existsSync("/app/node_modules/"+m))out.push("/app/node_modules/"+m);console.log(JSON.stringify(out))`;
    const found = JSON.parse(kubectl("exec", `deployment/${RELEASE}-gateway`, "-n", NS, "--", "node", "-e", script)) as string[];
    expect(found).toEqual([]);
  });

  it("answers /demo/search and serves the search page through the gateway Service", async () => {
    const base = gatewayUrl();
    const res = await fetchJson(`${base}/demo/search?query=a%20dog%20playing%20in%20the%20snow&top_k=5`);
    expect(res.status).toBe(200);
    expect(res.body.results).toHaveLength(5);
    expect(res.body.model_version).toMatch(/^m-[0-9a-f]{16}$/);
    const img = await fetch(`${base}${res.body.results[0].image_url as string}`);
    expect(img.status).toBe(200);
    expect(img.headers.get("content-type")).toBe("image/jpeg");
    const page = await fetch(`${base}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain("Glimpse — image search");
    const health = await fetchJson(`${base}/health/detailed`);
    expect(health.status).toBe(200);
  });

  it("spreads searches through the gateway Service (REST and Connect) evenly over the Ranking pods, from each pod's own metrics", async () => {
    const base = gatewayUrl();
    type Pod = { metadata: { name: string; deletionTimestamp?: string }; status: { podIP?: string } };
    const pods = (kubectlJson("get", "pods", "-n", NS, "-l", `app.kubernetes.io/instance=${RELEASE},app.kubernetes.io/component=ranking`).items as Pod[]).filter((p) => !p.metadata.deletionTimestamp);
    expect(pods.map((p) => p.metadata.name)).toHaveLength(2);
    expect(kubectlJson("get", "deployment", `${RELEASE}-gateway`, "-n", NS).status.readyReplicas).toBe(2);
    const gateways = (kubectlJson("get", "pods", "-n", NS, "-l", `app.kubernetes.io/instance=${RELEASE},app.kubernetes.io/component=gateway`).items as Pod[]).filter((p) => !p.metadata.deletionTimestamp);
    const metricsPort = Number(kubectlJson("get", "configmap", `${RELEASE}-config`, "-n", NS).data.GLIMPSE_RANKING_METRICS_PORT);
    const gatewayPort = Number(kubectlJson("get", "configmap", `${RELEASE}-config`, "-n", NS).data.GLIMPSE_GATEWAY_PORT);
    // Each gateway found both pods through the headless Service's name (not one ClusterIP connection's pod).
    const rankingPort = Number(kubectlJson("get", "configmap", `${RELEASE}-config`, "-n", NS).data.GLIMPSE_RANKING_PORT);
    const podAddresses = pods.map((p) => `http://${p.status.podIP!}:${rankingPort}`).sort();
    // A gateway may have started before both Ranking pods were Ready: it resolves the name again every
    // 5 s, and CoreDNS may answer a name without Ready endpoints from its negative cache for a few seconds more.
    for (const g of gateways) {
      const latest = () => {
        const seen = kubectl("logs", g.metadata.name, "-n", NS).split("\n").filter((l) => l.includes("a backend's addresses changed") && l.includes(`${RELEASE}-ranking-headless`));
        return (JSON.parse(seen.at(-1) ?? "{}") as { addresses?: string[] }).addresses;
      };
      await waitFor(`${g.metadata.name} to resolve ${RELEASE}-ranking-headless to both pods (${podAddresses.join(", ")})`, () => (JSON.stringify(latest()) === JSON.stringify(podAddresses) ? true : undefined), 60_000);
    }
    const before = await Promise.all(pods.map((p) => searchesOn(p.status.podIP!, metricsPort)));
    const gatewaysBefore = await Promise.all(gateways.map((p) => searchesOn(p.status.podIP!, gatewayPort)));
    // 200 searches, half REST and half Connect JSON, four at a time, each on a new connection to the gateway
    // Service (whose cluster IP spreads connections over the two gateways); every one must answer.
    const queries = ["a dog playing in the snow", "two children on a beach", "a man riding a bike", "a red car on a street"];
    const failed: string[] = [];
    let next = 0;
    const TOTAL = 200;
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        for (let i = next++; i < TOTAL; i = next++) {
          const query = queries[i % queries.length]!;
          const [path, body] = i % 2 === 0 ? ["/inference/text-to-image", { query, top_k: 5 }] : ["/glimpse.ranking.v1.RankingService/SearchImages", { query, topK: 5 }];
          const res = await postOnNewConnection(`${base}${path}`, body);
          const results = (JSON.parse(res.body) as { results?: unknown[] }).results;
          if (res.status !== 200 || results?.length !== 5) failed.push(`${path} ${res.status} ${res.body.slice(0, 200)}`);
        }
      }),
    );
    expect(failed).toEqual([]);
    const after = await Promise.all(pods.map((p) => searchesOn(p.status.podIP!, metricsPort)));
    const counts = pods.map((p, i) => [p.metadata.name, after[i]! - before[i]!] as const);
    const byGateway = (await Promise.all(gateways.map((p) => searchesOn(p.status.podIP!, gatewayPort)))).map((n, i) => [gateways[i]!.metadata.name, n - gatewaysBefore[i]!] as const);
    console.log(`searches per Ranking pod: ${counts.map(([name, n]) => `${name} ${n} (${((100 * n) / TOTAL).toFixed(1)} %)`).join(", ")}; per gateway: ${byGateway.map(([name, n]) => `${name} ${n}`).join(", ")}`);
    // both gateways took a share (each spreads its own calls)
    expect(byGateway.every(([, n]) => n > 0), JSON.stringify(byGateway)).toBe(true);
    expect(counts.reduce((sum, [, n]) => sum + n, 0)).toBe(TOTAL);
    for (const [name, n] of counts) {
      expect(n / TOTAL, name).toBeGreaterThanOrEqual(0.35);
      expect(n / TOTAL, name).toBeLessThanOrEqual(0.65);
    }
  });

  it("renders HorizontalPodAutoscalers for the gateway and Ranking that the API server accepts", () => {
    // Rendered under another release name, so that they scale nothing of the running release.
    const release = `${RELEASE}-hpa-check`;
    const rendered = helm("template", release, CHART, "-n", NS, "-f", join(ROOT, "e2e/k8s/values.yaml"), ...imageValues(), "--set", "gateway.autoscaling.enabled=true", "--set", "ranking.autoscaling.enabled=true", "--show-only", "templates/hpa.yaml");
    const hpas = parseAllDocuments(rendered).map((d) => d.toJS() as { metadata: { name: string }; spec: Record<string, unknown> }).filter(Boolean);
    expect(hpas.map((h) => h.metadata.name).sort()).toEqual([`${release}-gateway`, `${release}-ranking`]);
    try {
      kubectlIn(rendered, "create", "-n", NS, "-f", "-");
      for (const hpa of hpas) {
        const stored = kubectlJson("get", "horizontalpodautoscaler.v2.autoscaling", hpa.metadata.name, "-n", NS);
        expect(stored.apiVersion).toBe("autoscaling/v2");
        // (the API server adds its defaults, e.g. `behavior`)
        expect(stored.spec).toMatchObject(hpa.spec);
      }
    } finally {
      kubectl("delete", "horizontalpodautoscaler.v2.autoscaling", ...hpas.map((h) => h.metadata.name), "-n", NS, "--ignore-not-found");
    }
  });

  it("checks API keys: no key and a read key are refused a mutating call, the write key is let through", async () => {
    const base = gatewayUrl();
    const body = JSON.stringify({ run_id: "does-not-exist" });
    const none = await fetchJson(`${base}/training/stop`, { method: "POST", body });
    expect(none.status).toBe(401);
    const read = await fetchJson(`${base}/training/stop`, { method: "POST", body, headers: { authorization: `Bearer ${READ_KEY}` } });
    expect(read.status).toBe(403);
    const write = await fetchJson(`${base}/training/stop`, { method: "POST", body, headers: { authorization: `Bearer ${WRITE_KEY}` } });
    expect(write.status).toBe(404);
  });

  /** `kubectl auth can-i` as each service account: what its code calls, and nothing else. */
  const can = (sa: string, verb: string, resource: string, ns = NS): boolean => {
    try {
      // `pods/log` is a subresource; `kind/name` is one object
      const target = resource === "pods/log" ? ["pods", "--subresource=log"] : [resource];
      return kubectl("auth", "can-i", verb, ...target, "-n", ns, `--as=system:serviceaccount:${NS}:${sa}`).trim() === "yes";
    } catch (err) {
      if (/\bno\b/.test(String((err as Error).message))) return false;
      throw err;
    }
  };
  it("gives each service account exactly what its service needs", () => {
    const training = `${RELEASE}-training`;
    const data = `${RELEASE}-data`;
    const ranking = `${RELEASE}-ranking`;
    const needs: [string, string, string][] = [
      [training, "create", "jobs.batch"], [training, "get", "jobs.batch"], [training, "watch", "jobs.batch"],
      [training, "delete", "jobs.batch"], [training, "list", "pods"], [training, "get", "pods/log"],
      [training, "get", `configmaps/${RELEASE}-training-job`],
      [data, "create", "workflows.argoproj.io"], [data, "get", "workflows.argoproj.io"], [data, "patch", "workflows.argoproj.io"],
      [data, "get", "workflowtemplates.argoproj.io/glimpse-dataset-pipeline"], [data, "get", "workflowtemplates.argoproj.io/glimpse-collection-sync"],
      // the index Jobs (ranking.indexExecutor=kubernetes, the default), owned by the template's ConfigMap
      [ranking, "create", "jobs.batch"], [ranking, "get", "jobs.batch"], [ranking, "delete", "jobs.batch"],
      [ranking, "get", `configmaps/${RELEASE}-index-job`],
    ];
    for (const [sa, verb, res] of needs) expect(`${sa} ${verb} ${res}: ${can(sa, verb, res)}`).toBe(`${sa} ${verb} ${res}: true`);
    const refused: [string, string, string][] = [
      [training, "get", "secrets"], [training, "create", "pods"], [training, "delete", "pods"], [training, "create", "workflows.argoproj.io"],
      [training, "update", "deployments.apps"], [training, "create", "rolebindings.rbac.authorization.k8s.io"],
      [training, "get", `configmaps/${RELEASE}-config`], [training, "list", "configmaps"], [training, "patch", "jobs.batch"],
      [data, "get", "secrets"], [data, "create", "jobs.batch"], [data, "create", "pods"], [data, "delete", "workflowtemplates.argoproj.io"],
      [data, "get", "workflowtemplates.argoproj.io/another-template"], [data, "delete", "workflows.argoproj.io"], [data, "list", "workflows.argoproj.io"],
      [ranking, "create", "pods"], [ranking, "list", "pods"], [ranking, "get", "pods/log"], [ranking, "get", "secrets"],
      [ranking, "create", "workflows.argoproj.io"], [ranking, "patch", "jobs.batch"], [ranking, "list", "jobs.batch"], [ranking, "list", "configmaps"],
      [ranking, "get", `configmaps/${RELEASE}-config`], [ranking, "get", `configmaps/${RELEASE}-training-job`],
      ["default", "list", "pods"], ["default", "get", "secrets"],
    ];
    for (const [sa, verb, res] of refused) expect(`${sa} ${verb} ${res}: ${can(sa, verb, res)}`).toBe(`${sa} ${verb} ${res}: false`);
    // nothing outside the release's namespace
    expect(can(training, "create", "jobs.batch", "default")).toBe(false);
    expect(can(data, "create", "workflows.argoproj.io", "default")).toBe(false);
    expect(can(ranking, "create", "jobs.batch", "default")).toBe(false);
  });
});
