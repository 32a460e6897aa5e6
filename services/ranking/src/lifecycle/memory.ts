/**
 * Memory a model swap frees must go back to the system. It did not: RSS rose ~150 MiB at the
 * first A→B→A swap and kept creeping (the soak saw +192 MiB), though every retired model's
 * onnxruntime sessions were released and its objects (gallery index vectors included) were
 * garbage-collected — onnxruntime alone, creating and releasing the encoders' sessions, showed
 * the same +178 MiB, and its own options (no CPU memory arena, initializers outside the arena,
 * no pre-packing) left +120–170 MiB of it.
 *
 * The cause is glibc's malloc: its mmap threshold starts at 128 KiB but is dynamic — when a
 * block that was mmapped is freed (a model's weight buffers, the model file's bytes), the
 * threshold rises to that block's size, up to 32 MiB. From then on the next model's buffers of
 * up to that size come from the heap instead of mmap, and a freed heap block is only given back
 * when it lies at the heap's top: the old model's buffers sit under the new model's and stay
 * resident. A fixed threshold (setting it at all turns the dynamic one off) keeps every block of
 * 128 KiB or more in its own mapping, unmapped on free:
 *
 *   MALLOC_MMAP_THRESHOLD_=131072
 *
 * Measured with services/ranking/src/testing/swap-memory.ts (a Ranking server swapping A→B→A
 * through the registry, searches on each version): RSS +153 MiB after one A→B→A and +207 MiB
 * after four without it, +8 and +9 MiB with it; MALLOC_ARENA_MAX=2 alone left +149 MiB.
 * Ranking's CPU per text query and per upload was unchanged within noise (4.86 vs 4.83 ms and
 * 32.7 vs 32.8 ms): onnxruntime's arena reuses its memory between runs, so few allocations per
 * request are large.
 *
 * glibc reads it at process start, so it is set where processes start: the image's ENV
 * (Dockerfile) and `glimpse up`'s children (packages/cli/src/mesh.ts); Ranking says so when it
 * runs on glibc without it.
 *
 * Under traffic (bench:soak, 8 clients through the gateway) what a swap leaves is smaller and of
 * two other kinds, measured from Ranking's own metrics: V8's heap — the swap's garbage and the
 * retired version's objects wait for V8's next major GC, which under steady load can be minutes
 * away (a full GC took the heap from 249 to 86 MiB), so the drained version's release is followed
 * by one full GC here (reclaimAfterSwap: 70–100 ms once per swap); after the swap's event-loop
 * stall V8 also promotes more request garbage for a while (+0.6–1.2 MiB/s of old space until its
 * next major GC; --no-allocation-site-pretenuring halved it) — and glibc's per-thread arenas of
 * the new sessions' threads (+35 MiB; MALLOC_ARENA_MAX=2 removed it but cost ~20 % of
 * throughput in process, so it is not set).
 */
import { readFileSync } from "node:fs";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { Logger } from "@glimpse/logging";

/** The environment every Glimpse process starts with (lifecycle/memory.test.ts checks the launchers set it). */
export const MALLOC_ENV = { MALLOC_MMAP_THRESHOLD_: "131072" } as const;

let warned = false;

/** Warns once per process when it runs on glibc with the dynamic mmap threshold (MALLOC_ENV not set). */
export function warnIfMallocKeepsFreedMemory(logger: Logger, env: NodeJS.ProcessEnv = process.env): void {
  if (warned || process.platform !== "linux") return;
  warned = true;
  if (env["MALLOC_MMAP_THRESHOLD_"] !== undefined || /glibc\.malloc\.mmap_threshold=/.test(env["GLIBC_TUNABLES"] ?? "")) return;
  // glibc is mapped as libc.so.6 (musl, for one, has no such threshold)
  let maps = "";
  try {
    maps = readFileSync("/proc/self/maps", "utf8");
  } catch {
    return;
  }
  if (!/\/libc\.so\.6$/m.test(maps)) return;
  logger.warn({ env: MALLOC_ENV }, "glibc's malloc is not told MALLOC_MMAP_THRESHOLD_: memory a model swap frees may stay resident (lifecycle/memory.ts)");
}

let fullGc: (() => void) | undefined;

/**
 * A full garbage collection now: V8's gc(), as `--expose-gc` gives it, made at run time when node
 * was started without it (the way Jest's leak detector does).
 */
export function collectGarbage(): void {
  if (!fullGc) {
    const exposed = (globalThis as { gc?: () => void }).gc;
    if (exposed) fullGc = exposed;
    else {
      setFlagsFromString("--expose-gc");
      fullGc = runInNewContext("gc") as () => void;
      setFlagsFromString("--no-expose-gc");
    }
  }
  fullGc();
}

/** This process's resident set, MiB. */
export function rssMiB(): number {
  return process.memoryUsage.rss() / (1024 * 1024);
}

/**
 * After a retired model's sessions are released: one full garbage collection, so what the swap
 * left on the JavaScript heap goes now rather than whenever V8 next needs room (see above).
 */
export function reclaimAfterSwap(logger: Logger, version: string): void {
  const before = rssMiB();
  const t0 = performance.now();
  collectGarbage();
  logger.info({ version, gc_ms: Math.round(performance.now() - t0), rss_mib: [Math.round(before), Math.round(rssMiB())] }, "released model version collected");
}
