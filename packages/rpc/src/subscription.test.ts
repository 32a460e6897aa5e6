import { describe, expect, it } from "vitest";
import { Subscription } from "./subscription.js";

describe("Subscription", () => {
  it("delivers pushed messages in order, including those pushed before reading", async () => {
    const abort = new AbortController();
    const sub = new Subscription<number>(abort.signal);
    sub.push(1);
    const seen: number[] = [];
    setTimeout(() => {
      sub.push(2);
      sub.push(3);
      sub.close();
    }, 10);
    for await (const m of sub) seen.push(m);
    expect(seen).toEqual([1, 2, 3]);
  });

  it("unsubscribes as soon as the signal aborts, even while nobody reads", async () => {
    const abort = new AbortController();
    let unsubscribed = 0;
    const sub = new Subscription<number>(abort.signal, () => unsubscribed++);
    const reading = (async () => {
      const seen: number[] = [];
      for await (const m of sub) seen.push(m);
      return seen;
    })();
    abort.abort();
    expect(unsubscribed).toBe(1);
    sub.push(9); // after close: dropped
    expect(await reading).toEqual([]);
    expect(unsubscribed).toBe(1);
  });
});
