/**
 * REST paths of a service that answers them itself (Ranking: startGrpcServer's `rest`) are
 * passed through as HTTP/1.1, the body's bytes in and the answer's bytes out. The gateway no
 * longer turns JSON into a message, the message into gRPC binary and back, then into JSON
 * again: that round trip was most of the gateway's CPU per search (#12, bench:ranking).
 * Limits, the request id and the caller's API key are handled as on the relayed paths; the
 * service checks the key and the input with the same code (packages/rpc rest.ts).
 */
import * as http from "node:http";
import * as https from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ServiceName } from "@glimpse/api";
import { REQUEST_ID_HEADER, requestIdFrom } from "@glimpse/logging";
import { readBody, restRoute, sendError, writeHead } from "@glimpse/rpc";

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

/** Services whose own port answers their REST paths (services/ranking/src/server.ts). */
const REST_SELF_SERVED: readonly ServiceName[] = ["ranking"];

/** Request headers the service needs; hop-by-hop and HTTP/2 pseudo-headers stay behind. */
const REQUEST_HEADERS = ["content-type", "authorization", "accept"];
/** Answer headers passed back to the caller. */
const RESPONSE_HEADERS = ["content-type", "content-length", REQUEST_ID_HEADER, "retry-after", "allow"];

export interface RestPassOptions {
  /** Backend base URLs by service (http:// or https://). */
  urls: Map<ServiceName, string>;
  maxBodyBytes: number;
  timeoutMs: number;
  tlsCa?: string | undefined;
}

/** A route handler: true when the path was one of a self-serving service's REST paths. */
export function restPassThrough(opts: RestPassOptions): (req: Req, res: Res, url: URL) => Promise<boolean> {
  const selfServed = new Set(REST_SELF_SERVED.filter((s) => opts.urls.has(s)));
  const agents = {
    http: new http.Agent({ keepAlive: true }),
    https: new https.Agent({ keepAlive: true, ...(opts.tlsCa ? { ca: opts.tlsCa } : {}) }),
  };
  return async (req, res, url) => {
    const route = restRoute(url.pathname, selfServed);
    if (!route) return false;
    const requestId = requestIdFrom(req.headers[REQUEST_ID_HEADER] as string | undefined);
    try {
      // Buffered, as the relayed paths do: the size limit holds whatever the body's framing.
      const body = req.method === "GET" || req.method === "HEAD" ? Buffer.alloc(0) : await readBody(req, opts.maxBodyBytes);
      const target = new URL(url.pathname + url.search, opts.urls.get(route.service)!);
      const headers: http.OutgoingHttpHeaders = { [REQUEST_ID_HEADER]: requestId, "content-length": body.length };
      for (const h of REQUEST_HEADERS) if (typeof req.headers[h] === "string") headers[h] = req.headers[h];
      // A kept-alive connection the service closed meanwhile (a restart) is tried once more on a new one.
      for (let attempt = 1; ; attempt++) {
        try {
          await forward(target, req.method ?? "GET", headers, body, res, route.service);
          break;
        } catch (err) {
          if (attempt >= 2 || res.headersSent || (err as NodeJS.ErrnoException).code !== "ECONNRESET") throw err;
        }
      }
    } catch (err) {
      if (res.headersSent) {
        res.end();
        return true;
      }
      // The body's limit and the deadline are ours; anything else means the service could not be reached.
      sendError(res, err instanceof ConnectError ? err : new ConnectError(`${route.service} is unreachable: ${(err as Error).message}`, Code.Unavailable), requestId);
    }
    return true;
  };

  function forward(target: URL, method: string, headers: http.OutgoingHttpHeaders, body: Buffer, res: Res, service: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const secure = target.protocol === "https:";
      const up = (secure ? https : http).request(target, { method, headers, agent: secure ? agents.https : agents.http });
      const timer = setTimeout(() => up.destroy(new ConnectError(`${service} did not answer within ${opts.timeoutMs} ms`, Code.DeadlineExceeded)), opts.timeoutMs);
      const fail = (err: Error) => {
        clearTimeout(timer);
        reject(err);
      };
      up.on("response", (answer) => {
        const out: http.OutgoingHttpHeaders = {};
        for (const h of RESPONSE_HEADERS) if (answer.headers[h] !== undefined) out[h] = answer.headers[h];
        writeHead(res, answer.statusCode ?? 503, out);
        answer.on("data", (c: Buffer) => (res as NodeJS.WritableStream).write(c));
        answer.on("end", () => {
          clearTimeout(timer);
          res.end();
          resolve();
        });
        answer.on("error", fail);
      });
      up.on("error", fail);
      up.end(body);
    });
  }
}
