/**
 * Calls a service answers itself on its own port (Ranking: startGrpcServer's `rest`) are passed
 * through as bytes: its REST paths, and Connect (JSON and binary, unary and server streaming,
 * GET included) and gRPC-Web calls of its RPCs, over HTTP/1.1 or HTTP/2 from the caller. The body
 * goes in as it came and the answer comes back as the service wrote it, a stream's messages as they
 * arrive. The gateway no longer decodes a request into a message, encodes it again for a second
 * gRPC hop and back: that relay was most of the gateway's CPU per search (#12 for REST, #24 for
 * Connect and gRPC-Web, ~4 ms a call at concurrency 1). Native gRPC (application/grpc) is still
 * relayed (proxy.ts), as are the other services, which serve HTTP/2 only.
 *
 * What the gateway keeps doing itself: the body's size limit, the request id, a deadline for a
 * unary call without one (GLIMPSE_BACKEND_TIMEOUT_MS, sent on in the protocol's header), an answer
 * in the caller's protocol when the service cannot be reached or does not answer in time, and its
 * own metrics and logs for each call, by method and code (read from the answer: the HTTP status,
 * the error JSON, gRPC-Web's grpc-status or the stream's last message). The service checks the API
 * key and the request with the same code as on its other paths. Each call goes to the next of the
 * service's addresses (endpoints.ts): a connection that cannot be opened reached nobody, so it is
 * tried on the next one.
 */
import * as http from "node:http";
import * as https from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { brotliDecompressSync, gunzipSync } from "node:zlib";
import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { encodeEnvelope } from "@connectrpc/connect/protocol";
import { codeFromHttpStatus as connectCodeFromHttpStatus, contentTypeStreamRegExp, contentTypeUnaryRegExp, endStreamFlag, endStreamFromJson, endStreamToJson, errorFromJsonBytes, parseTimeout as parseConnectTimeout } from "@connectrpc/connect/protocol-connect";
import { codeFromHttpStatus as grpcCodeFromHttpStatus } from "@connectrpc/connect/protocol-grpc";
import { parseTimeout as parseGrpcTimeout, setTrailerStatus, trailerFlag, trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import { SERVICES, type ServiceName } from "@glimpse/api";
import { REQUEST_ID_HEADER, requestIdFrom, type Logger } from "@glimpse/logging";
import { RETRY_AFTER_SECONDS, readBody, recordRpc, restMatch, sendError, writeHead, type Metrics } from "@glimpse/rpc";
import type { Endpoints } from "./endpoints.js";

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

/** Services whose own port answers their REST paths, Connect and gRPC-Web (services/ranking/src/server.ts). */
const SELF_SERVED: readonly ServiceName[] = ["ranking"];

/**
 * How a call is framed: a REST path; Connect unary (POST or GET; errors as JSON with an HTTP status);
 * Connect streaming (enveloped, the last message says how it ended); gRPC-Web (enveloped, trailers in
 * a last message flagged 0x80, or grpc-status in the headers).
 */
type Framing = "rest" | "connect" | "connect-stream" | "grpc-web";

interface Call {
  framing: Framing;
  rpc: DescMethod;
  service: ServiceName;
}

/** Request headers the protocols need; hop-by-hop ones and HTTP/2 pseudo-headers stay behind. */
const REQUEST_HEADERS = [
  "content-type", "authorization", "accept", "user-agent",
  "connect-protocol-version", "connect-timeout-ms", "content-encoding", "accept-encoding", "connect-content-encoding", "connect-accept-encoding",
  "grpc-timeout", "grpc-encoding", "grpc-accept-encoding", "x-grpc-web", "x-user-agent",
];
/** Answer headers passed back (plus a Connect unary call's `trailer-*`). */
const RESPONSE_HEADERS = [
  "content-type", "content-length", REQUEST_ID_HEADER, "retry-after", "allow", "etag", "cache-control",
  "content-encoding", "accept-encoding", "connect-content-encoding", "connect-accept-encoding",
  "grpc-encoding", "grpc-accept-encoding", "grpc-status", "grpc-message", "grpc-status-details-bin",
];
/** A caller's deadline beyond which the gateway gives up on a service that has not answered it itself (ms). */
const DEADLINE_SLACK_MS = 1_000;
/** A connection to an address that takes longer than this to open is given up for the next address (ms). */
const CONNECT_TIMEOUT_MS = 3_000;
/** Errors of a connection that never opened: nothing was sent, so another address may take the call. */
const NOT_CONNECTED = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "EADDRNOTAVAIL", "ECONNECT_TIMEOUT"]);

