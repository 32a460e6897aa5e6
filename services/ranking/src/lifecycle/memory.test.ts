/**
 * Memory freed by a model swap goes back: a Ranking server swapping A→B→A (two registry versions
 * of the demo pack's model, real onnxruntime sessions, real files in a folder store) grows by at
 * most 100 MiB over the first A→B→A and 25 MiB per A→B→A after it, every retired model's sessions
 * are released and nothing keeps its objects (or its gallery index's vectors) alive. One bound
 * from the start (50 MiB after three) failed runs of the same code: the first swap's one-off
 * costs vary by 35 MiB between runs (+11 to +46) and each later cycle keeps a few MiB (+3 to +16).
 * The bug it guards against (lifecycle/memory.ts) is +153 to +220 over the first.
 *
 * The swaps run in a child process (testing/swap-memory.ts): RSS is the whole process's, and a
 * test worker's (other test files, vitest itself) would move it by more than the margin. The
 * child starts with the environment the launchers give every Glimpse process (MALLOC_ENV,
 * lifecycle/memory.ts) — without it the same run measured +153 MiB after one A→B→A.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import type { SwapMemoryReport } from "../testing/swap-memory.js";
import { MALLOC_ENV } from "./memory.js";

const ROOT = resolve(import.meta.dirname, "../../../..");
const CHILD = join(ROOT, "services/ranking/src/testing/swap-memory.ts");
const MARGIN_MIB = 50;
/** The most RSS one A→B→A may keep, on average, after the first. */
const CREEP_MIB = 25;

function runChild(cycles: number): Promise<SwapMemoryReport> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ["--expose-gc", "--conditions=source", "--import", "tsx", CHILD, "--cycles", String(cycles)], {
      cwd: ROOT,
      env: { ...process.env, ...MALLOC_ENV, GLIMPSE_LOG_LEVEL: "warn" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("error", reject);
    child.on("exit", (code) => {
      const line = out.split("\n").find((l) => l.startsWith("{\"versions\""));
      if (code !== 0 || !line) reject(new Error(`swap-memory exited ${code}:\n${out.slice(-2000)}\n${err.slice(-2000)}`));
      else resolvePromise(JSON.parse(line) as SwapMemoryReport);
    });
  });
}

describe("memory after model swaps", () => {
  it(`gives back what a swap frees: ≤ ${2 * MARGIN_MIB} MiB for the first A→B→A, then ≤ ${CREEP_MIB} MiB per A→B→A`, { timeout: 300_000 }, async () => {
    const r = await runChild(4);
    const signed = (g: number) => `${g >= 0 ? "+" : ""}${Math.round(g)}`;
    const first = r.after[0]!;
    const perCycle = (r.after.at(-1)! - first) / (r.after.length - 1);
    console.log(`swap-memory: RSS ${r.before.toFixed(0)} MiB before, after each A→B→A ${r.after.map((a) => a.toFixed(0)).join(", ")} (first ${signed(first - r.before)}, then ${signed(perCycle)} per cycle); peak ${r.peak.toFixed(0)}`);
    expect(r.after).toHaveLength(4);
    // The first swap's one-off costs (the new sessions' threads and their malloc arenas, code)
    // measured +11 to +46 MiB (eight runs); with what a swap frees not going back (the bug
    // lifecycle/memory.ts fixes) +153 to +220.
    expect(first - r.before).toBeLessThanOrEqual(2 * MARGIN_MIB);
    // Then the slope, against a leak per swap: +3 to +16 MiB per A→B→A measured (from the first's
    // end, over two or three more). (The bug shows in the first bound: +190 and +195 with 4
    // cycles, then +8 and +35 per cycle.)
    expect(perCycle).toBeLessThanOrEqual(CREEP_MIB);
    // each swap retired a version: its sessions released once drained, its objects collected
    expect(r.retired).toBe(8);
    expect(r.released).toBe(r.retired);
    expect(r.collected).toBe(r.retired);
    // the JavaScript side holds no more than before (index vectors, model bytes)
    expect(r.external.after - r.external.before).toBeLessThan(8);
  });

  it("is what the launchers start every process with: the image, and glimpse up's children", () => {
    const [[name, value]] = Object.entries(MALLOC_ENV);
    const dockerfile = readFileSync(join(ROOT, "Dockerfile"), "utf8");
    const runtime = dockerfile.slice(dockerfile.lastIndexOf("\nFROM "));
    expect(runtime).toMatch(new RegExp(`^ENV .*\\b${name}=${value}\\b`, "m"));
    expect(readFileSync(join(ROOT, "packages/cli/src/mesh.ts"), "utf8")).toMatch(new RegExp(`${name}: baseEnv\\["${name}"\\] \\?\\? "${value}"`));
  });
});
