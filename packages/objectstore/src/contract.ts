/**
 * The behaviour every ObjectStore must have, as one vitest suite run against each implementation
 * (fs-store.test.ts, minio-store.test.ts). Each test works under its own key prefix of one store.
 */
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getJson, putJson, updateJson } from "./index.js";
import { compareKeys } from "./keys.js";
import { InvalidKeyError, ObjectNotFoundError, PreconditionFailedError, type ObjectInfo, type ObjectStore } from "./types.js";

export interface ContractOptions {
  /** Called after each failed put with the key it targeted: assert nothing partial is left. */
  assertNoLeftovers?: (store: ObjectStore) => Promise<void>;
}

const MiB = 1024 * 1024;

export async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export async function listAll(store: ObjectStore, prefix: string, startAfter?: string): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for await (const info of store.list(prefix, startAfter === undefined ? {} : { startAfter })) out.push(info);
  return out;
}

/** Runs `fn` over `items` with at most `limit` in flight. */
async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < items.length) await fn(items[next++] as T);
  }));
}

/** Deterministic pseudo-random bytes, generated chunk by chunk (each chunk a fresh allocation). */
function generated(size: number, { chunkSize = 256 * 1024, failAt, onChunk }: { chunkSize?: number; failAt?: number; onChunk?: (produced: number) => void } = {}) {
  const hash = createHash("sha256");
  let produced = 0;
  let seed = 0x9e3779b9;
  const stream = new Readable({
    highWaterMark: chunkSize,
    read() {
      if (failAt !== undefined && produced >= failAt) {
        this.destroy(new Error("source failed on purpose"));
        return;
      }
      if (produced >= size) {
        this.push(null);
        return;
      }
      const n = Math.min(chunkSize, size - produced);
      const chunk = Buffer.allocUnsafe(n);
      for (let i = 0; i + 4 <= n; i += 4) {
        seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
        chunk.writeUInt32LE(seed, i);
      }
      chunk.fill(7, n - (n % 4));
      hash.update(chunk);
      produced += n;
      onChunk?.(produced);
      this.push(chunk);
    },
  });
  return { stream, sha256: () => hash.digest("hex") };
}

/** Samples ArrayBuffer memory (Buffers live there) after forcing GC, so only live data counts. */
function memoryProbe() {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  gc();
  const base = process.memoryUsage();
  let peakBuffers = 0;
  let peakRss = 0;
  return {
    sample() {
      gc();
      const m = process.memoryUsage();
      peakBuffers = Math.max(peakBuffers, m.arrayBuffers - base.arrayBuffers);
      peakRss = Math.max(peakRss, m.rss - base.rss);
    },
    result: () => ({ buffersMiB: peakBuffers / MiB, rssMiB: peakRss / MiB }),
  };
}