export interface PassOptions {
  /** Each backend's addresses (backends.ts); the services in SELF_SERVED among them are passed through. */
  endpoints: Map<ServiceName, Endpoints>;
  maxBodyBytes: number;
  /** The deadline of a unary call that brings none (ms). */
  timeoutMs: number;
  tlsCa?: string | undefined;
  metrics: Metrics;
  logger: Logger;
}

/** A route handler: true when it answered the call (a self-serving service's REST path, Connect or gRPC-Web call). */
export function passThrough(opts: PassOptions): (req: Req, res: Res, url: URL) => Promise<boolean> {
  const selfServed = new Set(SELF_SERVED.filter((s) => opts.endpoints.has(s)));
  const byTypeName = new Map([...selfServed].map((s) => [SERVICES[s].typeName, s]));
  const agents = {
    http: new http.Agent({ keepAlive: true }),
    https: new https.Agent({ keepAlive: true, ...(opts.tlsCa ? { ca: opts.tlsCa } : {}) }),
  };

  /** Which of the passed-through calls this is, if any. */
  const classify = (req: Req, url: URL): Call | undefined => {
    const rest = restMatch(url.pathname, selfServed, req.method);
    if (rest) return { framing: "rest", rpc: rest.route.rpc, service: rest.route.service };
    // /<package>.<Service>/<Method>
    const slash = url.pathname.lastIndexOf("/");
    const service = slash > 0 ? byTypeName.get(url.pathname.slice(1, slash)) : undefined;
    if (!service) return undefined;
    const rpc = SERVICES[service].methods.find((m) => m.name === url.pathname.slice(slash + 1));
    // Unknown methods, and client or bidi streams (not relayed either), get the gateway's own answer.
    if (!rpc || (rpc.methodKind !== "unary" && rpc.methodKind !== "server_streaming")) return undefined;
    if (req.method === "GET") return rpc.methodKind === "unary" ? { framing: "connect", rpc, service } : undefined;
    if (req.method !== "POST") return undefined;
    const type = String(req.headers["content-type"] ?? "");
    if (/^application\/grpc-web/i.test(type)) return { framing: "grpc-web", rpc, service };
    if (contentTypeStreamRegExp.test(type)) return { framing: "connect-stream", rpc, service };
    if (contentTypeUnaryRegExp.test(type)) return { framing: "connect", rpc, service };
    // native gRPC (relayed), or no protocol at all (the Connect handler says 415)
    return undefined;
  };

  return async (req, res, url) => {
    const call = classify(req, url);
    if (!call) return false;
    const started = process.hrtime.bigint();
    const requestId = requestIdFrom(req.headers[REQUEST_ID_HEADER] as string | undefined);
    const endpoints = opts.endpoints.get(call.service)!;
    const record = (code: Code | undefined, message?: string) =>
      recordRpc(opts.logger, opts.metrics, { requestId }, { service: call.rpc.parent.typeName, method: call.rpc.name, code, seconds: Number(process.hrtime.bigint() - started) / 1e9, ...(message ? { message } : {}) });
    try {
      // Buffered, as the relay did: the size limit holds whatever the body's framing, and a call
      // whose connection could not be opened can be sent to another address.
      const body = req.method === "GET" || req.method === "HEAD" ? Buffer.alloc(0) : await readBody(req, opts.maxBodyBytes);
      const headers: http.OutgoingHttpHeaders = { host: endpoints.base.host, [REQUEST_ID_HEADER]: requestId, "content-length": body.length };
      for (const h of REQUEST_HEADERS) if (typeof req.headers[h] === "string") headers[h] = req.headers[h];
      const deadlineMs = deadline(call, req, headers, opts.timeoutMs);
      const path = url.pathname + url.search;
      await endpoints.send(async (origin) => {
        const send = () => forward({ origin, path, method: req.method ?? "GET", headers, body, res, call, deadlineMs, servername: endpoints.servername, record });
        try {
          await send();
        } catch (err) {
          // A kept-alive connection the service had closed meanwhile (a restart): once more on a new one.
          if (res.headersSent || !(err as { reusedSocket?: boolean }).reusedSocket || (err as NodeJS.ErrnoException).code !== "ECONNRESET") throw err;
          await send();
        }
      }, (err) => !res.headersSent && NOT_CONNECTED.has((err as NodeJS.ErrnoException).code ?? ""));
      return true;
    } catch (err) {
      if (res.headersSent) {
        // Mid-answer: the caller sees the stream cut (a stream's last message, if it can be said, is written in forward()).
        res.destroy();
        record(Code.Unavailable, (err as Error).message);
        return true;
      }
      // The body's limit and the deadline are ours; anything else means the service could not be reached.
      const e = err instanceof ConnectError ? err : new ConnectError(`${call.service} is unreachable: ${(err as Error).message}`, Code.Unavailable);
      sendLocalError(req, res, call.framing, e, requestId);
      record(e.code, e.message);
    }
    return true;
  };

  function forward(o: {
    origin: string;
    path: string;
    method: string;
    headers: http.OutgoingHttpHeaders;
    body: Buffer;
    res: Res;
    call: Call;
    deadlineMs: number | undefined;
    servername: string | undefined;
    record: (code: Code | undefined, message?: string) => void;
  }): Promise<void> {
    const { res, call } = o;
    return new Promise<void>((resolve, reject) => {
      const secure = o.origin.startsWith("https:");
      const up = (secure ? https : http).request(`${o.origin}${o.path}`, {
        method: o.method,
        headers: o.headers,
        agent: secure ? agents.https : agents.http,
        ...(secure && o.servername ? { servername: o.servername } : {}),
      });
      let settled = false;
      let tap: Tap | undefined;
      /** The call is over: with an error before any answer (the caller answers it), or recorded as `code`. */
      const done = (err: Error | undefined, code?: Code, message?: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        res.off("close", gone);
        if (err) return reject(Object.assign(err, { reusedSocket: up.reusedSocket }));
        o.record(code, message);
        resolve();
      };
      /** The answer broke off after its headers: end it with a last message saying why where the framing allows, else cut it. */
      const cut = (err: Error) => {
        if (settled) return;
        const e = err instanceof ConnectError ? err : new ConnectError(`${call.service}: ${err.message}`, Code.Unavailable);
        const last = tap?.closing(e);
        if (last) res.end(last);
        else res.destroy();
        done(undefined, e.code, e.message);
      };
      const timer = o.deadlineMs === undefined ? undefined : setTimeout(() => up.destroy(new ConnectError(`${call.service} did not answer within ${o.deadlineMs} ms`, Code.DeadlineExceeded)), o.deadlineMs + DEADLINE_SLACK_MS);
      // The caller left: so does the call to the service (a stream ends there).
      const gone = () => {
        if (res.writableFinished) return;
        up.destroy();
        done(undefined, Code.Canceled, "the caller went away");
      };
      res.once("close", gone);
      up.on("socket", (socket) => {
        if (!socket.connecting) return;
        const t = setTimeout(() => up.destroy(Object.assign(new Error(`no connection to ${o.origin} within ${CONNECT_TIMEOUT_MS} ms`), { code: "ECONNECT_TIMEOUT" })), CONNECT_TIMEOUT_MS);
        socket.once("connect", () => clearTimeout(t));
        socket.once("close", () => clearTimeout(t));
      });
      up.on("error", (err) => (res.headersSent ? cut(err) : done(err)));
      up.on("response", (answer) => {
        const status = answer.statusCode ?? 502;
        const out: http.OutgoingHttpHeaders = {};
        for (const h of RESPONSE_HEADERS) if (answer.headers[h] !== undefined) out[h] = answer.headers[h];
        for (const [h, v] of Object.entries(answer.headers)) if (h.startsWith("trailer-") && v !== undefined) out[h] = v;
        // (the service echoes the id on a success; an error has it from here)
        out[REQUEST_ID_HEADER] ??= o.headers[REQUEST_ID_HEADER];
        answer.on("error", (err) => (res.headersSent ? cut(err) : done(err)));
        answer.on("close", () => {
          if (!answer.complete) (res.headersSent ? cut : done)(new ConnectError(`${call.service}'s answer broke off`, Code.Unavailable));
        });
        const unary = call.framing === "rest" || call.framing === "connect";
        if (unary && !(status < 300 || status === 304)) {
          // An error: Connect error JSON, read whole (it is small) for its code.
          const chunks: Buffer[] = [];
          answer.on("data", (c: Buffer) => chunks.push(c));
          answer.on("end", () => {
            const text = Buffer.concat(chunks);
            const e = errorOf(text, status);
            if (e.code === Code.Unavailable && out["retry-after"] === undefined) out["retry-after"] = String(RETRY_AFTER_SECONDS);
            writeHead(res, status, out);
            res.end(text);
            done(undefined, e.code, e.rawMessage || undefined);
          });
          return;
        }
        tap = unary ? undefined : new Tap(call.framing, status, answer.headers);
        writeHead(res, status, out);
        answer.on("data", (c: Buffer) => {
          tap?.push(c);
          // Backpressure: a slow caller slows the read from the service.
          if (!(res as NodeJS.WritableStream).write(c)) {
            answer.pause();
            res.once("drain", () => answer.resume());
          }
        });
        answer.on("end", () => {
          res.end();
          done(undefined, tap?.code());
        });
      });
      up.end(o.body);
    });
  }
}

