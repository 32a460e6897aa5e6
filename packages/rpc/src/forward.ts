/**
 * Passing a call on to another service: the caller's API key and request id go with it, and
 * the answer's errors come back with their details (UNAVAILABLE with a Retry-After). Used by
 * the gateway's relay and by the REST paths (rest.ts) wherever they are served.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import { reviveDetails } from "@glimpse/api";
import { REQUEST_ID_HEADER } from "@glimpse/logging";

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
