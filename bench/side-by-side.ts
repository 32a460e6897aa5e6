/**
 * Glimpse against the seed-style peer (bench/peers/fastapi-onnx) through the same HTTP
 * client: the gateway's REST paths and the peer's, interleaved round by round (the order
 * flips every round), medians over the rounds, and the ratios #12 sets targets on.
 */
import { Agent, request } from "node:http";
import { median } from "./stats.js";
import { cpuOf, load, type Result } from "./load.js";

export interface RestTarget {
  name: string;
  url: string;
  /** Processes whose CPU counts as this server's (Ranking + gateway, or the peer's workers). */
  server: () => (number | undefined)[];
  gateway: () => (number | undefined)[];
}

/** One keep-alive HTTP/1.1 client for both servers; every answer is parsed as JSON. */
class RestClient {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 64 });

  post(url: string, body: Buffer | string, contentType: string): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const req = request(url, { method: "POST", agent: this.agent, headers: { "content-type": contentType, "content-length": Buffer.byteLength(body) } }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          if (res.statusCode !== 200) return reject(new Error(`${url}: HTTP ${res.statusCode} ${text.slice(0, 200)}`));
          try {
            resolve(JSON.parse(text));
          } catch (err) {
            reject(err as Error);
          }
        });
        res.on("error", reject);
      });
      req.on("error", reject);
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

export interface SideBySideOptions {
  targets: RestTarget[];
  queries: string[];
  uploads: Buffer[];
  rounds: number;
  concurrency: number[];
  scenarios: string[];
  /** Requests per run: [c=1, c>1] for text, and for uploads. */
  text: [number, number];
  upload: [number, number];
  log: (s: string) => void;
}

export interface SideBySide {
  runs: Result[];
  medians: Result[];
}

/** Runs every (scenario, concurrency) on every target, `rounds` times, interleaved. */
export async function sideBySide(o: SideBySideOptions): Promise<SideBySide> {
  const client = new RestClient();
  const runs: Result[] = [];
  let qi = 0;
  try {
    for (let round = 0; round < o.rounds; round++) {
      const order = round % 2 === 0 ? o.targets : [...o.targets].reverse();
      for (const conc of o.concurrency) {
        for (const t of order) {
          cpuOf.server = t.server;
          cpuOf.gateway = t.gateway;
          const path = `${t.name} REST`;
          const before = runs.length;
          const n = (counts: [number, number]) => (conc === 1 ? counts[0] : counts[1]);
          if (o.scenarios.includes("text")) {
            runs.push(await load("text→image", path, conc, n(o.text), () => client.post(`${t.url}/inference/text-to-image`, JSON.stringify({ query: o.queries[qi++ % o.queries.length]!, top_k: 10 }), "application/json")));
          }
          if (o.scenarios.includes("upload")) {
            runs.push(await load("upload→captions", path, conc, n(o.upload), (i) => client.post(`${t.url}/inference/upload-image?top_k_captions=5`, o.uploads[i % o.uploads.length]!, "image/jpeg"), 5));
          }
          for (const r of runs.slice(before)) o.log(`  round ${round + 1}: ${r.scenario} ${r.path} c=${r.concurrency}: p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, ${r.rps.toFixed(0)} req/s`);
        }
      }
    }
  } finally {
    client.close();
  }
  const groups = new Map<string, Result[]>();
  for (const r of runs) {
    const key = `${r.scenario}\u0000${r.path}\u0000${r.concurrency}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  const medians = [...groups.values()].map((rs): Result => {
    const m = (f: (r: Result) => number) => median(rs.map(f));
    return {
      scenario: rs[0]!.scenario,
      path: rs[0]!.path,
      concurrency: rs[0]!.concurrency,
      requests: rs.reduce((a, r) => a + r.requests, 0),
      errors: rs.reduce((a, r) => a + r.errors, 0),
      p50: m((r) => r.p50),
      p99: m((r) => r.p99),
      mean: m((r) => r.mean),
      rps: m((r) => r.rps),
      cpu: { server: m((r) => r.cpu.server), gateway: m((r) => r.cpu.gateway), client: m((r) => r.cpu.client) },
    };
  });
  return { runs, medians };
}

/** Each Glimpse path ÷ the peer for each scenario and concurrency: p50, p99, throughput, server CPU per request. */
export function ratios(medians: Result[], peer: string): string {
  const rows = ["| scenario | Glimpse path | conc. | p50 Glimpse ÷ peer | p99 Glimpse ÷ peer | req/s Glimpse ÷ peer | CPU/req Glimpse ÷ peer |", "|---|---|---:|---:|---:|---:|---:|"];
  for (const g of medians.filter((r) => r.path !== `${peer} REST`)) {
    const p = medians.find((r) => r.path === `${peer} REST` && r.scenario === g.scenario && r.concurrency === g.concurrency);
    if (!p) continue;
    const cpu = (r: Result) => r.cpu.server + r.cpu.gateway;
    rows.push(`| ${g.scenario} | ${g.path} | ${g.concurrency} | ${(g.p50 / p.p50).toFixed(2)} | ${(g.p99 / p.p99).toFixed(2)} | ${(g.rps / p.rps).toFixed(2)} | ${(cpu(g) / cpu(p)).toFixed(2)} |`);
  }
  return rows.join("\n");
}
