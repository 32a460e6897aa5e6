import { Code, ConnectError, type Interceptor, type StreamResponse, type UnaryResponse } from "@connectrpc/connect";
import { REQUEST_ID_HEADER, requestIdFrom, runWithRequest, type Logger, type RequestContext } from "@glimpse/logging";
import type { Metrics } from "./metrics.js";

/**
 * Request ids, access logs and RPC metrics for every call a server handles. The id comes
 * from the caller's x-request-id (the gateway sets one) and is echoed back and propagated
 * to downstream calls through the async context.
 */
export function observe(logger: Logger, metrics: Metrics): Interceptor {
  return (next) => async (req) => {
    const ctx: RequestContext = { requestId: requestIdFrom(req.header.get(REQUEST_ID_HEADER)) };
    const service = req.service.typeName;
    const method = req.method.name;
    const start = process.hrtime.bigint();
    const finish = (err: unknown) => {
      const e = err === undefined ? undefined : ConnectError.from(err);
      recordRpc(logger, metrics, ctx, { service, method, code: e?.code, seconds: Number(process.hrtime.bigint() - start) / 1e9, ...(e ? { message: e.message } : {}) });
    };
    try {
      const res = await runWithRequest(ctx, () => next(req));
      res.header.set(REQUEST_ID_HEADER, ctx.requestId);
      if (!res.stream) {
        finish(undefined);
        return res as UnaryResponse;
      }
      return { ...res, message: streamInContext(res.message, ctx, finish) } as StreamResponse;
    } catch (err) {
      finish(err);
      throw err;
    }
  };
}

/** One finished RPC: its service, method, status (undefined = OK) and duration. */
export interface RpcOutcome {
  service: string;
  method: string;
  code: Code | undefined;
  seconds: number;
  /** The error's message, logged for a server-side failure. */
  message?: string;
}

/**
 * Counts an RPC in the metrics (by method and code) and logs it under its request id: a debug line,
 * or a warning for a failure that is not the caller's. The observe interceptor's, and the gateway's
 * for the calls it passes through as bytes (services/gateway/src/pass.ts).
 */
export function recordRpc(logger: Logger, metrics: Metrics, ctx: RequestContext, rpc: RpcOutcome): void {
  const code = rpc.code === undefined ? "ok" : codeName(rpc.code);
  metrics.observe(rpc.service, rpc.method, code, rpc.seconds);
  runWithRequest(ctx, () => {
    const line = { rpc: `${rpc.service}/${rpc.method}`, code, ms: Math.round(rpc.seconds * 1e4) / 10 };
    if (rpc.code === undefined || CLIENT_ERRORS.has(rpc.code)) logger.debug(line, "rpc");
    else logger.warn({ ...line, err: rpc.message }, "rpc failed");
  });
}

async function* streamInContext<T>(src: AsyncIterable<T>, ctx: RequestContext, finish: (err: unknown) => void): AsyncGenerator<T> {
  const it = src[Symbol.asyncIterator]();
  try {
    for (;;) {
      const r = await runWithRequest(ctx, () => it.next());
      if (r.done) break;
      yield r.value;
    }
    finish(undefined);
  } catch (err) {
    finish(err);
    throw err;
  }
}

/** Codes that say the caller asked for something it may not have: logged at debug, not as a failure. */
const CLIENT_ERRORS: ReadonlySet<Code> = new Set([Code.InvalidArgument, Code.NotFound, Code.Unauthenticated, Code.PermissionDenied, Code.FailedPrecondition, Code.Canceled, Code.Unimplemented, Code.AlreadyExists, Code.OutOfRange]);

export function codeName(code: Code): string {
  return Code[code]!.replace(/[A-Z]/g, (c, i: number) => (i === 0 ? c.toLowerCase() : `_${c.toLowerCase()}`));
}
