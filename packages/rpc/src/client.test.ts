/**
 * A call whose HTTP/2 stream the server refused (REFUSED_STREAM: a backend pod draining in a rolling
 * update) is UNAVAILABLE: retried when the method is safe to repeat, relayed as 503 otherwise. Found by
 * `helm upgrade` under load on a real cluster, where the gateway answered such calls with HTTP 500.
 */
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { refusedStreamIsUnavailable, retryUnavailable } from "./client.js";

type Next = Parameters<Interceptor>[0];
type Req = Parameters<Next>[0];

/** What connect-node throws for Node's ERR_HTTP2_STREAM_ERROR on a refused stream. */
function refused(): ConnectError {
  const node = Object.assign(new Error("Stream closed with error code NGHTTP2_REFUSED_STREAM"), { code: "ERR_HTTP2_STREAM_ERROR" });
  return new ConnectError(node.message, Code.Internal, undefined, undefined, node);
}

function chain(failures: number): { call: Next; calls: () => number } {
  let calls = 0;
  const transport = (async () => {
    calls++;
    if (calls <= failures) throw refused();
    return { message: "ok" };
  }) as unknown as Next;
  return { call: retryUnavailable(3, 1)(refusedStreamIsUnavailable(transport)), calls: () => calls };
}
const request = (idempotency: number) => ({ stream: false, method: { idempotency }, signal: new AbortController().signal }) as unknown as Req;

describe("a refused stream", () => {
  it("is retried for a method without side effects", async () => {
    const { call, calls } = chain(1);
    await expect(call(request(1))).resolves.toMatchObject({ message: "ok" });
    expect(calls()).toBe(2);
  });

  it("is UNAVAILABLE, not INTERNAL, where it is not retried", async () => {
    const { call, calls } = chain(1);
    const err = await call(request(0)).catch((e: unknown) => ConnectError.from(e));
    expect((err as ConnectError).code).toBe(Code.Unavailable);
    expect(calls()).toBe(1);
  });

  it("is retried for any method of a client that declares them all safe to repeat (health checks)", async () => {
    let calls = 0;
    const transport = (async () => {
      if (++calls === 1) throw refused();
      return { message: "ok" };
    }) as unknown as Next;
    await expect(retryUnavailable(3, 1, true)(refusedStreamIsUnavailable(transport))(request(0))).resolves.toMatchObject({ message: "ok" });
    expect(calls).toBe(2);
  });

  it("leaves other errors as they are", async () => {
    const other = (async () => {
      throw new ConnectError("bad", Code.Internal);
    }) as unknown as Next;
    const err = await refusedStreamIsUnavailable(other)(request(1)).catch((e: unknown) => ConnectError.from(e));
    expect((err as ConnectError).code).toBe(Code.Internal);
  });
});
