import type { DescMethod } from "@bufbuild/protobuf";
import type { HandlerContext, CallOptions } from "@connectrpc/connect";
import { forwardedHeaders, relay, type ServiceBinding } from "@glimpse/rpc";
import type { Backend } from "./backends.js";

/**
 * The caller's deadline goes on to the backend. Without one, a unary call gets the backend
 * client's default (GLIMPSE_BACKEND_TIMEOUT_MS); a stream (a watch) gets none, as it would
 * straight to the service: 0 tells the client "no deadline". It ends when the caller leaves.
 */
function callOptions(ctx: Pick<HandlerContext, "requestHeader" | "signal" | "timeoutMs">, stream = false): CallOptions {
  const headers = forwardedHeaders((n) => ctx.requestHeader.get(n));
  const timeoutMs = ctx.timeoutMs() ?? (stream ? 0 : undefined);
  return { headers, signal: ctx.signal, ...(timeoutMs === undefined ? {} : { timeoutMs }) };
}

/**
 * Serves a backend's service on the gateway by relaying every method to it over gRPC.
 * Generic over the descriptors, so a new RPC in the proto needs no gateway change.
 * `relayed` counts the calls that took this road (by service and method): what is passed through
 * as bytes (pass.ts) never does.
 */
export function proxyBinding(backend: Backend, relayed?: { inc(labels: Record<"service" | "method", string>): void }): ServiceBinding {
  const client = backend.client as unknown as Record<string, (req: unknown, opts: CallOptions) => unknown>;
  const impl: Record<string, unknown> = {};
  for (const method of backend.service.methods as DescMethod[]) {
    const relayCall = client[method.localName]!.bind(client);
    const labels = { service: backend.service.typeName, method: method.name };
    const call = (req: unknown, opts: CallOptions) => {
      relayed?.inc(labels);
      return relayCall(req, opts);
    };
    if (method.methodKind === "unary") {
      impl[method.localName] = async (req: unknown, ctx: HandlerContext) => {
        try {
          return await (call(req, callOptions(ctx)) as Promise<unknown>);
        } catch (err) {
          throw relay(err, { service: backend.name, callerLeft: ctx.signal.aborted });
        }
      };
    } else if (method.methodKind === "server_streaming") {
      impl[method.localName] = async function* (req: unknown, ctx: HandlerContext) {
        try {
          yield* call(req, callOptions(ctx, true)) as AsyncIterable<unknown>;
        } catch (err) {
          throw relay(err, { service: backend.name, callerLeft: ctx.signal.aborted });
        }
      };
    }
  }
  // Client- and bidi-streaming methods are left out: the gateway does not relay them (UNIMPLEMENTED).
  // The service checks each request against the proto's rules; the relay does not check twice.
  return { service: backend.service, impl: impl as ServiceBinding["impl"], checkedElsewhere: true };
}
