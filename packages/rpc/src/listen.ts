import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import type { AddressInfo } from "node:net";

export interface TlsFiles {
  /** PEM certificate chain. */
  cert: string;
  /** PEM private key. */
  key: string;
}

export type Handler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => void;

export interface Listening {
  port: number;
  /** Stops accepting, lets open requests finish (HTTP/2 GOAWAY), then force-closes after graceMs. */
  close(graceMs: number): Promise<void>;
}

/**
 * Listens with HTTP/2 (gRPC needs it) and, when `http1` is set, HTTP/1.1 on the same port:
 * over TLS the protocol is chosen by ALPN; in cleartext by sniffing the HTTP/2 connection
 * preface, since Node's h2c server cannot fall back to HTTP/1.1 by itself.
 */
export async function listen(opts: { host: string; port: number; handler: Handler; http1: boolean; tls?: TlsFiles | undefined }): Promise<Listening> {
  const sessions = new Set<http2.ServerHttp2Session>();
  // Draining: an HTTP/1.1 keep-alive client is told `Connection: close` with its next response,
  // so it opens a new connection (to another replica) instead of reusing one we are about to end.
  let draining = false;
  const handler: Handler = (req, res) => {
    if (draining && req.httpVersionMajor === 1) (res as http.ServerResponse).shouldKeepAlive = false;
    opts.handler(req, res);
  };
  const h2 = opts.tls
    ? http2.createSecureServer({ cert: opts.tls.cert, key: opts.tls.key, allowHTTP1: opts.http1 }, handler)
    : http2.createServer({}, handler);
  h2.on("session", (s: http2.ServerHttp2Session) => {
    sessions.add(s);
    s.once("close", () => sessions.delete(s));
  });
  // With an HTTP/1.1 fallback, keep track of those connections too so shutdown can end them.
  const h1 = opts.http1 && !opts.tls ? http.createServer(handler as http.RequestListener) : undefined;

  const sockets = new Set<net.Socket>();
  let front: net.Server;
  if (h1) {
    front = net.createServer((socket) => {
      sockets.add(socket);
      socket.once("close", () => sockets.delete(socket));
      socket.once("readable", () => {
        const head: Buffer | null = socket.read(4);
        if (head) socket.unshift(head);
        if (head && head.toString("latin1") === "PRI ") h2.emit("connection", socket);
        else h1.emit("connection", socket);
      });
    });
  } else {
    front = h2;
    // Track raw connections too: a session whose peer reset a stream mid-write can survive
    // session.destroy() long enough to hold close() open.
    h2.on("connection", (socket: net.Socket) => {
      sockets.add(socket);
      socket.once("close", () => sockets.delete(socket));
    });
  }
  await new Promise<void>((resolve, reject) => {
    front.once("error", reject);
    front.listen(opts.port, opts.host, () => resolve());
  });
  const port = (front.address() as AddressInfo).port;

  return {
    port,
    async close(graceMs: number) {
      draining = true;
      const closed = new Promise<void>((resolve) => front.close(() => resolve()));
      for (const s of sessions) s.close();
      // HTTP/1.1 keep-alive connections end by themselves: a busy one after its next response
      // (`Connection: close`, above), an idle one at the keep-alive timeout the server advertises
      // (Keep-Alive: timeout=5), before which clients stop reusing it. (h1 never listens: the
      // connections are handed to it, so it has nothing of its own to close.)
      const timer = setTimeout(() => {
        for (const s of sessions) s.destroy();
        for (const s of sockets) s.destroy();
        if (front !== h2) h2.close();
      }, graceMs);
      timer.unref();
      if (front !== h2) h2.close();
      await closed;
      clearTimeout(timer);
    },
  };
}
