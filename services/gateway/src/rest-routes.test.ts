/**
 * The REST paths come from the protos' google.api.http annotations (packages/rpc rest.ts): this
 * walks every annotated RPC, checks the earlier API's paths are all there, and calls each one
 * over HTTP through the gateway to see the RPC answer it (its response message, or its own error).
 */
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fromBinary, fromJson, getOption, hasOption, type DescMethod, type JsonValue } from "@bufbuild/protobuf";
import { data, ranking, rpcDetails, training } from "@glimpse/api";
import { http } from "@glimpse/api/gen/google/api/annotations_pb.js";
import { REST_ROUTES } from "@glimpse/rpc";
import { TEST_WRITE_KEY, testConfig } from "@glimpse/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestMesh, type TestMesh } from "./testing.js";

/** The earlier API's paths (the seed's Python API): every one must keep working. */
const EARLIER = [
  "POST /inference/text-to-image",
  "POST /inference/image-to-text",
  "POST /inference/batch-ranking",
  "POST /inference/rank-candidates",
  "POST /inference/upload-image",
  "GET /model/info",
  "GET /model/status",
  "GET /model/versions",
  "POST /model/promote",
  "POST /training/start",
  "GET /training/status",
  "GET /training/history",
  "POST /training/stop",
  "GET /data/info",
  "GET /data/versions",
  "GET /data/samples",
  "POST /data/download",
  "GET /data/runs",
  "GET /data/run",
  "POST /data/cancel",
  "POST /data/register",
  "GET /demo/queries",
  "GET /demo/search",
];

/** The resource paths (AIP-127 templates: path variables, custom verbs, DELETE, response_body). */
const RESOURCES = [
  "POST /v1/collections",
  "GET /v1/{name=collections/*}",
  "GET /v1/collections",
  "DELETE /v1/{name=collections/*}",
  "POST /v1/{name=collections/*}:sync",
  "POST /v1/{parent=collections/*}/photos",
  "GET /v1/{name=collections/*/photos/*}",
  "GET /v1/{parent=collections/*}/photos",
  "DELETE /v1/{name=collections/*/photos/*}",
  "GET /v1/{name=collections/*/photos/*}/thumbnail",
  "POST /v1/{name=collections/*}:search",
  "GET /v1/{parent=collections/*}/duplicates",
  "POST /v1/storage-events",
  "POST /v1/trainingRuns",
  "GET /v1/trainingRuns",
  "GET /v1/{name=trainingRuns/*}",
  "POST /v1/{name=trainingRuns/*}:cancel",
  "POST /v1/pipelineRuns",
  "GET /v1/pipelineRuns",
  "GET /v1/{name=pipelineRuns/*}",
  "POST /v1/{name=pipelineRuns/*}:cancel",
  "POST /v1/indexBuilds",
  "GET /v1/{name=indexBuilds/*}",
  "POST /v1/{name=indexBuilds/*}:cancel",
];

const DEMO_IMAGES = new URL("../../../demo/images/", import.meta.url).pathname;
const jpeg = () => readFileSync(join(DEMO_IMAGES, readdirSync(DEMO_IMAGES).find((f) => f.endsWith(".jpg"))!));

interface Call {
  /** Query string (GET) or JSON body (POST). */
  input?: Record<string, unknown>;
  /** POST a demo JPEG as the raw body (image/jpeg) instead. */
  image?: true;
  /** The answer expected from the RPC: 200 with its response message, or its error's code and field. */
  status: number;
  code?: string;
  field?: string;
  /** A template's path filled in (its variables bound from it). */
  path?: string;
  /** The service may not serve the RPC yet: its UNIMPLEMENTED (501) is accepted too. */
  pending?: true;
}

