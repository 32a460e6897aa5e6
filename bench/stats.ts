/** Small helpers shared by the benchmarks: percentiles, repeated runs, medians, tables, /proc readings. */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";

export interface RunStats {
  p50: number;
  p99: number;
  /** requests per second */
  rps: number;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Runs `call` `total` times with `concurrency` callers; latencies in ms. */
export async function measure(call: () => Promise<unknown>, total: number, concurrency: number): Promise<RunStats> {
  const latencies: number[] = [];
  let next = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        next++;
        const t = performance.now();
        await call();
        latencies.push(performance.now() - t);
      }
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), rps: total / seconds };
}

/** Medians over several runs of the same measurement (machines here are shared and noisy). */
export function medianStats(runs: RunStats[]): RunStats {
  return { p50: median(runs.map((r) => r.p50)), p99: median(runs.map((r) => r.p99)), rps: median(runs.map((r) => r.rps)) };
}

export function table(rows: Record<string, string | number>[]): string {
  const cols = Object.keys(rows[0] ?? {});
  const cell = (v: string | number) => (typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(3)) : v);
  return [
    `| ${cols.join(" | ")} |`,
    `| ${cols.map(() => "---").join(" | ")} |`,
    ...rows.map((r) => `| ${cols.map((c) => cell(r[c]!)).join(" | ")} |`),
  ].join("\n");
}

export function argValue(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : def;
}

/** The fields of /proc/<pid>/stat after the command name (field 3 onwards), or undefined once it is gone. */
export function procStat(pid: number | undefined): string[] | undefined {
  if (!pid) return undefined;
  try {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8");
    return f.slice(f.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/** Resident memory of a process (MiB), from /proc; NaN once it is gone. */
export function rssMiB(pid: number | undefined): number {
  if (!pid) return NaN;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** Runs a compiled CLI (`node <args>` in `cwd`); resolves with its JSON log lines, rejects with the last 20 lines of output. */
export function runCli(args: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<Record<string, unknown>[]> {
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    const lines: Record<string, unknown>[] = [];
    const tail: string[] = [];
    for (const s of [child.stdout, child.stderr]) {
      createInterface({ input: s }).on("line", (l) => {
        tail.push(l);
        if (tail.length > 20) tail.shift();
        try {
          lines.push(JSON.parse(l) as Record<string, unknown>);
        } catch {
          /* a progress line */
        }
      });
    }
    child.on("close", (code) => (code === 0 ? res(lines) : rej(new Error(`${args.join(" ")}: exit ${code}\n${tail.join("\n")}`))));
  });
}