/**
 * The deadline of a passed-through call (ms), also set on the request where it brings none: the
 * caller's (connect-timeout-ms, grpc-timeout), else GLIMPSE_BACKEND_TIMEOUT_MS for a unary call and
 * none for a stream (a watch lives as long as its caller wants, as it would straight to the service).
 */
function deadline(call: Call, req: Req, headers: http.OutgoingHttpHeaders, timeoutMs: number): number | undefined {
  const header = (name: string) => (typeof req.headers[name] === "string" ? (req.headers[name] as string) : null);
  switch (call.framing) {
    case "rest":
      return timeoutMs;
    case "connect":
    case "connect-stream": {
      const t = parseConnectTimeout(header("connect-timeout-ms"), Number.MAX_SAFE_INTEGER);
      if (t.error) return undefined; // the service answers the bad header
      if (t.timeoutMs !== undefined || call.rpc.methodKind !== "unary") return t.timeoutMs;
      headers["connect-timeout-ms"] = String(timeoutMs);
      return timeoutMs;
    }
    case "grpc-web": {
      const t = parseGrpcTimeout(header("grpc-timeout"), Number.MAX_SAFE_INTEGER);
      if (t.error) return undefined;
      if (t.timeoutMs !== undefined || call.rpc.methodKind !== "unary") return t.timeoutMs;
      headers["grpc-timeout"] = `${timeoutMs}m`;
      return timeoutMs;
    }
  }
}