/** One call per annotated RPC, in the earlier API's shapes (the adapters: scope, split names, wrapped bodies, uploads). */
const CALLS: Record<string, Call> = {
  SearchImages: { input: { query: "a dog", top_k: 3, split: "test" }, status: 200 },
  SearchCaptions: { image: true, status: 200 },
  BatchSearchImages: { input: { queries: ["a dog", "a bike"], top_k: 2 }, status: 200 },
  RankCandidates: { input: { text: "a dog", candidate_texts: ["a dog runs", "a red car"] }, status: 200 },
  RankUploadedImage: { image: true, status: 200 },
  GetModelInfo: { status: 200 },
  GetModelStatus: { status: 200 },
  ListModelVersions: { input: { page_size: "5" }, status: 200 },
  PromoteModel: { input: { version: "m-0123456789abcdef" }, status: 404, code: "not_found", field: "version" },
  // No dataset is published in the test mesh: the service refuses for its own reason.
  StartTraining: { input: { epochs: 1 }, status: 400, code: "failed_precondition" },
  GetTrainingStatus: { input: { run_id: "tr-00000000000000000-000000" }, status: 404, code: "not_found" },
  ListTrainingRuns: { status: 200 },
  StopTraining: { input: { run_id: "tr-00000000000000000-000000" }, status: 404, code: "not_found" },
  GetDatasetInfo: { input: { dataset: "flickr8k" }, status: 404, code: "not_found" },
  ListDatasetVersions: { status: 200 },
  ListSamples: { input: { split: "test", page_size: "2" }, status: 404, code: "not_found" },
  // body: "params": the JSON body is the PipelineParams (a bad one, so nothing is downloaded).
  StartPipelineRun: { input: { sample_ratio: 2 }, status: 400, code: "invalid_argument", field: "params.sample_ratio" },
  // Pipeline runs as resources: the body is the PipelineRun (its params read); the earlier paths
  // (/data/runs, /data/run?run_id=, /data/cancel) are additional bindings, checked below.
  CreatePipelineRun: { input: { params: { sample_ratio: 2 } }, status: 400, code: "invalid_argument", field: "pipeline_run.params.sample_ratio" },
  ListPipelineRuns: { status: 200 },
  GetPipelineRun: { path: "/v1/pipelineRuns/pr-nope", status: 404, code: "not_found" },
  CancelPipelineRun: { path: "/v1/pipelineRuns/bad.id:cancel", status: 400, code: "invalid_argument", field: "name" },
  // Index builds as resources: the body is the IndexBuild; its name is the pair's.
  CreateIndexBuild: { input: { kind: "ivf" }, status: 400, code: "invalid_argument", field: "index_build.kind" },
  GetIndexBuild: { path: "/v1/indexBuilds/m-0123456789abcdef-0123456789abcdef", status: 404, code: "not_found" },
  CancelIndexBuild: { path: "/v1/indexBuilds/latest:cancel", status: 400, code: "invalid_argument", field: "name" },
  // The sync hook posts its whole record: fields the request lacks are dropped.
  RegisterDatasetVersion: { input: { dataset: "flickr8k", version: "0123456789abcdef", published_at: "2026-01-01T00:00:00Z" }, status: 404, code: "not_found" },
  ListDemoQueries: { status: 200 },
  DemoSearch: { input: { query: "a dog", top_k: "2" }, status: 200 },
  // The resource paths: a bad name bound from the path is refused by the request's rules, naming
  // its field (so the binding reached the RPC); `Bad%5FId` is percent-decoded to `Bad_Id`.
  CreateCollection: { input: { display_name: "x" }, status: 400, code: "invalid_argument", field: "collection_id" },
  GetCollection: { path: "/v1/collections/Bad%5FId", status: 400, code: "invalid_argument", field: "name" },
  ListCollections: { input: { page_size: "-1" }, status: 400, code: "invalid_argument", field: "page_size" },
  DeleteCollection: { path: "/v1/collections/Bad_Id", status: 400, code: "invalid_argument", field: "name" },
  SyncCollection: { path: "/v1/collections/Bad_Id:sync", status: 400, code: "invalid_argument", field: "name" },
  CreatePhoto: { path: "/v1/collections/Bad_Id/photos", image: true, status: 400, code: "invalid_argument", field: "parent" },
  GetPhoto: { path: "/v1/collections/holiday/photos/nothex", status: 400, code: "invalid_argument", field: "name" },
  // `skipped=true` is a bool field's text: taken as true, not refused as a string.
  ListPhotos: { path: "/v1/collections/Bad_Id/photos", input: { skipped: "true" }, status: 400, code: "invalid_argument", field: "parent" },
  DeletePhoto: { path: "/v1/collections/holiday/photos/nothex", status: 400, code: "invalid_argument", field: "name" },
  GetPhotoThumbnail: { path: "/v1/collections/holiday/photos/nothex/thumbnail", status: 400, code: "invalid_argument", field: "name" },
  SearchCollection: { path: "/v1/collections/Bad_Id:search", input: { text: "a dog" }, status: 400, code: "invalid_argument", field: "name", pending: true },
  // MinIO's webhook posts its own document: the fields the request does not name, at any depth, are dropped.
  ReceiveStorageEvents: {
    input: {
      EventName: "s3:ObjectCreated:Put",
      Key: "other-bucket/a.jpg",
      Records: [{ eventVersion: "2.0", eventTime: "2026-01-01T00:00:00.000Z", eventName: "s3:ObjectCreated:Put", userIdentity: { principalId: "x" }, s3: { s3SchemaVersion: "1.0", bucket: { name: "other-bucket", arn: "arn:aws:s3:::other-bucket" }, object: { key: "a.jpg", size: 3, eTag: "abc", userMetadata: {}, sequencer: "1" } } }],
    },
    status: 200,
  },
  ListCollectionDuplicates: { path: "/v1/collections/Bad_Id/duplicates", status: 400, code: "invalid_argument", field: "parent", pending: true },
  // Training runs as resources: the body is the TrainingRun (its config read); a bad config names
  // its path under training_run; names bound from the path.
  CreateTrainingRun: { input: { config: { epochs: 501 } }, status: 400, code: "invalid_argument", field: "training_run.config.epochs" },
  GetTrainingRun: { path: "/v1/trainingRuns/tr-00000000000000000-000000", status: 404, code: "not_found" },
  CancelTrainingRun: { path: "/v1/trainingRuns/bad.id:cancel", status: 400, code: "invalid_argument", field: "name" },
};

