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
      const code = err === undefined ? "ok" : codeName(ConnectError.from(err).code);
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      metrics.observe(service, method, code, seconds);
      runWithRequest(ctx, () => {
        const line = { rpc: `${service}/${method}`, code, ms: Math.round(seconds * 1e4) / 10 };
        if (err === undefined || isClientError(err)) logger.debug(line, "rpc");
        else logger.warn({ ...line, err: ConnectError.from(err).message }, "rpc failed");
      });
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

function isClientError(err: unknown): boolean {
  const c = ConnectError.from(err).code;
  return [Code.InvalidArgument, Code.NotFound, Code.Unauthenticated, Code.PermissionDenied, Code.FailedPrecondition, Code.Canceled, Code.Unimplemented, Code.AlreadyExists, Code.OutOfRange].includes(c);
}

export function codeName(code: Code): string {
  return Code[code]!.replace(/[A-Z]/g, (c, i: number) => (i === 0 ? c.toLowerCase() : `_${c.toLowerCase()}`));
}
