/**
 * The earlier REST paths (the seed's Python API) mapped onto the RPCs: one table, served by the
 * gateway (through gRPC clients of the services) and by a service for its own paths (through an
 * in-process client: startGrpcServer's `rest`). Bodies and query strings become the request
 * message, the response message goes back as protobuf JSON with snake_case names, and errors as
 * Connect error JSON with google.rpc details.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import { Http2ServerResponse, type Http2ServerRequest } from "node:http2";
import { fromJson, toJson, type DescMessage, type DescMethod, type DescService, type JsonValue } from "@bufbuild/protobuf";
import { Code, ConnectError, type CallOptions } from "@connectrpc/connect";
import { codeToHttpStatus, errorToJson } from "@connectrpc/connect/protocol-connect";
import { invalidArgument, type ServiceName } from "@glimpse/api";
import { REQUEST_ID_HEADER, requestIdFrom } from "@glimpse/logging";
import busboy from "busboy";
import { forwardedHeaders, nodeHeader, relay } from "./forward.js";

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

/** How an earlier REST path maps onto an RPC. */
export interface RestRoute {
  method: "GET" | "POST";
  path: string;
  service: ServiceName;
  rpc: string;
  /** Builds the request message's JSON from the query string and body (default: query merged with body). */
  shape?: (input: Record<string, unknown>) => Record<string, unknown>;
  /** Multipart/raw image uploads: the image goes to this bytes field. */
  upload?: string;
}

// Field names follow the earlier Python API (snake_case); protobuf JSON accepts them as-is.
export const REST_ROUTES: RestRoute[] = [
  { method: "POST", path: "/inference/text-to-image", service: "ranking", rpc: "SearchImages", shape: scoped },
  { method: "POST", path: "/inference/image-to-text", service: "ranking", rpc: "SearchCaptions", shape: scoped, upload: "image_bytes" },
  { method: "POST", path: "/inference/batch-ranking", service: "ranking", rpc: "BatchSearchImages", shape: scoped },
  { method: "POST", path: "/inference/rank-candidates", service: "ranking", rpc: "RankCandidates", shape: scoped },
  { method: "POST", path: "/inference/upload-image", service: "ranking", rpc: "RankUploadedImage", shape: scoped, upload: "image" },
  { method: "GET", path: "/model/info", service: "ranking", rpc: "GetModelInfo" },
  { method: "GET", path: "/model/status", service: "ranking", rpc: "GetModelStatus" },
  { method: "GET", path: "/model/versions", service: "ranking", rpc: "ListModelVersions" },
  { method: "POST", path: "/model/promote", service: "ranking", rpc: "PromoteModel" },
  { method: "POST", path: "/training/start", service: "training", rpc: "StartTraining", shape: (i) => ("config" in i ? i : { config: i }) },
  { method: "GET", path: "/training/status", service: "training", rpc: "GetTrainingStatus" },
  { method: "GET", path: "/training/history", service: "training", rpc: "ListTrainingRuns" },
  { method: "POST", path: "/training/stop", service: "training", rpc: "StopTraining" },
  { method: "GET", path: "/data/info", service: "data", rpc: "GetDatasetInfo" },
  { method: "GET", path: "/data/versions", service: "data", rpc: "ListDatasetVersions" },
  { method: "GET", path: "/data/samples", service: "data", rpc: "ListSamples", shape: splitName },
  { method: "POST", path: "/data/download", service: "data", rpc: "StartPipelineRun", shape: (i) => ("params" in i ? i : { params: i }) },
  { method: "GET", path: "/data/runs", service: "data", rpc: "ListPipelineRuns" },
  { method: "GET", path: "/data/run", service: "data", rpc: "GetPipelineRun" },
  { method: "POST", path: "/data/cancel", service: "data", rpc: "CancelPipelineRun" },
  // The pipeline's sync hook (Argo's sync step) POSTs the published version here.
  { method: "POST", path: "/data/register", service: "data", rpc: "RegisterDatasetVersion", shape: (i) => ({ dataset: i["dataset"], version: i["version"], ...(i["mark_latest"] === undefined ? {} : { mark_latest: i["mark_latest"] }) }) },
  { method: "GET", path: "/demo/queries", service: "ranking", rpc: "ListDemoQueries" },
  { method: "GET", path: "/demo/search", service: "ranking", rpc: "DemoSearch" },
];

