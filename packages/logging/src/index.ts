import { AsyncLocalStorage } from "node:async_hooks";
import { randomUUID } from "node:crypto";
import { pino, type Logger } from "pino";

export type { Logger } from "pino";

/** Per-request context, carried across awaits so logs and downstream calls share the request id. */
export interface RequestContext {
  requestId: string;
}

const storage = new AsyncLocalStorage<RequestContext>();

export function runWithRequest<T>(ctx: RequestContext, fn: () => T): T {
  return storage.run(ctx, fn);
}

export function currentRequest(): RequestContext | undefined {
  return storage.getStore();
}

/** Accepts a caller's id if it looks sane (no header injection), else makes one. */
export function requestIdFrom(header: string | null | undefined): string {
  if (header && /^[A-Za-z0-9._:-]{1,128}$/.test(header)) return header;
  return randomUUID();
}

export const REQUEST_ID_HEADER = "x-request-id";

/**
 * A pino logger for one process. JSON lines by default (what log collectors want);
 * GLIMPSE_LOG_PRETTY=true for humans. Every line carries the current request id.
 */
export function createLogger(service: string, level: string = process.env["GLIMPSE_LOG_LEVEL"] ?? "info"): Logger {
  const pretty = process.env["GLIMPSE_LOG_PRETTY"] === "true";
  return pino({
    name: service,
    level,
    base: { service },
    mixin() {
      const ctx = storage.getStore();
      return ctx ? { requestId: ctx.requestId } : {};
    },
    ...(pretty ? { transport: { target: "pino-pretty", options: { colorize: true } } } : {}),
  });
}
