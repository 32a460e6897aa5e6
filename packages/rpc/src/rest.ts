/**
 * The earlier REST paths (the seed's Python API) mapped onto the RPCs. The route table comes from
 * the protos: each RPC's `google.api.http` annotation gives the HTTP method, the path and how the
 * body maps onto the request; the few shapes of the earlier API it cannot state are adapters
 * keyed by RPC (ADAPTERS). Served by the gateway (through gRPC clients of the services) and by
 * a service for its own paths (through an in-process client: startGrpcServer's `rest`). Bodies
 * and query strings become the request message, the response message goes back as protobuf JSON
 * with snake_case names, and errors as Connect error JSON with google.rpc details.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import { Http2ServerResponse, type Http2ServerRequest } from "node:http2";
import { fromJson, getOption, hasOption, toJson, type DescMessage, type DescMethod, type DescService, type JsonValue } from "@bufbuild/protobuf";
import { Code, ConnectError, type CallOptions } from "@connectrpc/connect";
import { codeToHttpStatus, errorToJson } from "@connectrpc/connect/protocol-connect";
import { data, dataset, invalidArgument, ranking, SERVICES, training, type ServiceName } from "@glimpse/api";
import { http } from "@glimpse/api/gen/google/api/annotations_pb.js";
import { REQUEST_ID_HEADER, requestIdFrom } from "@glimpse/logging";
import busboy from "busboy";
import { forwardedHeaders, nodeHeader, relay } from "./forward.js";

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

/** The request JSON built from a REST call, before it is decoded into the request message. */
type Input = Record<string, unknown>;

/** How an earlier REST path maps onto an RPC. */
export interface RestRoute {
  method: "GET" | "POST";
  path: string;
  service: ServiceName;
  /** The RPC the path calls (a unary method). */
  rpc: DescMethod & { methodKind: "unary" };
  /**
   * The annotation's body mapping: "*" (the JSON body is the request, merged over the query
   * string), a field name (the JSON body is that field; the query string fills the others) or
   * "" (GET: the query string only).
   */
  body: string;
  /** Builds the request message's JSON in the earlier API's shapes (an adapter). */
  shape?: (input: Input, request: DescMessage) => Input;
  /** Multipart/raw image uploads: the image goes to this bytes field (an adapter). */
  upload?: string;
}

/** What google.api.http cannot say about an earlier path. */
type RestAdapter = Pick<RestRoute, "shape" | "upload">;

/** "test" → "SPLIT_TEST": the earlier API named splits in lower case (the names come from glimpse.data.v1.Split). */
function splitName(input: Input): Input {
  const s = input["split"];
  if (typeof s !== "string" || s === "") return input;
  const value = dataset.SplitSchema.values.find((v) => v.name === s || v.localName === s.toUpperCase());
  return value ? { ...input, split: value.name } : input;
}

/** The earlier API took split/dataset_version at the top level; the RPCs nest them in `scope`. */
function scoped(input: Input): Input {
  const { split, dataset_version, ...rest } = splitName(input);
  if (split === undefined && dataset_version === undefined) return rest;
  return { ...rest, scope: { ...(split === undefined ? {} : { split }), ...(dataset_version === undefined ? {} : { dataset_version }) } };
}

/** The earlier API took the body as the field ({"epochs": 3}) and also as the whole request ({"config": {"epochs": 3}}). */
function alsoWholeRequest(field: string): (input: Input) => Input {
  return (input) => {
    const body = input[field];
    return typeof body === "object" && body !== null && !Array.isArray(body) && field in body ? { ...input, ...(body as Input) } : input;
  };
}

/** Only the request's fields: the pipeline's sync hook posts its whole published-version record. */
function knownFieldsOnly(input: Input, request: DescMessage): Input {
  const names = new Set(request.fields.flatMap((f) => [f.name, f.jsonName]));
  return Object.fromEntries(Object.entries(input).filter(([k]) => names.has(k)));
}

/** The earlier API's shapes, by RPC. */
const ADAPTERS = new Map<DescMethod, RestAdapter>([
  [ranking.RankingService.method.searchImages, { shape: scoped }],
  [ranking.RankingService.method.searchCaptions, { shape: scoped, upload: "image_bytes" }],
  [ranking.RankingService.method.batchSearchImages, { shape: scoped }],
  [ranking.RankingService.method.rankCandidates, { shape: scoped }],
  [ranking.RankingService.method.rankUploadedImage, { shape: scoped, upload: "image" }],
  [training.TrainingService.method.startTraining, { shape: alsoWholeRequest("config") }],
  [data.DataService.method.listSamples, { shape: splitName }],
  [data.DataService.method.startPipelineRun, { shape: alsoWholeRequest("params") }],
  [data.DataService.method.registerDatasetVersion, { shape: knownFieldsOnly }],
]);

/** The route of every RPC with a google.api.http annotation; throws on one this server cannot serve. */
export function restRoutes(services: Readonly<Record<ServiceName, DescService>> = SERVICES): RestRoute[] {
  const routes: RestRoute[] = [];
  for (const [service, desc] of Object.entries(services) as [ServiceName, DescService][]) {
    for (const m of desc.methods) {
      if (!hasOption(m, http)) continue;
      const rule = getOption(m, http);
      const where = `${desc.typeName}/${m.name}: google.api.http`;
      if (rule.pattern.case !== "get" && rule.pattern.case !== "post") throw new Error(`${where} ${rule.pattern.case ?? "(no method)"} is not served; use get or post`);
      if (rule.pattern.value.includes("{")) throw new Error(`${where} path variables are not served: ${rule.pattern.value}`);
      if (rule.additionalBindings.length > 0 || rule.responseBody) throw new Error(`${where} additional_bindings and response_body are not served`);
      if (m.methodKind !== "unary") throw new Error(`${where} on a streaming method`);
      if ((rule.pattern.case === "get") !== (rule.body === "")) throw new Error(`${where}: a GET takes no body, a POST one`);
      if (rule.body !== "" && rule.body !== "*" && !m.input.fields.some((f) => f.name === rule.body)) throw new Error(`${where} body names no field: ${rule.body}`);
      routes.push({ method: rule.pattern.case === "get" ? "GET" : "POST", path: rule.pattern.value, service, rpc: m as RestRoute["rpc"], body: rule.body, ...ADAPTERS.get(m) });
    }
  }
  return routes;
}

/** The earlier REST paths, read from the protos' google.api.http annotations when this module loads. */
export const REST_ROUTES: readonly RestRoute[] = restRoutes();

const ROUTE_BY_PATH = new Map(REST_ROUTES.map((r) => [r.path, r]));

/** The REST route at a request's path (query string ignored), if one of `services` owns it: one map lookup. */
export function restRoute(pathOrUrl: string, services: { has(name: ServiceName): boolean }): RestRoute | undefined {
  const q = pathOrUrl.indexOf("?");
  const route = ROUTE_BY_PATH.get(q < 0 ? pathOrUrl : pathOrUrl.slice(0, q));
  return route && services.has(route.service) ? route : undefined;
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
    const method = route.rpc;
    let input = queryObject(url);
    if (route.method === "POST") {
      const body = await readPostInput(req, route, ctx.maxBodyBytes);
      input = route.body === "*" ? { ...input, ...body } : { ...input, [route.body]: body };
    }
    const message = decodeRequest(method.input, route.shape ? route.shape(input, method.input) : input);
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

async function readPostInput(req: Req, route: RestRoute, limit: number): Promise<Input> {
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
