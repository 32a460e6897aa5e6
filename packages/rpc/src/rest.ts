/**
 * The REST paths mapped onto the RPCs: the earlier ones (the seed's Python API) and the resource
 * paths (AIP-127: path templates, DELETE, response_body). The route table comes from the protos:
 * each RPC's `google.api.http` annotation gives the HTTP method, the path and how the body and
 * the response map onto the messages; the few shapes of the earlier API it cannot state are adapters
 * keyed by RPC (ADAPTERS). Served by the gateway (through gRPC clients of the services) and by
 * a service for its own paths (through an in-process client: startGrpcServer's `rest`). Bodies
 * and query strings become the request message, the response message goes back as protobuf JSON
 * with snake_case names, and errors as Connect error JSON with google.rpc details.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import { Http2ServerResponse, type Http2ServerRequest } from "node:http2";
import { fromJson, getOption, hasOption, ScalarType, toJson, type DescField, type DescMessage, type DescMethod, type DescService, type JsonValue } from "@bufbuild/protobuf";
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

/** The HTTP methods a google.api.http rule can name (its `custom` kind is not served). */
export type RestMethod = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

/** How a REST path (the earlier API's, or a resource's: AIP-127) maps onto an RPC. */
export interface RestRoute {
  method: RestMethod;
  /** The annotation's path: literal ("/model/info") or a template ("/v1/{name=collections/*}:sync"). */
  path: string;
  service: ServiceName;
  /** The RPC the path calls (a unary method). */
  rpc: DescMethod & { methodKind: "unary" };
  /**
   * The annotation's body mapping: "*" (the JSON body is the request, merged over the query
   * string), a field name (the JSON body is that field; the query string fills the others) or
   * "" (GET, DELETE: the query string only). Path variables win over both.
   */
  body: string;
  /** The response's bytes field answered as the raw HTTP body (the annotation's response_body). */
  responseBody?: string;
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

/**
 * Only the request's fields, at every depth: a webhook (MinIO's bucket notifications) posts its
 * own document, of which the request names the part it reads; the rest, and whatever a newer
 * sender adds, is dropped rather than refused.
 */
function knownFieldsDeep(input: Input, request: DescMessage): Input {
  const out: Input = {};
  for (const [k, v] of Object.entries(input)) {
    const f = request.fields.find((f) => f.name === k || f.jsonName === k);
    if (!f) continue;
    const nested = f.fieldKind === "message" || (f.fieldKind === "list" && f.listKind === "message") ? f.message : undefined;
    const plain = (x: unknown): x is Input => typeof x === "object" && x !== null && !Array.isArray(x);
    // a well-known type (Timestamp, Struct…) has its own JSON form: kept as sent
    if (!nested || nested.typeName.startsWith("google.protobuf.")) out[k] = v;
    else if (f.fieldKind === "list") out[k] = Array.isArray(v) ? v.map((x) => (plain(x) ? knownFieldsDeep(x, nested) : x)) : v;
    else out[k] = plain(v) ? knownFieldsDeep(v, nested) : v;
  }
  return out;
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
  [data.DataService.method.createPhoto, { upload: "image" }],
  [data.DataService.method.receiveStorageEvents, { shape: knownFieldsDeep }],
]);

const METHODS: Record<string, RestMethod> = { get: "GET", post: "POST", put: "PUT", patch: "PATCH", delete: "DELETE" };

