import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { data, dataset as ds } from "@glimpse/api";
import { makeFlickr8kFixture, type Fixture } from "@glimpse/pipeline/testing";
import type { RunningServer } from "@glimpse/rpc";
import { TEST_WRITE_KEY, testConfig } from "@glimpse/runtime/testing";
import { build as buildGateway, type RunningGateway } from "@glimpse/gateway";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { build } from "./server.js";

const auth = { headers: { authorization: `Bearer ${TEST_WRITE_KEY}` } };

describe("Data service over real sockets, through the gateway", () => {
  const cfg = testConfig();
  let fx: Fixture;
  let server: RunningServer;
  let gateway: RunningGateway;
  let base: string;
  let client: ReturnType<typeof createClient<typeof data.DataService>>;

  beforeAll(async () => {
    fx = await makeFlickr8kFixture(mkdtempSync(join(tmpdir(), "glimpse-data-fx-")));
    server = await build(cfg, { port: 0 });
    gateway = await buildGateway(cfg, { port: 0, targets: [{ name: "data", url: server.url }, { name: "ranking", url: server.url }, { name: "training", url: server.url }] });
    base = `http://127.0.0.1:${gateway.port}`;
    client = createClient(data.DataService, createConnectTransport({ baseUrl: base, httpVersion: "1.1" }));
  });

  afterAll(async () => {
    await gateway?.close(100);
    await server?.close(100);
  });

  it("says there is nothing yet before a pipeline run", async () => {
    const err = await client.getDatasetInfo({}).catch((e: unknown) => ConnectError.from(e));
    expect(err).toMatchObject({ code: Code.NotFound });
    expect((await client.listDatasetVersions({})).versions).toEqual([]);
  });

  it("refuses bad pipeline parameters with field violations, without starting a run", async () => {
    const err = (await client
      .startPipelineRun({ params: { imagesUrl: "ftp://x", sampleRatio: 2, trainRatio: 0.5, devRatio: 0.1, testRatio: 0.1 } }, auth)
      .catch((e: unknown) => ConnectError.from(e))) as ConnectError;
    expect(err.code).toBe(Code.InvalidArgument);
    expect(err.message).toContain("params.images_url");
    expect(err.message).toContain("params.sample_ratio");
    expect(err.message).toContain("params.train_ratio");
    expect((await client.listPipelineRuns({})).runs).toEqual([]);
  });

  it("runs the pipeline through the earlier REST path, streams its steps, and publishes a version", async () => {
    const res = await fetch(`${base}/data/download`, {
      method: "POST",
      headers: { "content-type": "application/json", ...auth.headers },
      body: JSON.stringify({ images_url: `file://${fx.imagesZip}`, captions_url: `file://${fx.captionsZip}` }),
    });
    expect(res.status).toBe(200);
    const { run } = (await res.json()) as { run: { run_id: string } };
    const seen = new Set<string>();
    let last: data.PipelineRun | undefined;
    for await (const msg of client.watchPipelineRun({ runId: run.run_id })) {
      last = msg.run;
      for (const s of msg.run?.steps ?? []) if (s.state === data.RunState.SUCCEEDED) seen.add(data.PipelineStep[s.step]!);
    }
    expect(last?.state, last?.error).toBe(data.RunState.SUCCEEDED);
    expect([...seen].sort()).toEqual(["DOWNLOAD", "EXTRACT", "PROCESS", "SPLIT", "SYNC", "UPLOAD", "VALIDATE"]);
    expect(last?.datasetVersion).toMatch(/^[0-9a-f]{16}$/);

    const info = (await client.getDatasetInfo({})).version!;
    expect(info.version).toBe(last!.datasetVersion);
    expect(info.latest).toBe(true);
    expect(Number(info.imageCount)).toBe(fx.expected.images);
    const count = (s: ds.Split) => Number(info.splits.find((x) => x.split === s)?.images);
    expect([count(ds.Split.TRAIN), count(ds.Split.DEV), count(ds.Split.TEST)]).toEqual([fx.expected.train, fx.expected.dev, fx.expected.test]);
    expect(info.publishedAt).toBeDefined(); // recorded by the sync step
    expect((await client.getPipelineRun({ runId: run.run_id })).run?.state).toBe(data.RunState.SUCCEEDED);
  });

  it("pages through samples of one split and serves image bytes with caching headers", async () => {
    const ids: string[] = [];
    let pageToken = "";
    do {
      const page = await client.listSamples({ split: ds.Split.TRAIN, pageSize: 5, pageToken });
      for (const s of page.samples) {
        expect(s.split).toBe(ds.Split.TRAIN);
        expect(s.captions.length).toBeGreaterThan(0);
        ids.push(s.imageId);
      }
      pageToken = page.nextPageToken;
    } while (pageToken);
    expect(ids.length).toBe(fx.expected.train);
    expect(new Set(ids).size).toBe(ids.length);

    const info = (await client.getDatasetInfo({})).version!;
    const url = `${base}/data/images/flickr8k/${info.version}/${ids[0]}`;
    const img = await fetch(url);
    expect(img.status).toBe(200);
    expect(img.headers.get("content-type")).toBe("image/jpeg");
    expect(img.headers.get("cache-control")).toContain("immutable");
    const bytes = Buffer.from(await img.arrayBuffer());
    expect(bytes.subarray(0, 2)).toEqual(Buffer.from([0xff, 0xd8]));
    const again = await fetch(url, { headers: { "if-none-match": img.headers.get("etag")! } });
    expect(again.status).toBe(304);

    expect((await fetch(`${base}/data/images/flickr8k/${info.version}/no_such_image`)).status).toBe(404);
    const samples = await fetch(`${base}/data/samples?split=test&page_size=3`);
    expect(((await samples.json()) as { samples: unknown[] }).samples).toHaveLength(3);
    const bad = await fetch(`${base}/data/samples?page_size=1000`);
    expect(bad.status).toBe(400);
  });

  it("reports a second identical run as skipped: nothing new to publish", async () => {
    const { run } = await client.startPipelineRun({ params: { imagesUrl: `file://${fx.imagesZip}`, captionsUrl: `file://${fx.captionsZip}` } }, auth);
    let last: data.PipelineRun | undefined;
    for await (const msg of client.watchPipelineRun({ runId: run!.runId })) last = msg.run;
    expect([data.RunState.SKIPPED, data.RunState.SUCCEEDED]).toContain(last?.state);
    expect((await client.listDatasetVersions({})).versions).toHaveLength(1);
    expect((await client.listPipelineRuns({ pageSize: 1 })).nextPageToken).not.toBe("");
  });
});
