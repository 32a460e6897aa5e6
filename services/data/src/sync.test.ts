/**
 * The pipeline's sync step (what the Argo workflow's last step runs) against the real gateway
 * and Data service over sockets, with API keys configured as in the chart:
 * RegisterDatasetVersion is ACCESS_WRITE, so /data/register refuses the step without a write
 * key (401, read key: 403) — at once, naming the answer — and records the version with one.
 */
import { mkdtempSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { FsObjectStore } from "@glimpse/objectstore";
import { httpSyncHook, readLatest, runSteps, resolveParams } from "@glimpse/pipeline";
import { EXIT, main } from "@glimpse/pipeline/cli";
import { makeFlickr8kFixture, type Fixture } from "@glimpse/pipeline/testing";
import type { RunningServer } from "@glimpse/rpc";
import { TEST_READ_KEY, TEST_WRITE_KEY, testConfig } from "@glimpse/runtime/testing";
import { build as buildGateway, type RunningGateway } from "@glimpse/gateway";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { recordKey } from "./catalog.js";
import { build } from "./server.js";

describe("the sync step against the gateway and the Data service, with API keys", () => {
  const cfg = testConfig();
  const dir = mkdtempSync(join(tmpdir(), "glimpse-sync-"));
  const storeRoot = join(dir, "store");
  const store = new FsObjectStore(storeRoot, "glimpse", { fsync: false });
  let fx: Fixture;
  let server: RunningServer;
  let gateway: RunningGateway;
  let syncUrl: string;
  let args: string[];
  const savedEnv = { ...process.env };

  beforeAll(async () => {
    fx = await makeFlickr8kFixture(join(dir, "fx"));
    server = await build(cfg, { port: 0, store });
    gateway = await buildGateway(cfg, { port: 0, targets: [{ name: "data", url: server.url }, { name: "ranking", url: server.url }, { name: "training", url: server.url }] });
    syncUrl = `http://127.0.0.1:${gateway.port}/data/register`;
    // What the Argo steps pass (argo/workflowtemplate.yaml), with a local fs store for the upload.
    args = [
      `--work-dir=${join(dir, "work")}`,
      "--progress=json",
      `--images-url=${pathToFileURL(fx.imagesZip).href}`,
      `--captions-url=${pathToFileURL(fx.captionsZip).href}`,
      "--store=fs",
      `--store-root=${storeRoot}`,
      "--bucket=glimpse",
      `--sync-url=${syncUrl}`,
    ];
    process.env["GLIMPSE_LOG_LEVEL"] = "silent";
    delete process.env["GLIMPSE_SYNC_API_KEY"];
    delete process.env["GLIMPSE_SYNC_API_KEY_FILE"];
  }, 120_000);

  afterAll(async () => {
    process.env = savedEnv;
    await gateway?.close(100);
    await server?.close(100);
    await rm(dir, { recursive: true, force: true });
  });

  const registered = async (version: string): Promise<boolean> => (await store.stat(recordKey("flickr8k", version))) !== undefined;
  const latest = async (): Promise<string> => (await readLatest(store, "flickr8k"))?.pointer?.version ?? "";

  it("fails without a key: the CLI exits 1 (not 75: a retry would not help), nothing is registered", async () => {
    const code = await main(["run", ...args]);
    expect(code).toBe(EXIT.failed);
    // The upload step published the version; only the sync step failed.
    const version = await latest();
    expect(version).toMatch(/^[0-9a-f]{16}$/);
    expect(await registered(version)).toBe(false);
  }, 120_000);

  it("names the gateway's answer: 401 without a key, 403 with a read-only key", async () => {
    const params = resolveParams({ imagesUrl: pathToFileURL(fx.imagesZip).href, captionsUrl: pathToFileURL(fx.captionsZip).href });
    const opts = { workDir: join(dir, "work"), store };
    await expect(runSteps(params, { ...opts, sync: httpSyncHook(syncUrl) }, ["sync"], { rerun: true })).rejects.toThrow(/HTTP 401: .*unauthenticated.*GLIMPSE_SYNC_API_KEY/s);
    await expect(runSteps(params, { ...opts, sync: httpSyncHook(syncUrl, { apiKey: TEST_READ_KEY }) }, ["sync"], { rerun: true })).rejects.toThrow(
      /HTTP 403: .*permission_denied.*write key/s,
    );
  }, 60_000);

  it("registers the version with the write key from GLIMPSE_SYNC_API_KEY (the Argo sync step's Secret)", async () => {
    process.env["GLIMPSE_SYNC_API_KEY"] = TEST_WRITE_KEY;
    const code = await main(["sync", ...args]);
    expect(code).toBe(EXIT.ok);
    expect(await registered(await latest())).toBe(true);
  }, 60_000);
});
