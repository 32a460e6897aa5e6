/**
 * A load loop for the suite's "no search fails" checks: workers calling the gateway until stopped (at
 * most `maxMs`, so a failed test cannot leave it running), a short pause between calls. Each call is a
 * POST of JSON; an answer other than 200, or a 200 the call's own check refuses, is a failure, kept with
 * its body. `reset()` hands back the tally so far and starts a fresh one.
 */
import { expect } from "vitest";

export interface Tally {
  requests: number;
  ok: number;
  /** Every failed call: a status other than 200 (503 included) with its body, or the network error. */
  failed: string[];
  /** 200 answers by what answered them (the call's check says, e.g. "model / dataset version"). */
  answeredBy: Record<string, number>;
}
const newTally = (): Tally => ({ requests: 0, ok: 0, failed: [], answeredBy: {} });

export interface LoadCall {
  path: string;
  body: unknown;
  headers?: Record<string, string>;
  /** What answered a 200, or throws why the answer is wrong. */
  answeredBy: (answer: Record<string, unknown>) => string;
}

export class LoadLoop {
  private tally = newTally();
  private stopped = false;
  private readonly done: Promise<void>;

  constructor(private readonly base: string, call: (n: number) => LoadCall, workers = 2, maxMs = 40 * 60_000) {
    const deadline = Date.now() + maxMs;
    this.done = Promise.all(
      Array.from({ length: workers }, async (_, w) => {
        for (let i = 0; !this.stopped && Date.now() < deadline; i++) {
          await this.once(call(i * workers + w));
          await new Promise((r) => setTimeout(r, 100));
        }
      }),
    ).then(() => undefined);
  }

  private async once(call: LoadCall): Promise<void> {
    let failure: string | undefined;
    let by = "";
    try {
      const res = await fetch(`${this.base}${call.path}`, { method: "POST", headers: { "content-type": "application/json", ...call.headers }, body: JSON.stringify(call.body), signal: AbortSignal.timeout(30_000) });
      const text = await res.text();
      if (res.status !== 200) failure = `${call.path} ${JSON.stringify(call.body)}: HTTP ${res.status} ${text.slice(0, 400)}`;
      else {
        try {
          by = call.answeredBy(JSON.parse(text) as Record<string, unknown>);
        } catch (err) {
          failure = `${call.path} ${JSON.stringify(call.body)}: ${(err as Error).message}: ${text.slice(0, 400)}`;
        }
      }
    } catch (err) {
      const e = err as Error;
      failure = `${call.path}: ${e.cause ? String(e.cause) : e.message}`;
    }
    // counted in the tally current when it is answered: a reset() never loses one in flight
    const tally = this.tally;
    tally.requests++;
    if (failure !== undefined) tally.failed.push(failure);
    else {
      tally.ok++;
      tally.answeredBy[by] = (tally.answeredBy[by] ?? 0) + 1;
    }
  }

  reset(): Tally {
    const t = this.tally;
    this.tally = newTally();
    return t;
  }

  async stop(): Promise<Tally> {
    this.stopped = true;
    await this.done;
    return this.tally;
  }
}

export function expectNoFailedCall(t: Tally, phase: string, atLeast = 50): void {
  const summary = `${phase}: ${t.requests} calls, ${t.ok} answered 200, ${t.failed.length} failed; answered by ${JSON.stringify(t.answeredBy)}`;
  console.log(summary);
  if (t.failed.length > 0) console.log(`${phase}: failed calls:\n  ${t.failed.join("\n  ")}`);
  expect(t.failed, summary).toEqual([]);
  expect(t.requests, summary).toBeGreaterThanOrEqual(atLeast);
}
