/**
 * A local static HTTP server for tests and the benchmark: serves files with Content-Length,
 * ETag, Range/If-Range (206) and HEAD, and can inject faults — drop the connection after N
 * body bytes, or answer with an error status — for the first few requests of a path.
 */
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface Fault {
  /** URL path, e.g. "/Flickr8k_Dataset.zip". */
  path: string;
  /** Destroy the socket after sending this many body bytes. */
  dropAfterBytes?: number;
  /** Or answer with this status (e.g. 503). */
  status?: number;
  /** For how many matching GET requests (default 1). */
  times?: number;
}

export interface RequestLog {
  method: string;
  path: string;
  range?: string;
  ifRange?: string;
  status: number;
  /** Body bytes actually sent. */
  sent: number;
  dropped: boolean;
}

export interface StaticServer {
  url: string;
  /** URL of a served path. */
  urlOf(path: string): string;
  requests: RequestLog[];
  addFault(fault: Fault): void;
  close(): Promise<void>;
}

/** Serves `files` (URL path → file on disk). */
export async function startStaticServer(files: Record<string, string>, opts: { faults?: Fault[]; bytesPerSecond?: number } = {}): Promise<StaticServer> {
  const faults = (opts.faults ?? []).map((f) => ({ ...f, left: f.times ?? 1 }));
  const requests: RequestLog[] = [];
  const server: Server = createServer((req, res) => {
    void (async () => {
      const path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
      const log: RequestLog = { method: req.method ?? "GET", path, status: 200, sent: 0, dropped: false };
      if (req.headers.range) log.range = req.headers.range;
      if (req.headers["if-range"]) log.ifRange = String(req.headers["if-range"]);
      requests.push(log);
      const file = files[path];
      const st = file ? await stat(file).catch(() => undefined) : undefined;
      if (!file || !st) {
        log.status = 404;
        res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
        return;
      }
      const fault = req.method === "GET" ? faults.find((f) => f.path === path && f.left > 0) : undefined;
      if (fault) fault.left--;
      if (fault?.status) {
        log.status = fault.status;
        res.writeHead(fault.status, { "content-type": "text/plain" }).end("injected failure\n");
        return;
      }
      const etag = `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`;
      const headers: Record<string, string | number> = { etag, "last-modified": st.mtime.toUTCString(), "accept-ranges": "bytes", "content-type": "application/zip" };
      let start = 0;
      let end = st.size - 1;
      let status = 200;
      const m = req.headers.range ? /^bytes=(\d*)-(\d*)$/.exec(req.headers.range) : null;
      const ifRange = req.headers["if-range"];
      if (m && (!ifRange || ifRange === etag || ifRange === headers["last-modified"])) {
        start = m[1] ? Number(m[1]) : st.size - Number(m[2]);
        end = m[1] && m[2] ? Math.min(Number(m[2]), st.size - 1) : st.size - 1;
        if (start >= st.size || start > end) {
          log.status = 416;
          res.writeHead(416, { "content-range": `bytes */${st.size}` }).end();
          return;
        }
        status = 206;
        headers["content-range"] = `bytes ${start}-${end}/${st.size}`;
      }
      headers["content-length"] = end - start + 1;
      log.status = status;
      res.writeHead(status, headers);
      if (req.method === "HEAD") {
        res.end();
        return;
      }
      const limit = fault?.dropAfterBytes;
      const stream = createReadStream(file, { start, end, highWaterMark: 64 * 1024 });
      const bps = opts.bytesPerSecond;
      const t0 = Date.now();
      for await (const chunk of stream) {
        let buf = chunk as Buffer;
        if (limit !== undefined && log.sent + buf.length >= limit) {
          buf = buf.subarray(0, Math.max(0, limit - log.sent));
          if (buf.length > 0) await new Promise<void>((r) => res.write(buf, () => r()));
          log.sent += buf.length;
          log.dropped = true;
          stream.destroy();
          req.socket.destroy();
          return;
        }
        if (!res.write(buf)) await new Promise((r) => res.once("drain", r));
        log.sent += buf.length;
        if (bps) {
          const ahead = (log.sent / bps) * 1000 - (Date.now() - t0);
          if (ahead > 0) await new Promise((r) => setTimeout(r, ahead));
        }
        if (res.destroyed) return;
      }
      res.end();
    })().catch(() => {
      res.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    urlOf: (p) => `${url}${p.startsWith("/") ? p : `/${p}`}`,
    requests,
    addFault: (f) => faults.push({ ...f, left: f.times ?? 1 }),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