/** A Connect error JSON body as an error (connect's own parser); the HTTP status's code where it is not one. */
function errorOf(body: Buffer, status: number): ConnectError {
  const fallback = new ConnectError("", connectCodeFromHttpStatus(status));
  try {
    return errorFromJsonBytes(body, undefined, fallback);
  } catch {
    return fallback;
  }
}

/**
 * An error the gateway answers itself (the body's limit, the service unreachable or too slow), in
 * the caller's protocol: Connect error JSON with its HTTP status (REST, Connect unary), a Connect
 * stream's end message, or gRPC-Web's status in the headers (a trailers-only answer).
 */
function sendLocalError(req: Req, res: Res, framing: Framing, err: ConnectError, requestId: string): void {
  if (framing === "rest" || framing === "connect") return sendError(res, err, requestId);
  const headers: http.OutgoingHttpHeaders = { "content-type": String(req.headers["content-type"]), [REQUEST_ID_HEADER]: requestId };
  if (err.code === Code.Unavailable) headers["retry-after"] = String(RETRY_AFTER_SECONDS);
  if (framing === "grpc-web") {
    setTrailerStatus(new Headers(), err).forEach((v, k) => (headers[k] = v));
    writeHead(res, 200, headers);
    res.end();
    return;
  }
  writeHead(res, 200, headers);
  res.end(endStreamFrame(err));
}