export function objectStoreContract(name: string, open: () => Promise<ObjectStore>, options: ContractOptions = {}): void {
  describe(`ObjectStore contract: ${name}`, () => {
    let store: ObjectStore;
    let n = 0;
    /** A fresh key prefix per test. */
    const scope = () => `t${++n}-${Date.now().toString(36)}/`;
    const noLeftovers = async () => options.assertNoLeftovers?.(store);

    beforeAll(async () => {
      store = await open();
      await store.init();
      await store.init(); // idempotent
    });
    afterAll(async () => {
      await store?.close();
    });

    it("puts and gets every body type; stat and put agree", async () => {
      const p = scope();
      const bodies = {
        buffer: Buffer.from("buffer body"),
        u8: new Uint8Array([1, 2, 3, 250]),
        string: "héllo wörld",
        stream: Readable.from([Buffer.from("str"), "eam ", Buffer.from("body")]),
        empty: Buffer.alloc(0),
      };
      const expected = {
        buffer: Buffer.from("buffer body"),
        u8: Buffer.from([1, 2, 3, 250]),
        string: Buffer.from("héllo wörld"),
        stream: Buffer.from("stream body"),
        empty: Buffer.alloc(0),
      };
      for (const [k, body] of Object.entries(bodies)) {
        const key = `${p}${k}`;
        const want = expected[k as keyof typeof expected];
        const info = await store.put(key, body, { contentType: "application/x-test" });
        expect(info).toMatchObject({ key, size: want.length });
        expect(typeof info.etag).toBe("string");
        expect(info.etag.length).toBeGreaterThan(0);
        expect(Math.abs(info.lastModified.getTime() - Date.now())).toBeLessThan(60_000);
        expect(await store.getBuffer(key)).toEqual(want);
        expect(await collect(await store.get(key))).toEqual(want);
        const st = await store.stat(key);
        expect(st).toMatchObject({ key, size: want.length, etag: info.etag });
        expect(st!.lastModified).toBeInstanceOf(Date);
      }
    });

    it("handles missing keys: get throws, stat is undefined, delete is fine", async () => {
      const key = `${scope()}missing`;
      await expect(store.get(key)).rejects.toBeInstanceOf(ObjectNotFoundError);
      await expect(store.get(key, { start: 1, end: 2 })).rejects.toBeInstanceOf(ObjectNotFoundError);
      await expect(store.getBuffer(key)).rejects.toBeInstanceOf(ObjectNotFoundError);
      await expect(store.getBuffer(key)).rejects.toMatchObject({ key });
      expect(await store.stat(key)).toBeUndefined();
      await store.delete(key);
    });

    it("overwrites (new etag, even for same-size content) and deletes", async () => {
      const key = `${scope()}a/b/obj`;
      const seen = new Set<string>();
      for (const body of ["one", "two", "two", "six"]) seen.add((await store.put(key, body)).etag);
      // Identical content may keep its etag (S3 etags are content hashes); different content must not.
      expect(seen.size).toBeGreaterThanOrEqual(3);
      expect((await store.getBuffer(key)).toString()).toBe("six");
      await store.delete(key);
      expect(await store.stat(key)).toBeUndefined();
      await expect(store.get(key)).rejects.toBeInstanceOf(ObjectNotFoundError);
      await store.delete(key);
    });

    it("reads byte ranges (inclusive end, clamped, past-the-end is a RangeError)", async () => {
      const key = `${scope()}digits`;
      await store.put(key, "0123456789");
      const read = async (range: { start: number; end?: number }) => (await collect(await store.get(key, range))).toString();
      expect(await read({ start: 0, end: 0 })).toBe("0");
      expect(await read({ start: 2, end: 5 })).toBe("2345");
      expect(await read({ start: 7 })).toBe("789");
      expect(await read({ start: 0 })).toBe("0123456789");
      expect(await read({ start: 8, end: 100 })).toBe("89");
      await expect(store.get(key, { start: 10 })).rejects.toBeInstanceOf(RangeError);
      await expect(store.get(key, { start: 5, end: 4 })).rejects.toBeInstanceOf(RangeError);
      await expect(store.get(key, { start: -1 })).rejects.toBeInstanceOf(RangeError);
      const empty = `${scope()}empty`;
      await store.put(empty, "");
      expect(await collect(await store.get(empty, { start: 0 }))).toHaveLength(0);
    });

    it("lists in byte order under a prefix, with startAfter", async () => {
      const p = scope();
      // Orderings a naive directory walk gets wrong ("a/b" sorts between "a-b" and "a0"), keys that
      // look like numbers, spaces, "+" and non-ASCII.
      const names = ["a/b", "a-b", "a.txt", "a0", "a/c/d", "007", "1e3", "b c", "x+y", "é", "z", "日本", "\u{1F600}", "\uFF5E"];
      await pool(names, 8, (k) => store.put(p + k, k));
      const sorted = names.map((k) => p + k).sort(compareKeys);
      expect(sorted.indexOf(`${p}a-b`)).toBeLessThan(sorted.indexOf(`${p}a/b`));
      expect(sorted.indexOf(`${p}\uFF5E`)).toBeLessThan(sorted.indexOf(`${p}\u{1F600}`)); // UTF-8 order, not UTF-16

      const all = await listAll(store, p);
      expect(all.map((o) => o.key)).toEqual(sorted);
      for (const o of all) {
        expect(o.size).toBe(Buffer.byteLength(o.key.slice(p.length)));
        expect(o.etag).toBe((await store.stat(o.key))!.etag);
        expect(o.lastModified).toBeInstanceOf(Date);
      }
      expect((await listAll(store, `${p}a`)).map((o) => o.key)).toEqual(sorted.filter((k) => k.startsWith(`${p}a`)));
      expect((await listAll(store, `${p}a/`)).map((o) => o.key)).toEqual([`${p}a/b`, `${p}a/c/d`]);
      expect(await listAll(store, `${p}nothing`)).toEqual([]);
      expect((await listAll(store, p, `${p}a/b`)).map((o) => o.key)).toEqual(sorted.slice(sorted.indexOf(`${p}a/b`) + 1));
      expect((await listAll(store, p, `${p}a/`)).map((o) => o.key)[0]).toBe(`${p}a/b`);
      const page = await store.listPage(`${p}a`);
      expect(page.objects.map((o) => o.key)).toEqual(sorted.filter((k) => k.startsWith(`${p}a`)));
      expect(page.prefixes).toEqual([]);
      expect(page.nextPageToken).toBeUndefined();
    });

    it("paginates with opaque tokens (25 keys, pages of 7)", async () => {
      const p = scope();
      const keys = Array.from({ length: 25 }, (_, i) => `${p}${i % 3 === 0 ? "d/" : ""}k${String(i).padStart(2, "0")}`);
      await pool(keys, 8, (k) => store.put(k, k));
      const sizes: number[] = [];
      const seen: string[] = [];
      let token: string | undefined;
      do {
        const page = await store.listPage(p, token === undefined ? { pageSize: 7 } : { pageSize: 7, pageToken: token });
        sizes.push(page.objects.length);
        seen.push(...page.objects.map((o) => o.key));
        token = page.nextPageToken;
      } while (token !== undefined);
      expect(sizes).toEqual([7, 7, 7, 4]);
      expect(seen).toEqual([...keys].sort(compareKeys));
      await expect(store.listPage(p, { pageSize: 0 })).rejects.toBeInstanceOf(RangeError);
      await expect(store.listPage(p, { pageSize: 1001 })).rejects.toBeInstanceOf(RangeError);
    });

    it("rolls up keys below the next '/' into prefixes with a delimiter, across pages", async () => {
      const p = scope();
      const keys = ["x", "d1/a", "d1/b", "d1/e/f", "d2/c", "d3/g", "z", "d-", "d0"];
      await pool(keys, 8, (k) => store.put(p + k, k));
      const page = await store.listPage(p, { delimiter: "/" });
      expect(page.objects.map((o) => o.key)).toEqual([`${p}d-`, `${p}d0`, `${p}x`, `${p}z`]);
      expect(page.prefixes).toEqual([`${p}d1/`, `${p}d2/`, `${p}d3/`]);
      expect(page.nextPageToken).toBeUndefined();

      // A prefix that ends mid-segment rolls up at the next "/".
      const partial = await store.listPage(`${p}d`, { delimiter: "/" });
      expect(partial.prefixes).toEqual([`${p}d1/`, `${p}d2/`, `${p}d3/`]);
      expect(partial.objects.map((o) => o.key)).toEqual([`${p}d-`, `${p}d0`]);
      const nested = await store.listPage(`${p}d1/`, { delimiter: "/" });
      expect(nested.objects.map((o) => o.key)).toEqual([`${p}d1/a`, `${p}d1/b`]);
      expect(nested.prefixes).toEqual([`${p}d1/e/`]);

      // Pages of 2: objects and prefixes share the page budget; a prefix is never repeated.
      const items: string[] = [];
      let token: string | undefined;
      do {
        const pg = await store.listPage(p, { delimiter: "/", pageSize: 2, ...(token !== undefined && { pageToken: token }) });
        expect(pg.objects.length + pg.prefixes.length).toBeLessThanOrEqual(2);
        items.push(...pg.objects.map((o) => o.key), ...pg.prefixes);
        token = pg.nextPageToken;
      } while (token !== undefined);
      expect(items.sort(compareKeys)).toEqual([...page.objects.map((o) => o.key), ...page.prefixes].sort(compareKeys));

      // Deleting the last object under a prefix removes the prefix.
      await store.delete(`${p}d2/c`);
      expect((await store.listPage(p, { delimiter: "/" })).prefixes).toEqual([`${p}d1/`, `${p}d3/`]);
    });

    it("lists more than 1000 keys (several server pages)", async () => {
      const p = scope();
      const keys = Array.from({ length: 1100 }, (_, i) => `${p}${String(i).padStart(5, "0")}`);
      await pool(keys, 16, (k) => store.put(k, "x"));
      const listed = await listAll(store, p);
      expect(listed).toHaveLength(1100);
      expect(listed.map((o) => o.key)).toEqual(keys);
      const first = await store.listPage(p);
      expect(first.objects).toHaveLength(1000);
      const second = await store.listPage(p, { pageToken: first.nextPageToken! });
      expect(second.objects.map((o) => o.key)).toEqual(keys.slice(1000));
      expect(second.nextPageToken).toBeUndefined();
    }, 120_000);

    it("streams a 64 MiB object in and out without holding it in memory", async () => {
      const key = `${scope()}big.bin`;
      const size = 64 * MiB;
      const probe = memoryProbe();
      const src = generated(size, { onChunk: (produced) => produced % (4 * MiB) === 0 && probe.sample() });
      const info = await store.put(key, src.stream);
      const putMem = probe.result();
      expect(info.size).toBe(size);
      expect((await store.stat(key))?.size).toBe(size);

      const readProbe = memoryProbe();
      const hash = createHash("sha256");
      let read = 0;
      for await (const chunk of await store.get(key)) {
        hash.update(chunk as Buffer);
        read += (chunk as Buffer).length;
        if (read % (4 * MiB) < (chunk as Buffer).length) readProbe.sample();
      }
      const getMem = readProbe.result();
      expect(read).toBe(size);
      expect(hash.digest("hex")).toBe(src.sha256());
      console.info(`[${name}] 64 MiB put: live buffers +${putMem.buffersMiB.toFixed(1)} MiB, rss +${putMem.rssMiB.toFixed(1)} MiB; get: +${getMem.buffersMiB.toFixed(1)} MiB, rss +${getMem.rssMiB.toFixed(1)} MiB`);
      // Buffering the object would keep >= 64 MiB alive; a part/chunk at a time stays far below.
      expect(putMem.buffersMiB).toBeLessThan(24);
      expect(getMem.buffersMiB).toBeLessThan(24);
      expect(putMem.rssMiB).toBeLessThan(size / MiB);

      const mid = await collect(await store.get(key, { start: 40 * MiB - 3, end: 40 * MiB + 4 }));
      expect(mid).toHaveLength(8);
      await store.delete(key);
    }, 120_000);

    it("publishes a manifest create-only, then compare-and-swaps it", async () => {
      const key = `${scope()}manifest.json`;
      const v1 = await putJson(store, key, { version: 1 }, { ifNoneMatch: "*" });
      await expect(putJson(store, key, { version: "other" }, { ifNoneMatch: "*" })).rejects.toBeInstanceOf(PreconditionFailedError);
      expect(await getJson(store, key)).toEqual({ version: 1 });

      const v2 = await putJson(store, key, { version: 2 }, { ifMatch: v1.etag });
      expect(v2.etag).not.toBe(v1.etag);
      expect((await store.stat(key))?.etag).toBe(v2.etag);
      const stale = putJson(store, key, { version: "stale" }, { ifMatch: v1.etag });
      await expect(stale).rejects.toBeInstanceOf(PreconditionFailedError);
      await expect(stale).rejects.toMatchObject({ key });
      expect(await getJson(store, key)).toEqual({ version: 2 });

      await expect(putJson(store, `${key}.missing`, {}, { ifMatch: v1.etag })).rejects.toBeInstanceOf(PreconditionFailedError);
      expect(await store.stat(`${key}.missing`)).toBeUndefined();
      // Conditional streams are rejected too, and leave the object alone.
      await expect(store.put(key, Readable.from(["x"]), { ifNoneMatch: "*" })).rejects.toBeInstanceOf(PreconditionFailedError);
      expect(await getJson(store, key)).toEqual({ version: 2 });
    });

    it("lets exactly one of 20 concurrent create-only puts win", async () => {
      const key = `${scope()}race`;
      const results = await Promise.allSettled(
        Array.from({ length: 20 }, (_, i) => store.put(key, Readable.from([`writer ${i}`]), { ifNoneMatch: "*" })),
      );
      const won = results.flatMap((r, i) => (r.status === "fulfilled" ? [i] : []));
      expect(won).toHaveLength(1);
      for (const r of results) if (r.status === "rejected") expect(r.reason).toBeInstanceOf(PreconditionFailedError);
      expect((await store.getBuffer(key)).toString()).toBe(`writer ${won[0]}`);
    });

    it("keeps concurrent plain puts whole: the last one wins, never a mix", async () => {
      const key = `${scope()}mixed`;
      const size = 256 * 1024;
      const body = (i: number) =>
        Readable.from((function* () {
          for (let off = 0; off < size; off += 16 * 1024) yield Buffer.alloc(16 * 1024, i);
        })());
      await Promise.all(Array.from({ length: 20 }, (_, i) => store.put(key, body(i + 1))));
      const data = await store.getBuffer(key);
      expect(data).toHaveLength(size);
      expect(data.every((b) => b === data[0])).toBe(true);
    });

    it("serialises read-modify-write with ifMatch (updateJson from 8 writers)", async () => {
      const key = `${scope()}counter.json`;
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          for (let i = 0; i < 5; i++) await updateJson<{ n: number }>(store, key, (c) => ({ n: (c?.n ?? 0) + 1 }));
        }),
      );
      expect(await getJson(store, key)).toEqual({ n: 40 });
    });

    it("leaves no object and no partial data when the body stream fails", async () => {
      const p = scope();
      for (const failAt of [MiB, 10 * MiB]) {
        const key = `${p}failed-${failAt}`;
        await expect(store.put(key, generated(16 * MiB, { failAt }).stream)).rejects.toThrow("source failed on purpose");
        expect(await store.stat(key)).toBeUndefined();
        await noLeftovers();
      }
      expect(await listAll(store, p)).toEqual([]);
      // A failed overwrite keeps the old object.
      const key = `${p}kept`;
      const before = await store.put(key, "old");
      await expect(store.put(key, generated(2 * MiB, { failAt: MiB }).stream)).rejects.toThrow("source failed on purpose");
      expect((await store.getBuffer(key)).toString()).toBe("old");
      expect((await store.stat(key))?.etag).toBe(before.etag);
      await noLeftovers();
    });

    it("rejects invalid keys everywhere", async () => {
      const bad = ["", "/abs", "trailing/", "a//b", "a/../b", "..", ".", "a/./b", "back\\slash", "nul\0byte", "ctl\nx", ".objectstore/x", "k".repeat(1025), `a/${"s".repeat(256)}/b`];
      for (const key of bad) {
        await expect(store.put(key, "x"), JSON.stringify(key)).rejects.toBeInstanceOf(InvalidKeyError);
        await expect(store.get(key)).rejects.toBeInstanceOf(InvalidKeyError);
        await expect(store.getBuffer(key)).rejects.toBeInstanceOf(InvalidKeyError);
        await expect(store.stat(key)).rejects.toBeInstanceOf(InvalidKeyError);
        await expect(store.delete(key)).rejects.toBeInstanceOf(InvalidKeyError);
      }
      await expect(store.listPage("../")).rejects.toBeInstanceOf(InvalidKeyError);
      await expect(listAll(store, "a/../")).rejects.toBeInstanceOf(InvalidKeyError);
      // Dots inside a segment are fine.
      const ok = `${scope()}..hidden/.x/a..b/${"s".repeat(255)}`;
      await store.put(ok, "ok");
      expect((await store.getBuffer(ok)).toString()).toBe("ok");
    });
  });
}
