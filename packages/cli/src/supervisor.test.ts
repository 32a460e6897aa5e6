import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import { Supervised, type CrashEvent } from "./supervisor.js";

/** A real process that exits with `code` as soon as it starts. */
const crashing = (code: number) => () => spawn(process.execPath, ["-e", `process.exit(${code})`], { stdio: "ignore" });

describe("Supervised", () => {
  it("restarts a crashing process with doubling delays up to the ceiling and reports the crash loop", async () => {
    const sup = new Supervised(crashing(3), { baseDelayMs: 10, maxDelayMs: 40, stableMs: 60_000, loopCrashes: 3, loopWindowMs: 60_000 });
    sup.arm();
    const events: CrashEvent[] = [];
    await new Promise<void>((resolve) =>
      sup.on("crash", (e: CrashEvent) => {
        events.push(e);
        if (events.length === 5) resolve();
      }),
    );
    await sup.stop(1_000);
    expect(events.map((e) => e.delayMs)).toEqual([10, 20, 40, 40, 40]);
    expect(events.map((e) => e.code)).toEqual([3, 3, 3, 3, 3]);
    expect(events.map((e) => e.crashLoop)).toEqual([false, false, true, true, true]);
    expect(sup.restarts).toBe(5);
    expect(sup.crashLoop).toBe(true);
  });

  it("starts from the base delay again after the process stayed up long enough", async () => {
    let t = 0;
    const sup = new Supervised(crashing(1), { baseDelayMs: 5, maxDelayMs: 1_000, stableMs: 100, loopCrashes: 10, loopWindowMs: 1_000 }, () => t);
    sup.arm();
    const delays: number[] = [];
    let spawns = 1;
    // the third run "lasts" longer than stableMs: the clock moves on once it has started
    sup.on("spawn", () => {
      if (++spawns === 3) t += 500;
    });
    await new Promise<void>((resolve) =>
      sup.on("crash", (e: CrashEvent) => {
        delays.push(e.delayMs);
        if (delays.length === 3) resolve();
      }),
    );
    await sup.stop(1_000);
    expect(delays).toEqual([5, 10, 5]);
  });

  it("before arm(), an exit is reported and not restarted; stop() ends a running process for good", async () => {
    const early = new Supervised(crashing(7));
    const code = await new Promise<number>((r) => early.once("exit", (c: number) => r(c)));
    expect(code).toBe(7);
    expect(early.restarts).toBe(0);
    expect(early.running).toBe(false);

    const long = new Supervised(() => spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" }));
    long.arm();
    let crashes = 0;
    long.on("crash", () => crashes++);
    await new Promise((r) => long.child.once("spawn", r));
    await long.stop(2_000);
    expect(long.running).toBe(false);
    expect(crashes).toBe(0);
  });
});