const fieldNamed = (msg: DescMessage, name: string) => msg.fields.find((f) => f.name === name);
const isScalar = (f: DescField | undefined, t: ScalarType) => f?.fieldKind === "scalar" && f.scalar === t;
const isTemplate = (path: string) => /[{*]/.test(path);

/** The route of every RPC with a google.api.http annotation; throws on one this server cannot serve. */
export function restRoutes(services: Readonly<Record<ServiceName, DescService>> = SERVICES): RestRoute[] {
  const routes: RestRoute[] = [];
  for (const [service, desc] of Object.entries(services) as [ServiceName, DescService][]) {
    for (const m of desc.methods) {
      if (!hasOption(m, http)) continue;
      const top = getOption(m, http);
      const where = `${desc.typeName}/${m.name}: google.api.http`;
      if (top.additionalBindings.some((b) => b.additionalBindings.length > 0)) throw new Error(`${where} additional_bindings may not nest`);
      // The main rule and its additional bindings (an AIP path and an earlier one, say): one route each.
      for (const rule of [top, ...top.additionalBindings]) {
        const method = METHODS[rule.pattern.case ?? ""];
        if (!method) throw new Error(`${where} ${rule.pattern.case ?? "(no method)"} is not served; use get, post, put, patch or delete`);
        const path = rule.pattern.value as string;
        if (m.methodKind !== "unary") throw new Error(`${where} on a streaming method`);
        if ((method === "GET" || method === "DELETE") !== (rule.body === "")) throw new Error(`${where}: a GET or DELETE takes no body, a POST, PUT or PATCH one`);
        if (rule.body !== "" && rule.body !== "*" && !fieldNamed(m.input, rule.body)) throw new Error(`${where} body names no field: ${rule.body}`);
        if (rule.responseBody && !isScalar(fieldNamed(m.output, rule.responseBody), ScalarType.BYTES)) throw new Error(`${where} response_body names no bytes field: ${rule.responseBody}`);
        if (!path.startsWith("/")) throw new Error(`${where} path must start with "/": ${path}`);
        if (isTemplate(path)) {
          let vars: string[];
          try {
            vars = compileTemplate(path).vars;
          } catch (err) {
            throw new Error(`${where} ${(err as Error).message}`);
          }
          // Bound as text: a dotted path or a non-string field would need the query's conversions.
          for (const v of vars) if (!isScalar(fieldNamed(m.input, v), ScalarType.STRING)) throw new Error(`${where} path variable {${v}} names no string field of ${m.input.name}`);
        }
        routes.push({ method, path, service, rpc: m as RestRoute["rpc"], body: rule.body, ...(rule.responseBody ? { responseBody: rule.responseBody } : {}), ...ADAPTERS.get(m) });
      }
    }
  }
  return routes;
}

/** A path template compiled: its regex (a capture per variable), its shape (variables as `*`) and how specific it is. */
interface Template {
  regex: RegExp;
  /** "/v1/collections/*:sync": templates of one shape match the same paths. */
  shape: string;
  vars: string[];
  /** Literal segments, the verb counted: the more, the earlier it is tried. */
  literals: number;
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/**
 * google.api.http's path template, the subset served: segments are literals, `*` (one segment)
 * or a variable `{field}` / `{field=pattern}` (the pattern's segments literals or `*`), and the
 * last may carry a `:verb`. `**` and dotted fields are refused.
 */
export function compileTemplate(path: string): Template {
  const verbAt = /:([^/{}:]+)$/.exec(path);
  const verb = verbAt?.[1] ?? "";
  const segments = verbAt ? path.slice(0, verbAt.index) : path;
  const shape: string[] = [];
  const vars: string[] = [];
  let literals = verb ? 1 : 0;
  const piece = (s: string) => {
    if (s === "*") return shape.push("*"), "[^/]+";
    if (!/^[^*:]+$/.test(s)) throw new Error(`path segment "${s}" is not served (a literal, * or a variable)`);
    literals++;
    return shape.push(s), escapeRe(s);
  };
  const parts: string[] = [];
  const next = /\/(?:\{([A-Za-z_]\w*)(?:=([^{}]*))?\}|([^/{}]+))/y;
  while (next.lastIndex < segments.length) {
    const m = next.exec(segments);
    if (!m) throw new Error(`path is not a template this server serves: ${path}`);
    if (m[3] !== undefined) parts.push(piece(m[3]));
    else {
      if (vars.includes(m[1]!)) throw new Error(`path binds {${m[1]}} twice: ${path}`);
      vars.push(m[1]!);
      parts.push(`(${(m[2] ?? "*").split("/").map(piece).join("/")})`);
    }
  }
  if (parts.length === 0) throw new Error(`path has no segment: ${path}`);
  const tail = verb ? `:${verb}` : "";
  return { regex: new RegExp(`^/${parts.join("/")}${escapeRe(tail)}$`), shape: `/${shape.join("/")}${tail}`, vars, literals };
}

/** A REST call's route, its path variables and the methods its path takes. */
export interface RestMatch {
  /** The route for the request's method; when the path takes another method only, one of the path's (the caller answers 405). */
  route: RestRoute;
  /** Path variables by request field, each segment percent-decoded; empty on a literal path. */
  params: Readonly<Record<string, string>>;
  /** The methods the path takes, e.g. "DELETE, GET": a 405's allow header. */
  allow: string;
}

type Services = { has(name: ServiceName): boolean };

/** The routes of one path (literal) or one template shape. */
interface RestPath {
  service: ServiceName;
  /** By method, HEAD answered by the GET route; the params are empty (templates fill theirs per call). */
  byMethod: Map<string, RestMatch>;
  first: RestMatch;
}

const NO_PARAMS: Readonly<Record<string, string>> = Object.freeze({});

/** "%2D" → "-" per segment; a malformed escape stays as sent (the RPC's rules refuse the name). */
function decodeSegments(s: string): string {
  if (!s.includes("%")) return s;
  return s
    .split("/")
    .map((seg) => {
      try {
        return decodeURIComponent(seg);
      } catch {
        return seg;
      }
    })
    .join("/");
}

/**
 * The matcher of `routes`: literal paths by one map lookup (the search paths are literal), then,
 * only on a miss, the templates, the most literal first (so ":sync" is tried before a bare
 * `*` that would also match "x:sync"). A literal path wins over any template. One path belongs
 * to one service: the gateway passes a service's paths through by path alone (services/gateway/src/pass.ts).
 */
export function restRouter(routes: readonly RestRoute[]): (pathOrUrl: string, services: Services, method?: string) => RestMatch | undefined {
  type Group = { routes: RestRoute[]; own: Map<RestRoute, Template>; template?: Template };
  const groups = new Map<string, Group>();
  for (const r of routes) {
    const t = isTemplate(r.path) ? compileTemplate(r.path) : undefined;
    const key = t ? `T ${t.shape}` : `L ${r.path}`;
    const g: Group = groups.get(key) ?? { routes: [], own: new Map(), ...(t ? { template: t } : {}) };
    groups.set(key, g);
    const other = g.routes.find((o) => o.service !== r.service || o.method === r.method);
    if (other) throw new Error(`${r.method} ${r.path} (${r.service}) and ${other.method} ${other.path} (${other.service}): a path takes a method once, and belongs to one service`);
    g.routes.push(r);
    if (t) g.own.set(r, t);
  }
  const exact = new Map<string, RestPath>();
  const templates: (RestPath & { template: Template; own: Map<RestRoute, Template> })[] = [];
  for (const [key, g] of groups) {
    const allow = g.routes.map((r) => r.method).sort().join(", ");
    const byMethod = new Map(g.routes.map((route) => [route.method as string, { route, params: NO_PARAMS, allow }]));
    const get = byMethod.get("GET");
    if (get) byMethod.set("HEAD", get);
    const p: RestPath = { service: g.routes[0]!.service, byMethod, first: byMethod.get(g.routes[0]!.method)! };
    if (g.template) templates.push({ ...p, template: g.template, own: g.own });
    else exact.set(key.slice(2), p);
  }
  templates.sort((a, b) => b.template.literals - a.template.literals);
  // A path whose first segment no template starts with (a gRPC path) skips the regexes.
  const heads = new Set(templates.map((t) => /^\/[^/{*:]+(?=\/|:|$)/.exec(t.template.shape)?.[0] ?? ""));
  const head = (path: string) => {
    const i = path.indexOf("/", 1);
    return i < 0 ? path.replace(/:.*/, "") : path.slice(0, i);
  };
  return (pathOrUrl, services, method) => {
    const q = pathOrUrl.indexOf("?");
    const path = q < 0 ? pathOrUrl : pathOrUrl.slice(0, q);
    const literal = exact.get(path);
    if (literal) return services.has(literal.service) ? (method !== undefined && literal.byMethod.get(method)) || literal.first : undefined;
    if (templates.length === 0 || (!heads.has("") && !heads.has(head(path)))) return undefined;
    for (const t of templates) {
      if (!t.template.regex.test(path)) continue;
      if (!services.has(t.service)) return undefined;
      const m = (method !== undefined && t.byMethod.get(method)) || t.first;
      const own = t.own.get(m.route)!;
      const caps = own.regex.exec(path)!;
      return { ...m, params: Object.fromEntries(own.vars.map((v, i) => [v, decodeSegments(caps[i + 1]!)])) };
    }
    return undefined;
  };
}

/** The REST paths, read from the protos' google.api.http annotations when this module loads. */
export const REST_ROUTES: readonly RestRoute[] = restRoutes();

/** The route (for `method`, when given), path variables and allowed methods of a request's path (query string ignored), if one of `services` owns it. */
export const restMatch = restRouter(REST_ROUTES);

/** The REST route at a request's path (query string ignored), if one of `services` owns it: one map lookup for a literal path. */
export function restRoute(pathOrUrl: string, services: Services, method?: string): RestRoute | undefined {
  return restMatch(pathOrUrl, services, method)?.route;
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

/**
 * The query string as request JSON. Its values are text: a bool field takes "true"/"false" and a
 * repeated field each of its values, as google.api.http maps them (proto JSON would refuse both).
 */
function queryObject(url: URL, schema: DescMessage): Input {
  const out: Input = {};
  for (const [k, v] of url.searchParams) {
    const f = schema.fields.find((f) => f.name === k || f.jsonName === k);
    if (f?.fieldKind === "list") out[k] = [...(Array.isArray(out[k]) ? (out[k] as unknown[]) : []), v];
    else out[k] = isScalar(f, ScalarType.BOOL) && (v === "true" || v === "false") ? v === "true" : v;
  }
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

/** Serves the REST paths of the services in `ctx`; returns false when the path is not one of them. */
export async function handleRest(req: Req, res: Res, url: URL, ctx: RestContext): Promise<boolean> {
  const match = restMatch(url.pathname, ctx.backends, req.method);
  if (!match) return false;
  const { route, params } = match;
  const requestId = requestIdFrom(req.headers[REQUEST_ID_HEADER] as string | undefined);
  try {
    if (req.method !== route.method && !(req.method === "HEAD" && route.method === "GET")) {
      res.setHeader("allow", match.allow);
      throw new HttpError(405, "unimplemented", `${url.pathname} takes ${match.allow}`);
    }
    const backend = ctx.backends.get(route.service)!;
    const method = route.rpc;
    let input = queryObject(url, method.input);
    if (route.body !== "") {
      const body = await readPostInput(req, route, ctx.maxBodyBytes);
      input = route.body === "*" ? { ...input, ...body } : { ...input, [route.body]: body };
    }
    // The path names the resource: its variables win over the body's and the query's.
    for (const [k, v] of Object.entries(params)) {
      const f = fieldNamed(method.input, k)!;
      if (f.jsonName !== k) delete input[f.jsonName];
      input[k] = v;
    }
    const message = decodeRequest(method.input, route.shape ? route.shape(input, method.input) : input);
    const opts: CallOptions = { headers: forwardedHeaders(nodeHeader(req), requestId), timeoutMs: ctx.timeoutMs };
    const client = backend.client as unknown as Record<string, (m: unknown, o: CallOptions) => Promise<unknown>>;
    const out = await client[method.localName]!(message, opts);
    if (route.responseBody) sendResponseBody(req, res, route, out as Record<string, unknown>, requestId);
    else sendJson(res, 200, toJson(method.output, out as never, { useProtoFieldName: true }), { [REQUEST_ID_HEADER]: requestId });
  } catch (err) {
    if (err instanceof HttpError) sendJson(res, err.status, { code: err.code, message: err.message }, { [REQUEST_ID_HEADER]: requestId });
    // (the call to the backend carries no signal of the caller's: a CANCELED is the connection's)
    else sendError(res, relay(err, { service: route.service }), requestId);
  }
  return true;
}

/**
 * response_body: the bytes field is the answer, typed by the response's `content_type`. A
 * response with a `sha256` is content-addressed: its etag is the hash, cacheable for good, and
 * a matching If-None-Match gets 304. HEAD gets the headers only (node drops the body).
 */
function sendResponseBody(req: Req, res: Res, route: RestRoute, out: Record<string, unknown>, requestId: string): void {
  const output = route.rpc.output;
  const text = (name: string) => {
    const f = fieldNamed(output, name);
    const v = isScalar(f, ScalarType.STRING) ? out[f!.localName] : undefined;
    return typeof v === "string" ? v : "";
  };
  const bytes = (out[fieldNamed(output, route.responseBody!)!.localName] as Uint8Array | undefined) ?? new Uint8Array();
  const sha = text("sha256");
  const headers: OutgoingHttpHeaders = { [REQUEST_ID_HEADER]: requestId };
  if (sha) Object.assign(headers, { etag: `"${sha}"`, "cache-control": "public, max-age=31536000, immutable" });
  const seen = sha && String(req.headers["if-none-match"] ?? "").split(",").some((t) => ["*", `"${sha}"`].includes(t.trim().replace(/^W\//, "")));
  if (seen) {
    writeHead(res, 304, headers);
    res.end();
    return;
  }
  writeHead(res, 200, { ...headers, "content-type": text("content_type") || "application/octet-stream", "content-length": String(bytes.length) });
  res.end(bytes);
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