const annotated: DescMethod[] = [ranking.RankingService, training.TrainingService, data.DataService].flatMap((s) => s.methods.filter((m) => hasOption(m, http)));

describe("REST paths from google.api.http", () => {
  let mesh: TestMesh;
  const auth = { authorization: `Bearer ${TEST_WRITE_KEY}` };

  beforeAll(async () => {
    mesh = await startTestMesh(testConfig());
  }, 120_000);

  afterAll(async () => {
    await mesh?.close();
  });

  it("annotates every earlier path, and the route table is built from the annotations", () => {
    const paths = annotated.flatMap((m) => {
      const rule = getOption(m, http);
      return [rule, ...rule.additionalBindings].map((b) => `${b.pattern.case!.toUpperCase()} ${b.pattern.value}`);
    });
    expect(paths.sort()).toEqual([...EARLIER, ...RESOURCES].sort());
    expect(REST_ROUTES.map((r) => `${r.method} ${r.path}`).sort()).toEqual([...EARLIER, ...RESOURCES].sort());
    expect(Object.keys(CALLS).sort()).toEqual(annotated.map((m) => m.name).sort());
  });

  it("an additional binding serves the same RPC: GET /training/history is ListTrainingRuns at /v1/trainingRuns", async () => {
    const [earlier, aip] = await Promise.all([fetch(`${mesh.base}/training/history?page_size=5`), fetch(`${mesh.base}/v1/trainingRuns?page_size=5`)]);
    expect([earlier.status, aip.status]).toEqual([200, 200]);
    expect(await earlier.json()).toEqual(await aip.json());
  });

  it("the earlier pipeline-run paths are the resource methods: /data/runs, /data/run?run_id=, /data/cancel", async () => {
    const get = async (path: string) => {
      const res = await fetch(`${mesh.base}${path}`, { headers: auth });
      return [res.status, await res.json()];
    };
    expect(await get("/data/runs?page_size=5")).toEqual(await get("/v1/pipelineRuns?page_size=5"));
    expect(await get("/data/run?run_id=pr-nope")).toEqual(await get("/v1/pipelineRuns/pr-nope"));
    const cancel = await fetch(`${mesh.base}/data/cancel`, { method: "POST", headers: { ...auth, "content-type": "application/json" }, body: JSON.stringify({ run_id: "pr-nope" }) });
    expect([cancel.status, ((await cancel.json()) as { code: string }).code]).toEqual([404, "not_found"]);
    // Neither a name nor the earlier run_id: the name is required.
    const none = await fetch(`${mesh.base}/data/run`, { headers: auth });
    const detail = ((await none.json()) as { details: { type: string; value: string }[] }).details.find((d) => d.type === "google.rpc.BadRequest")!;
    expect([none.status, fromBinary(rpcDetails.BadRequestSchema, Buffer.from(detail.value, "base64")).fieldViolations.map((v) => `${v.field}:${v.reason}`)]).toEqual([400, ["name:REQUIRED"]]);
  });

  for (const method of annotated) {
    const rule = getOption(method, http);
    const verb = rule.pattern.case!.toUpperCase();
    const path = rule.pattern.value as string;
    it(`${verb} ${path} → ${method.parent.name}.${method.name}`, async () => {
      const call = CALLS[method.name]!;
      const at = call.path ?? path;
      let res: Response;
      if (verb === "GET" || verb === "DELETE") {
        const q = new URLSearchParams((call.input ?? {}) as Record<string, string>).toString();
        res = await fetch(`${mesh.base}${at}${q ? `?${q}` : ""}`, { method: verb, headers: auth });
      } else if (call.image) {
        res = await fetch(`${mesh.base}${at}`, { method: "POST", headers: { ...auth, "content-type": "image/jpeg" }, body: jpeg() });
      } else {
        res = await fetch(`${mesh.base}${at}`, { method: "POST", headers: { ...auth, "content-type": "application/json" }, body: JSON.stringify(call.input ?? {}) });
      }
      const body = (await res.json()) as Record<string, unknown>;
      // Not served yet: UNIMPLEMENTED, with nothing more to check.
      const unserved = call.pending && res.status === 501;
      expect([res.status, body["code"]], JSON.stringify(body).slice(0, 300)).toEqual(unserved ? [501, "unimplemented"] : [call.status, call.code]);
      if (res.status === 200) {
        // The RPC's response message, as protobuf JSON (no field it lacks).
        expect(() => fromJson(method.output, body as JsonValue)).not.toThrow();
      } else if (call.field && !unserved) {
        const detail = (body["details"] as { type: string; value: string }[]).find((d) => d.type === "google.rpc.BadRequest")!;
        expect(fromBinary(rpcDetails.BadRequestSchema, Buffer.from(detail.value, "base64")).fieldViolations.map((v) => v.field)).toContain(call.field);
      }
      // Another HTTP method is refused, naming the ones annotated at the path.
      const allow = annotated.filter((m) => getOption(m, http).pattern.value === path).map((m) => getOption(m, http).pattern.case!.toUpperCase()).sort();
      const wrong = await fetch(`${mesh.base}${at}`, { method: ["POST", "GET", "PUT"].find((v) => !allow.includes(v))!, headers: auth });
      expect([wrong.status, wrong.headers.get("allow")]).toEqual([405, allow.join(", ")]);
    });
  }

  it("the earlier wrapped bodies still work: {\"config\": …} and {\"params\": …}", async () => {
    const post = async (path: string, body: unknown) => {
      const res = await fetch(`${mesh.base}${path}`, { method: "POST", headers: { ...auth, "content-type": "application/json" }, body: JSON.stringify(body) });
      return [res.status, ((await res.json()) as { code?: string }).code];
    };
    expect(await post("/training/start", { config: { epochs: 1 } })).toEqual([400, "failed_precondition"]);
    expect(await post("/training/start", { config: { epochs: 9999 } })).toEqual([400, "invalid_argument"]);
    expect(await post("/data/download", { params: { sample_ratio: 2 } })).toEqual([400, "invalid_argument"]);
  });
});