function endStreamFrame(err: ConnectError): Uint8Array {
  return encodeEnvelope(endStreamFlag, new TextEncoder().encode(JSON.stringify(endStreamToJson(new Headers(), err, undefined))));
}

/**
 * Reads how an enveloped answer (Connect streaming, gRPC-Web) ended while it streams by: it walks the
 * envelopes' 5-byte prefixes, skips the messages and keeps the last one (Connect's end-stream
 * message, flagged 0x02; gRPC-Web's trailers, flagged 0x80).
 */
export class Tap {
  private readonly flag: number;
  private readonly head = Buffer.alloc(5);
  private headBytes = 0;
  /** Bytes of the current envelope's message still to come; -1 between envelopes. */
  private left = -1;
  private kept: Buffer[] | undefined;
  private last: { flags: number; data: Buffer } | undefined;

  constructor(private readonly framing: Framing, private readonly status: number, private readonly headers: http.IncomingHttpHeaders) {
    this.flag = framing === "grpc-web" ? trailerFlag : endStreamFlag;
  }

  push(chunk: Buffer): void {
    for (let at = 0; at < chunk.length; ) {
      if (this.left < 0) {
        const n = Math.min(5 - this.headBytes, chunk.length - at);
        chunk.copy(this.head, this.headBytes, at, at + n);
        this.headBytes += n;
        at += n;
        if (this.headBytes < 5) continue;
        this.left = this.head.readUInt32BE(1);
        this.kept = this.head[0]! & this.flag ? [] : undefined;
      }
      const n = Math.min(this.left, chunk.length - at);
      this.kept?.push(chunk.subarray(at, at + n));
      this.left -= n;
      at += n;
      if (this.left === 0) {
        if (this.kept) this.last = { flags: this.head[0]!, data: Buffer.concat(this.kept) };
        this.kept = undefined;
        this.headBytes = 0;
        this.left = -1;
      }
    }
  }

  /** How the call ended (undefined = OK). */
  code(): Code | undefined {
    const header = (name: string) => (typeof this.headers[name] === "string" ? (this.headers[name] as string) : undefined);
    if (this.framing === "grpc-web") {
      const status = header("grpc-status") ?? this.trailers()?.match(/^grpc-status:\s*(\d+)/im)?.[1];
      if (status !== undefined) return Number(status) === 0 ? undefined : (Number(status) as Code);
      return this.status === 200 ? Code.Unknown : grpcCodeFromHttpStatus(this.status);
    }
    if (this.status !== 200) return connectCodeFromHttpStatus(this.status);
    const end = this.message(header("connect-content-encoding"));
    if (end === undefined) return Code.Unknown;
    try {
      return endStreamFromJson(end).error?.code;
    } catch {
      return Code.Unknown; // not an end-stream message, or an unknown code
    }
  }

  /** The message that ends the stream with `err`, when the answer is between two envelopes (else undefined: it can only be cut). */
  closing(err: ConnectError): Uint8Array | undefined {
    if (this.left >= 0 || this.headBytes > 0 || this.status !== 200) return undefined;
    if (this.framing === "grpc-web") return encodeEnvelope(trailerFlag, trailerSerialize(setTrailerStatus(new Headers(), err)));
    return endStreamFrame(err);
  }

  private trailers(): string | undefined {
    return this.message(typeof this.headers["grpc-encoding"] === "string" ? this.headers["grpc-encoding"] : undefined)?.toString("latin1");
  }

  /** The last envelope's message, decompressed (flag 0x01) with the answer's encoding. */
  private message(encoding: string | undefined): Buffer | undefined {
    if (!this.last) return undefined;
    if (!(this.last.flags & 0x01)) return this.last.data;
    try {
      if (encoding === "gzip") return gunzipSync(this.last.data);
      if (encoding === "br") return brotliDecompressSync(this.last.data);
    } catch {
      /* corrupt: the code is unknown */
    }
    return undefined;
  }
}
