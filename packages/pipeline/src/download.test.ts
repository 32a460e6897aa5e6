import { randomBytes, createHash } from "node:crypto";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { downloadToFile } from "./download.js";
import { startStaticServer, type StaticServer } from "./testing/http-server.js";
import { PipelineInputError } from "./util/errors.js";

const fast = { retry: { attempts: 5, baseDelayMs: 5, maxDelayMs: 20 } };

describe("download", () => {
  let dir: string;
  let server: StaticServer;
  let data: Buffer;
  let sha: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "glimpse-dl-"));
    data = randomBytes(3 * 1024 * 1024 + 123);
    sha = createHash("sha256").update(data).digest("hex");
    await writeFile(join(dir, "blob.zip"), data);
    server = await startStaticServer({ "/blob.zip": join(dir, "blob.zip") });
  });
  afterAll(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("streams to disk and verifies the sha256", async () => {
    const dest = join(dir, "a.zip");
    const seen: number[] = [];
    const r = await downloadToFile(server.urlOf("/blob.zip"), dest, { ...fast, expectedSha256: sha, onProgress: (d) => seen.push(d) });
    expect(r).toMatchObject({ bytes: data.length, sha256: sha, attempts: 1, resumed: false });
    expect((await readFile(dest)).equals(data)).toBe(true);
    expect(seen.at(-1)).toBe(data.length);
  });

  it("resumes with a Range request after the connection drops", async () => {
    const before = server.requests.length;
    server.addFault({ path: "/blob.zip", dropAfterBytes: 1_000_000, times: 2 });
    const dest = join(dir, "b.zip");
    const retries: string[] = [];
    const r = await downloadToFile(server.urlOf("/blob.zip"), dest, { ...fast, expectedSha256: sha, onRetry: (e) => retries.push(String(e)) });
    expect(r).toMatchObject({ bytes: data.length, sha256: sha, attempts: 3, resumed: true });
    const reqs = server.requests.slice(before);
    expect(reqs.map((q) => [q.status, q.dropped])).toEqual([
      [200, true],
      [206, true],
      [206, false],
    ]);
    // Each retry asks for the bytes after those it has on disk (at most what the server sent).
    const starts = reqs.map((q) => Number(/^bytes=(\d+)-$/.exec(q.range ?? "bytes=0-")?.[1]));
    expect(starts[0]).toBe(0);
    expect(starts[1]).toBeGreaterThan(0);
    expect(starts[1]).toBeLessThanOrEqual(1_000_000);
    expect(starts[2]).toBeGreaterThan(starts[1] as number);
    expect(starts[2]).toBeLessThanOrEqual((starts[1] as number) + 1_000_000);
    expect(reqs[1]?.ifRange).toMatch(/^"/); // guarded by the ETag
    expect(retries).toHaveLength(2);
    expect((await readFile(dest)).equals(data)).toBe(true);
  });

  it("retries server errors with backoff, and gives up on 404 at once", async () => {
    server.addFault({ path: "/blob.zip", status: 503, times: 2 });
    const r = await downloadToFile(server.urlOf("/blob.zip"), join(dir, "c.zip"), fast);
    expect(r.attempts).toBe(3);
    const before = server.requests.length;
    await expect(downloadToFile(server.urlOf("/missing.zip"), join(dir, "d.zip"), fast)).rejects.toThrow(/HTTP 404/);
    expect(server.requests.length - before).toBe(1);
  });

  it("fails on a checksum mismatch and removes the file", async () => {
    const dest = join(dir, "e.zip");
    await expect(downloadToFile(server.urlOf("/blob.zip"), dest, { ...fast, expectedSha256: "0".repeat(64) })).rejects.toThrow(PipelineInputError);
    await expect(stat(`${dest}.part`)).rejects.toThrow();
    await expect(stat(dest)).rejects.toThrow();
  });

  it("copies file:// sources, resuming a partial copy", async () => {
    const dest = join(dir, "f.zip");
    await writeFile(`${dest}.part`, data.subarray(0, 1234));
    const r = await downloadToFile(pathToFileURL(join(dir, "blob.zip")).href, dest, { expectedSha256: sha });
    expect(r).toMatchObject({ bytes: data.length, sha256: sha, resumed: true });
    await expect(downloadToFile(pathToFileURL(join(dir, "nope.zip")).href, join(dir, "g.zip"))).rejects.toThrow(PipelineInputError);
  });

  it("restarts from zero when the remote file changed (If-Range)", async () => {
    const dest = join(dir, "h.zip");
    // A stale partial download of another version of the file, with its old validator.
    await writeFile(`${dest}.part`, randomBytes(5000));
    await writeFile(`${dest}.part.json`, JSON.stringify({ url: server.urlOf("/blob.zip"), etag: '"old-etag"' }));
    const r = await downloadToFile(server.urlOf("/blob.zip"), dest, { ...fast, expectedSha256: sha });
    expect(r.sha256).toBe(sha);
    const last = server.requests.at(-1);
    expect(last).toMatchObject({ status: 200, range: "bytes=5000-", ifRange: '"old-etag"' });
  });
});
