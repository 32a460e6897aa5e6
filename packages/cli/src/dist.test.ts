import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePorts } from "@glimpse/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const CLI = join(ROOT, "packages", "cli", "dist", "main.js");

/** The command lines of a process's children (from /proc). */
function childCommands(pid: number): string[] {
  const out: string[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // field 4 of /proc/<pid>/stat is the parent; the name before it may hold spaces, so split after ")"
      const ppid = Number(readFileSync(`/proc/${entry}/stat`, "utf8").split(") ")[1]!.split(" ")[1]);
      if (ppid === pid) out.push(readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0").filter(Boolean).join(" "));
    } catch {
      // the process exited while we read it
    }
  }
  return out;
}

// What `npm start` and the image run: the compiled mesh (scripts/test.sh runs `npm run build` first).
describe("the compiled mesh (node packages/cli/dist/main.js up)", () => {
  let cli: ChildProcess;
  let gateway: string;
  let output = "";

  beforeAll(async () => {
    expect(existsSync(CLI), "packages/cli/dist/main.js is missing: run `npm run build` first").toBe(true);
    const [gw, r, t, d, rm, tm, dm] = (await freePorts(7)).map(String);
    gateway = `http://127.0.0.1:${gw}`;
    // Type stripping off, in this process and every service it starts: a .ts file anywhere on the
    // path fails to load instead of running.
    cli = spawn(process.execPath, ["--no-experimental-strip-types", CLI, "up"], {
      cwd: ROOT,
      env: {
        ...process.env,
        NODE_OPTIONS: "--no-experimental-strip-types",
        GLIMPSE_DATA_DIR: mkdtempSync(join(tmpdir(), "glimpse-dist-")),
        GLIMPSE_GATEWAY_PORT: gw, GLIMPSE_RANKING_PORT: r, GLIMPSE_TRAINING_PORT: t, GLIMPSE_DATA_PORT: d,
        GLIMPSE_RANKING_METRICS_PORT: rm, GLIMPSE_TRAINING_METRICS_PORT: tm, GLIMPSE_DATA_METRICS_PORT: dm,
        GLIMPSE_LOG_LEVEL: "warn",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    cli.stdout!.on("data", (c: Buffer) => (output += c));
    cli.stderr!.on("data", (c: Buffer) => (output += c));
    await new Promise<void>((resolve, reject) => {
      const check = setInterval(() => {
        if (output.includes("Glimpse is running")) { clearInterval(check); resolve(); }
      }, 100);
      cli.once("exit", (code) => { clearInterval(check); reject(new Error(`glimpse up exited (${code}):\n${output}`)); });
    });
  }, 120_000);

  afterAll(async () => {
    if (!cli || cli.exitCode !== null) return;
    const exited = new Promise((r) => cli.once("exit", r));
    cli.kill("SIGTERM");
    await exited;
  });

  it("runs every service from its dist/main.js with plain node", () => {
    const commands = childCommands(cli.pid!);
    for (const name of ["data", "training", "ranking", "gateway"]) {
      expect(commands.filter((c) => c.endsWith(`services/${name}/dist/main.js`)), `${name} in:\n${commands.join("\n")}`).toHaveLength(1);
    }
    expect(commands.join("\n")).not.toMatch(/tsx|\.ts\b/);
  });

  it("serves a search through the gateway", async () => {
    const res = await fetch(`${gateway}/inference/text-to-image`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ query: "a dog running on the beach", top_k: 3 }),
    });
    const body = (await res.json()) as { results?: { image_id: string }[] };
    expect(res.status, JSON.stringify(body)).toBe(200);
    expect(body.results).toHaveLength(3);
  });
});
