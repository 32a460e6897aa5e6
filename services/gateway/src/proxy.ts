import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type CallOptions } from "@connectrpc/connect";
import { reviveDetails } from "@glimpse/api";
import { REQUEST_ID_HEADER } from "@glimpse/logging";
import type { ServiceBinding } from "@glimpse/rpc";
import type { Backend } from "./backends.js";

/** What the gateway passes on to a backend: the caller's API key and the request id. */
export function forwardedHeaders(incoming: (name: string) => string | null | undefined, requestId?: string): Headers {
  const headers = new Headers();
  const id = requestId ?? incoming(REQUEST_ID_HEADER);
  if (id) headers.set(REQUEST_ID_HEADER, id);
  const auth = incoming("authorization");
  if (auth) headers.set("authorization", auth);
  return headers;
}

/** Reads a header of a Node request (HTTP/1.1 or HTTP/2). */
export function nodeHeader(req: { headers: Record<string, string | string[] | undefined> }): (name: string) => string | undefined {
  return (name) => {
    const v = req.headers[name];
    return typeof v === "string" ? v : undefined;
  };
}

/**
 * The caller's deadline goes on to the backend. Without one, a unary call gets the backend
 * client's default (GLIMPSE_BACKEND_TIMEOUT_MS); a stream (a watch) gets none, as it would
 * straight to the service: 0 tells the client "no deadline". It ends when the caller leaves.
 */
export function callOptions(ctx: Pick<HandlerContext, "requestHeader" | "signal" | "timeoutMs">, stream = false): CallOptions {
  const headers = forwardedHeaders((n) => ctx.requestHeader.get(n));
  const timeoutMs = ctx.timeoutMs() ?? (stream ? 0 : undefined);
  return { headers, signal: ctx.signal, ...(timeoutMs === undefined ? {} : { timeoutMs }) };
}

/**
 * Seconds a client should wait before retrying when a backend is unavailable: the embedded
 * supervisor's first restarts and a Deployment's replacement pod both take about this long.
 */
export const RETRY_AFTER_SECONDS = 1;

/** A backend's error as the gateway answers it: details decoded, UNAVAILABLE with Retry-After. */
export function relay(err: unknown): ConnectError {
  const e = reviveDetails(ConnectError.from(err));
  if (e.code === Code.Unavailable && !e.metadata.has("retry-after")) e.metadata.set("retry-after", String(RETRY_AFTER_SECONDS));
  return e;
}

/**
 * Serves a backend's service on the gateway by relaying every method to it over gRPC.
 * Generic over the descriptors, so a new RPC in the proto needs no gateway change.
 */
export function proxyBinding(backend: Backend): ServiceBinding {
  const client = backend.client as unknown as Record<string, (req: unknown, opts: CallOptions) => unknown>;
  const impl: Record<string, unknown> = {};
  for (const method of backend.service.methods as DescMethod[]) {
    const call = client[method.localName]!.bind(client);
    if (method.methodKind === "unary") {
      impl[method.localName] = async (req: unknown, ctx: HandlerContext) => {
        try {
          return await (call(req, callOptions(ctx)) as Promise<unknown>);
        } catch (err) {
          throw relay(err);
        }
      };
    } else if (method.methodKind === "server_streaming") {
      impl[method.localName] = async function* (req: unknown, ctx: HandlerContext) {
        try {
          yield* call(req, callOptions(ctx, true)) as AsyncIterable<unknown>;
        } catch (err) {
          throw relay(err);
        }
      };
    }
  }
  return { service: backend.service, impl: impl as ServiceBinding["impl"], owner: "a client- or bidi-streaming method the gateway does not relay" };
}
