import type { Logger } from "@glimpse/logging";
import type { EventSink, PipelineEvent, StepStatus } from "./events.js";

function fmtNum(n: number, unit: string): string {
  if (unit !== "bytes") return String(n);
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(2)} GiB`;
  if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

function fmtSecs(ms: number): string {
  const s = ms / 1000;
  return s >= 60 ? `${Math.floor(s / 60)}m${Math.round(s % 60)}s` : `${s.toFixed(1)}s`;
}

const ICON: Record<string, string> = { succeeded: "✔", skipped: "↷", failed: "✖", cancelled: "■", running: "…", pending: " " };

/**
 * A progress bar for a terminal: one live line for the running step, a summary line per
 * finished step, log lines (info and up) printed above the bar.
 */
export function terminalReporter(out: NodeJS.WriteStream = process.stderr, opts: { verbose?: boolean } = {}): EventSink {
  let live: StepStatus | undefined;
  let lastDraw = 0;
  const width = (): number => Math.max(10, Math.min(30, (out.columns ?? 80) - 60));
  const clear = (): void => {
    out.write("\r\x1b[2K");
  };
  const draw = (force = false): void => {
    if (!live || live.state !== "running") return;
    const now = Date.now();
    if (!force && now - lastDraw < 100) return;
    lastDraw = now;
    const s = live;
    const elapsed = s.startedAt ? now - s.startedAt.getTime() : 0;
    let line = `${s.step.padEnd(8)} `;
    if (s.total > 0) {
      const frac = Math.min(1, s.done / s.total);
      const w = width();
      const full = Math.round(frac * w);
      line += `[${"█".repeat(full)}${"░".repeat(w - full)}] ${(frac * 100).toFixed(0).padStart(3)}% ${fmtNum(s.done, s.unit)}/${fmtNum(s.total, s.unit)}${s.unit === "bytes" ? "" : ` ${s.unit}`}`;
      const rate = elapsed > 500 ? s.done / (elapsed / 1000) : 0;
      if (rate > 0) {
        line += `  ${s.unit === "bytes" ? `${fmtNum(rate, "bytes")}/s` : `${rate.toFixed(0)}/s`}`;
        if (frac < 1) line += `  ETA ${fmtSecs(((s.total - s.done) / rate) * 1000)}`;
      }
    } else if (s.done > 0) line += `${fmtNum(s.done, s.unit)}${s.unit === "bytes" ? "" : ` ${s.unit}`}`;
    line += `  ${fmtSecs(elapsed)}`;
    clear();
    out.write(line.slice(0, (out.columns ?? 120) - 1));
  };
  return (ev: PipelineEvent) => {
    if (ev.type === "log") {
      if (ev.level === "debug" && !opts.verbose) return;
      clear();
      const tag = ev.level === "warn" ? "warn " : ev.level === "error" ? "error " : "";
      out.write(`  ${ev.step ? `${ev.step}: ` : ""}${tag}${ev.message}\n`);
      draw(true);
      return;
    }
    const s = ev.status;
    if (s.state === "running") {
      live = s;
      draw(s.done === 0);
    } else if (s.state !== "pending") {
      clear();
      const took = s.startedAt && s.finishedAt ? ` (${fmtSecs(s.finishedAt.getTime() - s.startedAt.getTime())})` : "";
      out.write(`${ICON[s.state] ?? "?"} ${s.step.padEnd(8)} ${s.state}${took}: ${s.message}\n`);
      live = undefined;
    }
  };
}

/** Progress as structured log lines (for log collectors, Argo and child processes). */
export function jsonReporter(log: Logger, opts: { progressIntervalMs?: number } = {}): EventSink {
  const interval = opts.progressIntervalMs ?? 2000;
  const last = new Map<string, number>();
  return (ev: PipelineEvent) => {
    if (ev.type === "log") {
      log[ev.level]({ ...(ev.fields ?? {}), ...(ev.step ? { step: ev.step } : {}) }, ev.message);
      return;
    }
    const s = ev.status;
    const now = Date.now();
    if (s.state === "running" && s.done > 0 && now - (last.get(s.step) ?? 0) < interval && s.done < s.total) return;
    last.set(s.step, now);
    log.info(
      {
        event: "step",
        step: s.step,
        state: s.state,
        done: s.done,
        total: s.total,
        unit: s.unit,
        ...(s.startedAt && s.finishedAt ? { seconds: (s.finishedAt.getTime() - s.startedAt.getTime()) / 1000 } : {}),
      },
      s.message || `${s.step} ${s.state}`,
    );
  };
}
