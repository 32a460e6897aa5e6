/**
 * The sync step's HTTP hook: the API key it sends, which answers it retries (in-process, with
 * backoff) and which fail at once, and the CLI reading the key from the environment.
 * The hook against the real gateway and Data service: services/data/src/sync.test.ts.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { syncApiKey } from "./cli.js";
import { httpSyncHook, type PublishedVersion } from "./steps/sync.js";
import { PipelineInputError, TransientError, isTransient } from "./util/errors.js";

const VERSION: PublishedVersion = {
  dataset: "flickr8k",
  version: "0123456789abcdef",
  manifestKey: "datasets/flickr8k/versions/0123456789abcdef/manifest.json",
  publishedAt: "2026-01-01T00:00:00.000Z",
  latest: true,
  counts: { images: 1, captions: 5, train: 1, dev: 0, test: 0, unsplit: 0 },
  totalBytes: 1,
  params: {},
};
const FAST = { retry: { baseDelayMs: 1, maxDelayMs: 5 } };

describe("httpSyncHook", () => {
  let server: Server;
  let url: string;
  /** Answers to give, in order (then 200). */
  let script: { status: number; body?: string; drop?: boolean }[] = [];
  let seen: { authorization: string | undefined; body: string }[] = [];

  beforeAll(async () => {
    server = createServer((req: IncomingMessage, res) => {
      let body = "";
      req.on("data", (c: Buffer) => (body += c.toString()));
      req.on("end", () => {
        seen.push({ authorization: req.headers.authorization, body });
        const next = script.shift() ?? { status: 200, body: "{}" };
        if (next.drop) return void req.socket.destroy();
        res.writeHead(next.status, { "content-type": "application/json" }).end(next.body ?? "");
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/data/register`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));
  afterEach(() => {
    script = [];
    seen = [];
  });

  const logs: string[] = [];
  const log = (m: string): void => void logs.push(m);

  it("POSTs the version as JSON with the API key as a bearer token", async () => {
    await httpSyncHook(url, { apiKey: "k-123" })(VERSION, log);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.authorization).toBe("Bearer k-123");
    expect(JSON.parse(seen[0]!.body)).toMatchObject({ dataset: "flickr8k", version: VERSION.version });
  });

  it("sends no authorization header without a key", async () => {
    await httpSyncHook(url)(VERSION, log);
    expect(seen[0]!.authorization).toBeUndefined();
  });

  it("retries 503, 502, 429 and dropped connections with backoff, then succeeds", async () => {
    script = [{ status: 503, body: "unavailable" }, { status: 502 }, { status: 429 }, { status: 0, drop: true }];
    logs.length = 0;
    await httpSyncHook(url, { apiKey: "k", ...FAST })(VERSION, log);
    expect(seen).toHaveLength(5);
    expect(logs.filter((l) => l.includes("retry"))).toHaveLength(4);
    expect(logs.at(-1)).toContain("accepted version");
  });

  it("gives up on a server that stays unavailable with a transient error (the CLI exits 75: Argo retries the step)", async () => {
    script = Array.from({ length: 10 }, () => ({ status: 503, body: '{"code":"unavailable","message":"data is down"}' }));
    const err = await httpSyncHook(url, { retry: { attempts: 3, baseDelayMs: 1 } })(VERSION, log).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransientError);
    expect(isTransient(err)).toBe(true);
    expect(String((err as Error).message)).toMatch(/HTTP 503: .*data is down/);
    expect(seen).toHaveLength(3);
  });

  it.each([
    [401, '{"code":"unauthenticated","message":"missing API key"}', undefined, /HTTP 401: .*missing API key.*no API key sent: set GLIMPSE_SYNC_API_KEY/],
    [403, '{"code":"permission_denied","message":"this key is read-only"}', "read-key", /HTTP 403: .*read-only.*must be a write key/],
    [404, '{"code":"not_found","message":"no manifest"}', "k", /HTTP 404: .*no manifest/],
    [400, '{"code":"invalid_argument"}', "k", /HTTP 400: .*invalid_argument/],
  ])("fails at once on HTTP %i, naming the status and the body", async (status, body, apiKey, message) => {
    script = [{ status, body }];
    const err = await httpSyncHook(url, { apiKey, ...FAST })(VERSION, log).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PipelineInputError);
    expect(isTransient(err)).toBe(false);
    expect(String((err as Error).message)).toMatch(message);
    expect(seen).toHaveLength(1);
  });
});

describe("the CLI's sync key", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "glimpse-sync-key-"));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("comes from GLIMPSE_SYNC_API_KEY, else from the file GLIMPSE_SYNC_API_KEY_FILE names", async () => {
    const file = join(dir, "api-key");
    await writeFile(file, "from-file\n");
    expect(await syncApiKey({ GLIMPSE_SYNC_API_KEY: " from-env " })).toBe("from-env");
    expect(await syncApiKey({ GLIMPSE_SYNC_API_KEY: "", GLIMPSE_SYNC_API_KEY_FILE: file })).toBe("from-file");
    expect(await syncApiKey({})).toBeUndefined();
    await expect(syncApiKey({ GLIMPSE_SYNC_API_KEY_FILE: join(dir, "missing") })).rejects.toThrow(/GLIMPSE_SYNC_API_KEY_FILE/);
  });
});