const ROUTE_BY_PATH = new Map(REST_ROUTES.map((r) => [r.path, r]));

/** The REST route at a request's path (query string ignored), if one of `services` owns it: one map lookup. */
export function restRoute(pathOrUrl: string, services: { has(name: ServiceName): boolean }): RestRoute | undefined {
  const q = pathOrUrl.indexOf("?");
  const route = ROUTE_BY_PATH.get(q < 0 ? pathOrUrl : pathOrUrl.slice(0, q));
  return route && services.has(route.service) ? route : undefined;
}

/** "test" → "SPLIT_TEST": the earlier API named splits in lower case. */
function splitName(input: Record<string, unknown>): Record<string, unknown> {
  const s = input["split"];
  if (typeof s === "string" && s !== "" && !s.startsWith("SPLIT_")) return { ...input, split: `SPLIT_${s.toUpperCase()}` };
  return input;
}

/** The earlier API took split/dataset_version at the top level; the RPCs nest them in `scope`. */
function scoped(input: Record<string, unknown>): Record<string, unknown> {
  const { split, dataset_version, ...rest } = splitName(input);
  if (split === undefined && dataset_version === undefined) return rest;
  return { ...rest, scope: { ...(split === undefined ? {} : { split }), ...(dataset_version === undefined ? {} : { dataset_version }) } };
}

export class HttpError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

/** Reads a request body, refusing more than `limit` bytes without buffering them. */
export async function readBody(req: Req, limit: number): Promise<Buffer> {
  const declared = Number(req.headers["content-length"] ?? "0");
  if (declared > limit) throw new ConnectError(`request body of ${declared} bytes exceeds the ${limit}-byte limit`, Code.ResourceExhausted);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new ConnectError(`request body exceeds the ${limit}-byte limit`, Code.ResourceExhausted);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** The image of a multipart/form-data upload (field "file" or "image") plus its text fields. */
function readMultipart(req: Req, limit: number): Promise<{ file?: Buffer; fields: Record<string, string> }> {
  return new Promise((resolve, reject) => {
    const fields: Record<string, string> = {};
    let file: Buffer | undefined;
    let bb: busboy.Busboy;
    try {
      bb = busboy({ headers: req.headers as busboy.BusboyConfig["headers"], limits: { fileSize: limit, files: 1, fields: 20 } });
    } catch (err) {
      reject(invalidArgument([{ field: "body", description: `not a valid multipart body: ${(err as Error).message}`, reason: "BAD_FORMAT" }]));
      return;
    }
    bb.on("file", (_name, stream) => {
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("limit", () => reject(new ConnectError(`upload exceeds the ${limit}-byte limit`, Code.ResourceExhausted)));
      stream.on("end", () => (file = Buffer.concat(chunks)));
    });
    bb.on("field", (name, value) => (fields[name] = value));
    bb.on("error", (err) => reject(invalidArgument([{ field: "body", description: String(err), reason: "BAD_FORMAT" }])));
    bb.on("close", () => resolve(file ? { file, fields } : { fields }));
    (req as NodeJS.ReadableStream).pipe(bb);
  });
}

/** Parses JSON into a request message; a bad field becomes a field violation naming it. */
export function decodeRequest<D extends DescMessage>(schema: D, json: Record<string, unknown>) {
  try {
    return fromJson(schema, json as JsonValue, { ignoreUnknownFields: false });
  } catch (err) {
    const msg = (err as Error).message;
    const field = /field (?:[\w.]+\.)?(\w+)(?: from JSON)?/.exec(msg)?.[1] ?? /key "(\w+)"/.exec(msg)?.[1] ?? "body";
    throw invalidArgument([{ field, description: msg, reason: "BAD_VALUE" }]);
  }
}

function queryObject(url: URL): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of url.searchParams) out[k] = v;
  return out;
}

