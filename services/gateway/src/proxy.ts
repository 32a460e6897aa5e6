import type { DescMethod } from "@bufbuild/protobuf";
import { ConnectError, type HandlerContext, type CallOptions } from "@connectrpc/connect";
import { reviveDetails } from "@glimpse/api";
import { REQUEST_ID_HEADER } from "@glimpse/logging";
import type { ServiceBinding } from "@glimpse/rpc";
import type { Backend } from "./backends.js";

/** Headers the gateway passes on to a backend. */
const FORWARDED = ["authorization", REQUEST_ID_HEADER];

export function callOptions(ctx: Pick<HandlerContext, "requestHeader" | "signal" | "timeoutMs">): CallOptions {
  const headers = new Headers();
  for (const h of FORWARDED) {
    const v = ctx.requestHeader.get(h);
    if (v !== null) headers.set(h, v);
  }
  const timeoutMs = ctx.timeoutMs();
  return { headers, signal: ctx.signal, ...(timeoutMs === undefined ? {} : { timeoutMs }) };
}

function relay(err: unknown): ConnectError {
  return reviveDetails(ConnectError.from(err));
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
          yield* call(req, callOptions(ctx)) as AsyncIterable<unknown>;
        } catch (err) {
          throw relay(err);
        }
      };
    }
  }
  return { service: backend.service, impl: impl as ServiceBinding["impl"], owner: "a client- or bidi-streaming method the gateway does not relay" };
}
