import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport, type Http2SessionOptions, type NodeHttpClientOptions } from "@connectrpc/connect-node";
import { REQUEST_ID_HEADER, currentRequest } from "@glimpse/logging";

export interface ClientOptions {
  /** PEM CA bundle to trust for https:// URLs (self-signed deployments). */
  tlsCa?: string | undefined;
  /** Deadline for calls that set none (ms). Streams are exempt. */
  timeoutMs?: number;
  /** Attempts for idempotent calls that fail with UNAVAILABLE. */
  attempts?: number;
  /** Every method of this client is safe to repeat, whatever its proto says (grpc.health.v1 Check declares nothing). */
  idempotent?: boolean;
  interceptors?: Interceptor[];
  /**
   * The HTTP/2 connections the calls go on (the gateway's: one per address of a backend, a call to
   * each in turn); default one connection to `baseUrl`'s host, with SESSION_OPTIONS and `tlsCa`.
   */
  sessionManager?: SessionManager;
}

/** What hands out a client's HTTP/2 streams (connect-node's Http2SessionManager, or a pool of them). */
export type SessionManager = ReturnType<NonNullable<Extract<NodeHttpClientOptions, { httpVersion: "2" }>["sessionProvider"]>>;

/**
 * Every client HTTP/2 connection's keepalive: notice a dead peer (pod gone) within ~30 s instead of
 * hanging on it; an idle connection is closed after 5 minutes. A PING unanswered for 15 s (connect-node's
 * own default; gRPC waits 20 s) ends the connection and every stream on it, a watch included: 5 s is
 * short enough for a live but busy peer to miss (a 2-core node pulling a training Job's 2 GB image).
 */
export const SESSION_OPTIONS: Http2SessionOptions = { pingIntervalMs: 15_000, pingTimeoutMs: 15_000, idleConnectionTimeoutMs: 5 * 60_000 };

/** Copies the current request id onto outgoing calls so one id follows a request through the mesh. */
export const propagateRequestId: Interceptor = (next) => async (req) => {
  const ctx = currentRequest();
  if (ctx && !req.header.has(REQUEST_ID_HEADER)) req.header.set(REQUEST_ID_HEADER, ctx.requestId);
  return next(req);
};

/**
 * Retries UNAVAILABLE (a backend restarting, a connection refused) with exponential backoff,
 * for methods that are safe to repeat: marked NO_SIDE_EFFECTS or IDEMPOTENT in the proto.
 */
export function retryUnavailable(attempts: number, baseDelayMs = 50, everyMethod = false): Interceptor {
  return (next) => async (req) => {
    const idempotent = everyMethod || req.method.idempotency !== 0; // IDEMPOTENCY_UNKNOWN = 0
    if (req.stream || !idempotent || attempts <= 1) return next(req);
    for (let attempt = 1; ; attempt++) {
      try {
        return await next(req);
      } catch (err) {
        const e = ConnectError.from(err);
        if (e.code !== Code.Unavailable || attempt >= attempts || req.signal.aborted) throw err;
        const delay = baseDelayMs * 2 ** (attempt - 1) * (0.5 + Math.random());
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  };
}

/**
 * A stream the server refused (HTTP/2 REFUSED_STREAM: its connection was closing, e.g. a pod
 * draining in a rolling update, so the request was never processed) is UNAVAILABLE, as gRPC
 * defines it: connect-node reports Node's "Stream closed with error code NGHTTP2_REFUSED_STREAM"
 * as INTERNAL, which was neither retried nor relayed as a 503.
 */
export const refusedStreamIsUnavailable: Interceptor = (next) => async (req) => {
  try {
    return await next(req);
  } catch (err) {
    for (let e: unknown = err; e instanceof Error; e = e.cause) {
      if (e.message.includes("NGHTTP2_REFUSED_STREAM")) throw new ConnectError("the server refused the stream (its connection was closing)", Code.Unavailable, undefined, undefined, err);
      // The connection died under the call (the server process crashed or its pod went):
      // connect-node says ABORTED, which a client reads as "conflict, retry the transaction";
      // gRPC calls a broken transport UNAVAILABLE. Our own cancellation stays as it is.
      if ((e as NodeJS.ErrnoException).code === "ECONNRESET" && !req.signal.aborted) {
        throw new ConnectError(`the connection to the server was reset (${e.message})`, Code.Unavailable, undefined, undefined, err);
      }
    }
    // Likewise a stream cancelled by the transport, not by us (HTTP/2 CANCEL as its connection closed).
    if (err instanceof ConnectError && err.code === Code.Canceled && !req.signal.aborted) {
      throw new ConnectError(`the server's connection closed the stream (${err.rawMessage})`, Code.Unavailable, undefined, undefined, err);
    }
    throw err;
  }
};

/** A typed gRPC client over HTTP/2 with keepalive pings, deadlines, retries and request-id propagation. */
export function grpcClient<T extends DescService>(service: T, baseUrl: string, opts: ClientOptions = {}): Client<T> {
  const transport = createGrpcTransport({
    baseUrl,
    ...(opts.sessionManager ? { sessionManager: opts.sessionManager } : { ...SESSION_OPTIONS, ...(opts.tlsCa ? { nodeOptions: { ca: opts.tlsCa } } : {}) }),
    defaultTimeoutMs: opts.timeoutMs ?? 10_000,
    // Inside the mesh CPU is scarcer than bandwidth: gzip cost Ranking ~0.3 ms per relayed reply.
    acceptCompression: [],
    // outermost first: a refused stream is UNAVAILABLE by the time the retry sees it
    interceptors: [propagateRequestId, retryUnavailable(opts.attempts ?? 3, 50, opts.idempotent), refusedStreamIsUnavailable, ...(opts.interceptors ?? [])],
  });
  return createClient(service, transport);
}
