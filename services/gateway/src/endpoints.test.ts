/**
 * The backend picker (endpoints.ts) with a fake resolver: which addresses requests go to, in what
 * order, and what happens when the name's records change, the resolver fails, or the name resolves
 * to nothing.
 */
import { afterEach, describe, expect, it } from "vitest";
import { Endpoints, type Resolve } from "./endpoints.js";

/** A resolver answering what `answers` holds now (an Error is thrown), counting the questions. */
function fakeResolver(initial: string[] | Error): { resolve: Resolve; set(a: string[] | Error): void; asked: () => number } {
  let answer = initial;
  let asked = 0;
  return {
    resolve: async (host) => {
      asked++;
      expect(host).toBe("ranking-headless");
      if (answer instanceof Error) throw answer;
      return answer;
    },
    set: (a) => (answer = a),
    asked: () => asked,
  };
}
const dnsError = (code: string) => Object.assign(new Error(`getaddrinfo ${code} ranking-headless`), { code });
const picks = (e: Endpoints, n: number) => Array.from({ length: n }, () => e.pick());

describe("Endpoints", () => {
  const made: Endpoints[] = [];
  const make = (url: string, resolve: Resolve, refreshMs = 60_000, cooldownMs?: number) => {
    const e = new Endpoints(url, { refreshMs, resolve, ...(cooldownMs === undefined ? {} : { cooldownMs }) });
    made.push(e);
    return e;
  };
  afterEach(() => {
    for (const e of made.splice(0)) e.close();
  });

  it("spreads requests round robin over every address the name resolves to (A and AAAA)", async () => {
    const dns = fakeResolver(["10.0.0.2", "10.0.0.1", "fd00::3", "10.0.0.1"]);
    const e = make("http://ranking-headless:50051", dns.resolve);
    await e.refresh();
    expect(e.current).toEqual(["http://10.0.0.1:50051", "http://10.0.0.2:50051", "http://[fd00::3]:50051"]);
    const counts = new Map<string, number>();
    for (const p of picks(e, 300)) counts.set(p, (counts.get(p) ?? 0) + 1);
    expect([...counts.values()]).toEqual([100, 100, 100]);
    expect(e.servername).toBe("ranking-headless");
    expect(e.dynamic).toBe(true);
  });

  it("goes by the plain host until the first answer", () => {
    const e = make("https://ranking-headless:50051", fakeResolver(["10.0.0.1"]).resolve);
    expect(e.pick()).toBe("https://ranking-headless:50051");
  });

  it("follows the records as they change and reports the addresses that left", async () => {
    const dns = fakeResolver(["10.0.0.1", "10.0.0.2"]);
    const e = make("http://ranking-headless:50051", dns.resolve);
    const removed: string[][] = [];
    e.onRemoved((r) => removed.push([...r]));
    await e.refresh();
    dns.set(["10.0.0.2", "10.0.0.3"]);
    await e.refresh();
    expect(e.current).toEqual(["http://10.0.0.2:50051", "http://10.0.0.3:50051"]);
    expect(removed).toEqual([["http://ranking-headless:50051"], ["http://10.0.0.1:50051"]]);
    // the same set again (in another order, as DNS servers rotate records) is no change
    dns.set(["10.0.0.3", "10.0.0.2"]);
    await e.refresh();
    expect(removed).toHaveLength(2);
  });

  it("resolves again every refreshMs", async () => {
    const dns = fakeResolver(["10.0.0.1"]);
    const e = make("http://ranking-headless:50051", dns.resolve, 20);
    await e.refresh();
    dns.set(["10.0.0.1", "10.0.0.2"]);
    await new Promise((r) => setTimeout(r, 120));
    expect(e.current).toHaveLength(2);
    expect(dns.asked()).toBeGreaterThanOrEqual(3);
  });

  it("keeps the last good set when the resolver fails", async () => {
    const dns = fakeResolver(["10.0.0.1", "10.0.0.2"]);
    const e = make("http://ranking-headless:50051", dns.resolve);
    await e.refresh();
    for (const code of ["EAI_AGAIN", "ETIMEOUT", "ESERVFAIL"]) {
      dns.set(dnsError(code));
      await e.refresh();
      expect(e.current, code).toEqual(["http://10.0.0.1:50051", "http://10.0.0.2:50051"]);
    }
  });

  it("falls back to the plain host when the name resolves to nothing", async () => {
    const dns = fakeResolver(["10.0.0.1"]);
    const e = make("http://ranking-headless:50051", dns.resolve);
    await e.refresh();
    dns.set(dnsError("ENOTFOUND"));
    await e.refresh();
    expect(e.current).toEqual(["http://ranking-headless:50051"]);
    dns.set(["10.0.0.1"]);
    await e.refresh();
    dns.set([]);
    await e.refresh();
    expect(e.current).toEqual(["http://ranking-headless:50051"]);
  });

  it("passes over an address whose connection failed, and resolves again at once (once for a burst)", async () => {
    const dns = fakeResolver(["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
    const e = make("http://ranking-headless:50051", dns.resolve, 60_000, 60_000);
    await e.refresh();
    const before = dns.asked();
    const gone = "http://10.0.0.2:50051";
    // the pod went away: its address is no longer in the records either
    dns.set(["10.0.0.1", "10.0.0.3"]);
    await Promise.all([e.failed(gone), e.failed(gone), e.failed(gone)]);
    expect(dns.asked()).toBe(before + 1);
    expect(picks(e, 4)).not.toContain(gone);
    expect(e.current).toEqual(["http://10.0.0.1:50051", "http://10.0.0.3:50051"]);
  });

  it("passes over a failed address still in the records until its cooldown ends; if every one failed, goes by the plain host", async () => {
    const dns = fakeResolver(["10.0.0.1", "10.0.0.2"]);
    const e = make("http://ranking-headless:50051", dns.resolve, 60_000, 50);
    await e.refresh();
    await e.failed("http://10.0.0.1:50051");
    expect(new Set(picks(e, 4))).toEqual(new Set(["http://10.0.0.2:50051"]));
    await new Promise((r) => setTimeout(r, 1_100)); // past the cooldown and the burst gap
    expect(new Set(picks(e, 4)).size).toBe(2);
    await e.failed("http://10.0.0.1:50051");
    await e.failed("http://10.0.0.2:50051");
    expect(new Set(picks(e, 4))).toEqual(new Set(["http://ranking-headless:50051"]));
  });

  it("resolves another name than the URL's when given one (a headless Service): the URL is the plain host and names the TLS server", async () => {
    const dns = fakeResolver(["10.0.0.1", "10.0.0.2"]);
    const e = new Endpoints("https://ranking:50051", { refreshMs: 60_000, resolve: dns.resolve, name: "ranking-headless" });
    made.push(e);
    expect(e.pick()).toBe("https://ranking:50051");
    await e.refresh();
    expect(e.current).toEqual(["https://10.0.0.1:50051", "https://10.0.0.2:50051"]);
    expect(e.servername).toBe("ranking");
    dns.set(dnsError("ENOTFOUND"));
    await e.refresh();
    expect(e.current).toEqual(["https://ranking:50051"]);
  });

  it("never resolves an address literal, or with refreshMs 0: one origin, the configured one", async () => {
    const dns = fakeResolver(["10.0.0.9"]);
    for (const [url, refresh] of [["http://127.0.0.1:50051", 5_000], ["http://[::1]:50051", 5_000], ["http://ranking-headless:50051", 0]] as const) {
      const e = make(url, dns.resolve, refresh);
      await e.refresh();
      await e.failed(e.pick());
      expect(picks(e, 3), url).toEqual(Array(3).fill(new URL(url).origin));
      expect(e.dynamic).toBe(false);
    }
    expect(dns.asked()).toBe(0);
    expect(make("http://127.0.0.1:50051", dns.resolve).servername).toBeUndefined();
  });
});