/**
 * `res.writeHead` on an HTTP/1.1 or HTTP/2 response. TypeScript cannot call it through the
 * union: @types/node 22 overloads the two differently (Http2ServerResponse also takes a status
 * message), so this narrows first. Both take the same arguments at run time.
 */
export function writeHead(res: Res, status: number, headers: OutgoingHttpHeaders): void {
  if (res instanceof Http2ServerResponse) res.writeHead(status, headers);
  else res.writeHead(status, headers);
}

export function sendJson(res: Res, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const data = JSON.stringify(body);
  writeHead(res, status, { "content-type": "application/json", "content-length": String(Buffer.byteLength(data)), ...headers });
  res.end(data);
}

/** Errors as Connect error JSON with google.rpc details, and the matching HTTP status. */
export function sendError(res: Res, err: unknown, requestId: string): void {
  const e = relay(err);
  if (res.headersSent) {
    res.end();
    return;
  }
  const retryAfter = e.metadata.get("retry-after");
  sendJson(res, codeToHttpStatus(e.code), errorToJson(e, { useProtoFieldName: true }), { [REQUEST_ID_HEADER]: requestId, ...(retryAfter ? { "retry-after": retryAfter } : {}) });
}

/** What answers a service's REST paths: a gRPC client of it (the gateway) or an in-process one (the service itself). */
export interface RestBackend {
  service: DescService;
  client: unknown;
}

export interface RestContext {
  backends: Map<ServiceName, RestBackend>;
  maxBodyBytes: number;
  timeoutMs: number;
}

/** Serves the earlier REST paths of the services in `ctx`; returns false when the path is not one of them. */
export async function handleRest(req: Req, res: Res, url: URL, ctx: RestContext): Promise<boolean> {
  const route = restRoute(url.pathname, ctx.backends);
  if (!route) return false;
  const requestId = requestIdFrom(req.headers[REQUEST_ID_HEADER] as string | undefined);
  try {
    if (req.method !== route.method) {
      res.setHeader("allow", route.method);
      throw new HttpError(405, "unimplemented", `${url.pathname} takes ${route.method}`);
    }
    const backend = ctx.backends.get(route.service)!;
    const method = backend.service.methods.find((m) => m.name === route.rpc) as DescMethod & { methodKind: "unary" };
    let input = queryObject(url);
    if (route.method === "POST") input = { ...input, ...(await readPostInput(req, route, ctx.maxBodyBytes)) };
    const message = decodeRequest(method.input, route.shape ? route.shape(input) : input);
    const opts: CallOptions = { headers: forwardedHeaders(nodeHeader(req), requestId), timeoutMs: ctx.timeoutMs };
    const client = backend.client as unknown as Record<string, (m: unknown, o: CallOptions) => Promise<unknown>>;
    const out = await client[method.localName]!(message, opts);
    sendJson(res, 200, toJson(method.output, out as never, { useProtoFieldName: true }), { [REQUEST_ID_HEADER]: requestId });
  } catch (err) {
    if (err instanceof HttpError) sendJson(res, err.status, { code: err.code, message: err.message }, { [REQUEST_ID_HEADER]: requestId });
    else sendError(res, err, requestId);
  }
  return true;
}

async function readPostInput(req: Req, route: RestRoute, limit: number): Promise<Record<string, unknown>> {
  const type = String(req.headers["content-type"] ?? "");
  if (route.upload && type.startsWith("multipart/form-data")) {
    const { file, fields } = await readMultipart(req, limit);
    const out: Record<string, unknown> = { ...fields };
    if (file) out[route.upload] = file.toString("base64");
    return out;
  }
  if (route.upload && type.startsWith("image/")) {
    return { [route.upload]: (await readBody(req, limit)).toString("base64") };
  }
  const body = await readBody(req, limit);
  if (body.length === 0) return {};
  let json: unknown;
  try {
    json = JSON.parse(body.toString("utf8"));
  } catch (err) {
    throw invalidArgument([{ field: "body", description: `not valid JSON: ${(err as Error).message}`, reason: "BAD_JSON" }]);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw invalidArgument([{ field: "body", description: "must be a JSON object", reason: "BAD_JSON" }]);
  }
  return json as Record<string, unknown>;
}
