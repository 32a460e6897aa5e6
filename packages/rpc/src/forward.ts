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

/**
 * A backend's error as the gateway answers it: details decoded, UNAVAILABLE with Retry-After.
 * With `hop` (the call to `service` that failed): CANCELED while the caller is still there was not
 * the caller's doing but the connection to the service cut (a keepalive PING unanswered, the service's
 * pod gone), which the caller should retry, so it is UNAVAILABLE. Found on a real cluster: WatchTraining
 * ended mid-run with "http/2 stream closed with error code CANCEL", a code clients rightly do not retry.
 */
export function relay(err: unknown, hop?: { service: string; callerLeft?: boolean }): ConnectError {
  let e = reviveDetails(ConnectError.from(err));
  if (hop && e.code === Code.Canceled && !hop.callerLeft) {
    const cut = new ConnectError(`the connection to ${hop.service} was cut: ${e.rawMessage}`, Code.Unavailable, e.metadata, undefined, e);
    cut.details.push(...e.details);
    e = cut;
  }
  if (e.code === Code.Unavailable && !e.metadata.has("retry-after")) e.metadata.set("retry-after", String(RETRY_AFTER_SECONDS));
  return e;
}
