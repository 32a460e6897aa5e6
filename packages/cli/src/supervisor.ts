import type { ChildProcess } from "node:child_process";
import { EventEmitter } from "node:events";

export interface RestartPolicy {
  /** First restart delay; doubles with each crash in a row (default 250 ms). */
  baseDelayMs: number;
  /** Ceiling of the delay (default 30 s). */
  maxDelayMs: number;
  /** A process up this long has recovered: the next crash starts from baseDelayMs again (default 60 s). */
  stableMs: number;
  /** This many crashes within loopWindowMs is a crash loop, reported (default 5 in 2 min). */
  loopCrashes: number;
  loopWindowMs: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = { baseDelayMs: 250, maxDelayMs: 30_000, stableMs: 60_000, loopCrashes: 5, loopWindowMs: 120_000 };

export interface CrashEvent {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Restarts so far, this one included. */
  restarts: number;
  delayMs: number;
  crashLoop: boolean;
}

/**
 * One process kept running: when it exits unasked it is started again after an exponential
 * backoff, and a crash loop is reported (the "crash" event says so) instead of retried silently.
 * Events: "spawn" (the new ChildProcess), "crash" (CrashEvent), "exit" (an exit before
 * supervision was armed: start-up failures are the caller's to report).
 */
export class Supervised extends EventEmitter {
  child: ChildProcess;
  restarts = 0;
  crashLoop = false;
  private armed = false;
  private stopping = false;
  private inARow = 0;
  private startedAt = 0;
  private crashes: number[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly start: () => ChildProcess,
    private readonly policy: RestartPolicy = DEFAULT_RESTART_POLICY,
    private readonly now: () => number = Date.now,
  ) {
    super();
    this.child = this.spawn();
  }

  /** From now on an exit restarts the process (before: it is reported as "exit"). */
  arm(): void {
    this.armed = true;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** SIGTERM, then SIGKILL after graceMs; no restart afterwards. */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    clearTimeout(this.timer);
    const child = this.child;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGTERM");
    const kill = setTimeout(() => child.kill("SIGKILL"), graceMs);
    await exited;
    clearTimeout(kill);
  }

  private spawn(): ChildProcess {
    const child = this.start();
    this.startedAt = this.now();
    child.once("exit", (code, signal) => this.exited(child, code, signal));
    this.emit("spawn", child);
    return child;
  }

  private exited(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.stopping || child !== this.child) return;
    if (!this.armed) {
      this.emit("exit", code, signal);
      return;
    }
    const t = this.now();
    if (t - this.startedAt >= this.policy.stableMs) this.inARow = 0;
    this.crashes = [...this.crashes.filter((c) => t - c < this.policy.loopWindowMs), t];
    this.crashLoop = this.crashes.length >= this.policy.loopCrashes;
    const delayMs = Math.min(this.policy.maxDelayMs, this.policy.baseDelayMs * 2 ** this.inARow);
    this.inARow++;
    this.restarts++;
    this.emit("crash", { code, signal, restarts: this.restarts, delayMs, crashLoop: this.crashLoop } satisfies CrashEvent);
    this.timer = setTimeout(() => {
      if (!this.stopping) this.child = this.spawn();
    }, delayMs);
  }
}
