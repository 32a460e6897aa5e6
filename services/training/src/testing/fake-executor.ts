/** An executor for unit tests: runs nothing; the test drives each run's events and outcome. */
import type { Executor, LaunchSpec, RunSink } from "../executor.js";

export class FakeExecutor implements Executor {
  readonly kind = "local";
  readonly sinks = new Map<string, RunSink>();
  readonly launched: LaunchSpec[] = [];
  /** Set to make the next launch fail. */
  failLaunch: Error | undefined;
  /** Runs recover() follows again (default none: they are lost). */
  reattach = false;

  async launch(spec: LaunchSpec, sink: RunSink): Promise<void> {
    if (this.failLaunch) {
      const err = this.failLaunch;
      this.failLaunch = undefined;
      throw err;
    }
    this.launched.push(spec);
    this.sinks.set(spec.run.runId, sink);
  }

  sink(runId: string): RunSink {
    const s = this.sinks.get(runId);
    if (!s) throw new Error(`run ${runId} was not launched`);
    return s;
  }

  async stop(runId: string): Promise<void> {
    this.sinks.get(runId)?.finished({ state: "stopped" });
    this.sinks.delete(runId);
  }

  async recover(spec: LaunchSpec, sink: RunSink): Promise<boolean> {
    if (this.reattach) this.sinks.set(spec.run.runId, sink);
    return this.reattach;
  }

  async close(): Promise<void> {}
}
