import { mkdtempSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { pathToFileURL } from "node:url";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { data, dataset as ds, rpcDetails } from "@glimpse/api";
import { makeFlickr8kFixture, type Fixture } from "@glimpse/pipeline/testing";
import type { RunningServer } from "@glimpse/rpc";
import { TEST_WRITE_KEY, testConfig } from "@glimpse/runtime/testing";
import { build as buildGateway, type RunningGateway } from "@glimpse/gateway";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { build } from "./server.js";

const auth = { headers: { authorization: `Bearer ${TEST_WRITE_KEY}` } };

/** A loopback HTTP server that counts its requests; `handle` answers them. */
async function countingServer(handle: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; requests: () => number; close: () => Promise<void> }> {
  let n = 0;
  const server = createServer((req, res) => {
    n++;
    handle(req, res);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests: () => n,
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

describe("Data service over real sockets, through the gateway", () => {
  let cfg: ReturnType<typeof testConfig>;
  let fx: Fixture;
  let server: RunningServer;
  let gateway: RunningGateway;
  let base: string;
  let client: ReturnType<typeof createClient<typeof data.DataService>>;

  beforeAll(async () => {
    const fxDir = mkdtempSync(join(tmpdir(), "glimpse-data-fx-"));
    fx = await makeFlickr8kFixture(fxDir);
    // the fixture's folder, public http(s), and loopback http by this one name (the cancel and redirect tests' servers)
    cfg = testConfig({ GLIMPSE_SOURCE_ALLOWLIST: `${pathToFileURL(fxDir).href},http:,https:,http://127.0.0.1` });
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
    // The resource method names them under the run it was given.
    const created = (await client.createPipelineRun({ pipelineRun: { params: { sampleRatio: 2 } } }, auth).catch((e: unknown) => ConnectError.from(e))) as ConnectError;
    expect([created.code, created.message]).toEqual([Code.InvalidArgument, expect.stringContaining("pipeline_run.params.sample_ratio")]);
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
    expect(info.publishTime).toBeDefined(); // recorded by the sync step
    expect(info.publishedAt).toEqual(info.publishTime);
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
    // Above the max (200) reads as the max (AIP-158); a negative size is refused.
    const big = await fetch(`${base}/data/samples?page_size=1000`);
    expect(((await big.json()) as { samples: unknown[] }).samples.length).toBe(Math.min(200, Number(info.imageCount)));
    expect((await fetch(`${base}/data/samples?page_size=-1`)).status).toBe(400);
  });

  it("reports a second identical run as skipped: nothing new to publish (the run as a resource: name, *_time)", async () => {
    const { pipelineRun: run } = await client.createPipelineRun({ pipelineRun: { params: { imagesUrl: `file://${fx.imagesZip}`, captionsUrl: `file://${fx.captionsZip}` } } }, auth);
    expect(run?.name).toBe(`pipelineRuns/${run?.runId}`);
    let last: data.PipelineRun | undefined;
    for await (const msg of client.watchPipelineRun({ name: run!.name })) {
      expect(msg.run).toEqual(msg.pipelineRun); // the deprecated field, filled for one release
      last = msg.pipelineRun;
    }
    expect(last?.state, last?.error).toBe(data.RunState.SKIPPED);
    const got = (await client.getPipelineRun({ name: run!.name })).pipelineRun!;
    const ms = (t: { seconds: bigint; nanos: number } | undefined) => Number(t!.seconds) * 1e3 + t!.nanos / 1e6;
    expect([got.createTime, got.endTime]).toEqual([got.createdAt, got.finishedAt]);
    expect(ms(got.createTime)).toBeLessThanOrEqual(ms(got.startTime));
    expect(ms(got.startTime)).toBeLessThanOrEqual(ms(got.endTime));
    for (const step of got.steps.filter((x) => x.state !== data.RunState.PENDING)) expect([step.startTime, step.endTime]).toEqual([step.startedAt, step.finishedAt]);
    expect((await client.listDatasetVersions({})).versions).toHaveLength(1);
    expect((await client.listPipelineRuns({ pageSize: 1 })).nextPageToken).not.toBe("");
  });

  it("cancels a running pipeline run: CANCELLED, nothing published, the latest version intact", async () => {
    // A loopback source that sends its headers and a first chunk, then stalls: the run is
    // certainly still downloading when the cancel arrives.
    let reached!: () => void;
    const downloading = new Promise<void>((r) => (reached = r));
    const stalled = await countingServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/zip", "content-length": String(1 << 30) });
      res.write(Buffer.alloc(1024));
      reached();
    });
    try {
      const before = (await client.getDatasetInfo({})).version;
      const url = `${stalled.url}/Flickr8k_Dataset.zip`;
      const { pipelineRun: run } = await client.createPipelineRun({ pipelineRun: { params: { imagesUrl: url, captionsUrl: `file://${fx.captionsZip}` } } }, auth);
      await downloading;
      const cancelled = await client.cancelPipelineRun({ name: run!.name }, auth);
      expect(cancelled.pipelineRun?.state).toBe(data.RunState.CANCELLED);
      expect((await client.getPipelineRun({ name: run!.name })).pipelineRun?.state).toBe(data.RunState.CANCELLED);
      // cancelling a finished run changes nothing; the deprecated run_id names the same run
      expect((await client.cancelPipelineRun({ runId: run!.runId }, auth)).run?.state).toBe(data.RunState.CANCELLED);
      // a name and a run_id that disagree are refused
      const both = await client.getPipelineRun({ name: run!.name, runId: "pr-other" }).catch((e: unknown) => ConnectError.from(e));
      expect(both).toMatchObject({ code: Code.InvalidArgument, message: expect.stringContaining("run_id: names another run than name") });
      expect((await client.listDatasetVersions({})).versions).toHaveLength(1);
      expect((await client.getDatasetInfo({})).version).toEqual(before);
    } finally {
      await stalled.close();
    }
    const bad = await client.cancelPipelineRun({ name: "pipelineRuns/../x" }, auth).catch((e: unknown) => ConnectError.from(e));
    expect(bad).toMatchObject({ code: Code.InvalidArgument, message: expect.stringContaining("name: must match") });
    const badId = await client.cancelPipelineRun({ runId: "../x" }, auth).catch((e: unknown) => ConnectError.from(e));
    expect(badId).toMatchObject({ code: Code.InvalidArgument, message: expect.stringContaining("run_id") });
  });

  it("refuses sources outside the allow-list before any download: PERMISSION_DENIED naming each field", async () => {
    const runsBefore = (await client.listPipelineRuns({ pageSize: 100 })).runs.length;
    const res = await fetch(`${base}/data/download`, {
      method: "POST",
      headers: { "content-type": "application/json", ...auth.headers },
      body: JSON.stringify({ images_url: "file:///etc/passwd", captions_url: "file:///etc/shadow" }),
    });
    const body = (await res.json()) as { code: string; message: string };
    expect([res.status, body.code]).toEqual([403, "permission_denied"]);
    expect(body.message).toMatch(/params\.images_url: file:\/\/\/etc\/passwd is outside the allowed folders/);
    expect(body.message).toMatch(/params\.captions_url: file:\/\/\/etc\/shadow is outside the allowed folders/);

    // loopback by another name than the listed one: refused statically, the server never asked
    const local = await countingServer((_q, r) => r.end("zip"));
    try {
      const err = (await client
        .startPipelineRun({ params: { imagesUrl: local.url.replace("127.0.0.1", "localhost") + "/i.zip", captionsUrl: `file://${fx.captionsZip}` } }, auth)
        .catch((e: unknown) => ConnectError.from(e))) as ConnectError;
      expect(err.code).toBe(Code.PermissionDenied);
      expect(err.message).toMatch(/params\.images_url: localhost:\d+ is a loopback, private or link-local address/);
      expect(err.message).not.toContain("captions_url");
      const violations = err.findDetails(rpcDetails.BadRequestSchema)[0]?.fieldViolations.map((f) => [f.field, f.reason]);
      expect(violations).toEqual([["params.images_url", "INTERNAL_ADDRESS"]]);
      expect(local.requests()).toBe(0);
    } finally {
      await local.close();
    }
    expect((await client.listPipelineRuns({ pageSize: 100 })).runs.length).toBe(runsBefore);
  });

  it("re-checks redirects: a listed source redirecting to an unlisted loopback host fails the run, unfetched", async () => {
    const target = await countingServer((_q, r) => r.end("secret"));
    const redirector = await countingServer((_q, r) => {
      r.writeHead(302, { location: `${target.url.replace("127.0.0.1", "localhost")}/internal.zip` });
      r.end();
    });
    try {
      const before = (await client.getDatasetInfo({})).version;
      const { run } = await client.startPipelineRun({ params: { imagesUrl: `${redirector.url}/i.zip`, captionsUrl: `file://${fx.captionsZip}` } }, auth);
      let last: data.PipelineRun | undefined;
      for await (const msg of client.watchPipelineRun({ runId: run!.runId })) last = msg.run;
      expect(last?.state).toBe(data.RunState.FAILED);
      expect(last?.error).toMatch(/localhost:\d+ is a loopback, private or link-local address/);
      expect(redirector.requests()).toBe(1); // not retried: a refusal is not transient
      expect(target.requests()).toBe(0);
      expect((await client.getDatasetInfo({})).version).toEqual(before);
    } finally {
      await target.close();
      await redirector.close();
    }
  });

  it("registers a published dataset version (RegisterDatasetVersion), refusing bad and unknown ones", async () => {
    const published = (await client.getDatasetInfo({})).version!;
    const res = await client.registerDatasetVersion({ dataset: published.dataset, version: published.version, markLatest: true }, auth);
    expect([res.version?.dataset, res.version?.version, res.version?.imageCount, res.version?.latest]).toEqual([published.dataset, published.version, published.imageCount, true]);
    expect((await client.listDatasetVersions({})).versions.map((v) => v.version)).toEqual([published.version]);

    const bad = (await client.registerDatasetVersion({ dataset: "Bad_Name", version: "nope" }, auth).catch((e: unknown) => ConnectError.from(e))) as ConnectError;
    expect(bad.code).toBe(Code.InvalidArgument);
    expect(bad.message).toContain("dataset");
    expect(bad.message).toContain("version");
    const unknown = (await client.registerDatasetVersion({ dataset: published.dataset, version: "0123456789abcdef" }, auth).catch((e: unknown) => ConnectError.from(e))) as ConnectError;
    expect(unknown.code).toBe(Code.NotFound);
    // a read-only caller may not register
    const anon = (await client.registerDatasetVersion({ dataset: published.dataset, version: published.version }).catch((e: unknown) => ConnectError.from(e))) as ConnectError;
    expect(anon.code).toBe(Code.Unauthenticated);
    expect((await client.getDatasetInfo({})).version?.version).toBe(published.version);
  });
});
