/**
 * Pages the gateway serves to browsers: the search page (`/`, `/search`) and the demo
 * pack's image bytes (`/demo/images/<image_id>`), which the demo gallery's results link to.
 * The page itself talks to the gateway's REST paths, like any other client.
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { PATTERNS } from "@glimpse/api";
import { writeHead } from "@glimpse/rpc";
import { SEARCH_PAGE } from "./search-page.js";

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

const DEFAULT_DEMO_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "../../../../demo");

export interface PagesOptions {
  /** The demo pack folder (images under images/); default the repository's demo/. */
  demoDir?: string | undefined;
}

const SEARCH_PAGE_BYTES = Buffer.from(SEARCH_PAGE);
const PAGE_ETAG = `"${createHash("sha256").update(SEARCH_PAGE_BYTES).digest("hex").slice(0, 16)}"`;

/** A GET or HEAD answered with bytes under an ETag: 304 when the client has them, else 200 (HEAD: no body). */
export function sendBytes(req: Req, res: Res, body: Buffer, etag: string, headers: Record<string, string>): true {
  if (req.headers["if-none-match"] === etag) {
    writeHead(res, 304, { etag });
    res.end();
    return true;
  }
  writeHead(res, 200, { ...headers, etag, "content-length": String(body.length), "x-content-type-options": "nosniff" });
  if (req.method === "HEAD") res.end();
  else res.end(body);
  return true;
}

/** A gateway route (see GatewayOptions.routes): true when it answered the request. */
export function pagesRoute(opts: PagesOptions = {}): (req: Req, res: Res, url: URL) => Promise<boolean> {
  const demoDir = opts.demoDir ?? DEFAULT_DEMO_DIR;
  return async (req, res, url) => {
    const p = url.pathname;
    if (p === "/" || p === "/search" || p === "/search/") {
      if (req.method !== "GET" && req.method !== "HEAD") return false;
      return sendBytes(req, res, SEARCH_PAGE_BYTES, PAGE_ETAG, {
        "content-type": "text/html; charset=utf-8",
        "cache-control": "no-cache",
        "content-security-policy": "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'",
      });
    }
    if (p.startsWith("/demo/images/")) {
      if (req.method !== "GET" && req.method !== "HEAD") return false;
      const id = decodeURIComponent(p.slice("/demo/images/".length)).replace(/\.jpg$/, "");
      if (!PATTERNS.imageId.test(id) || id.startsWith(".")) return notFound(res);
      let bytes: Buffer;
      try {
        bytes = await readFile(join(demoDir, "images", `${id}.jpg`));
      } catch {
        return notFound(res);
      }
      const etag = `"${createHash("sha256").update(bytes).digest("hex").slice(0, 32)}"`;
      return sendBytes(req, res, bytes, etag, { "content-type": "image/jpeg", "cache-control": "public, max-age=86400" });
    }
    return false;
  };
}

function notFound(res: Res): true {
  const body = JSON.stringify({ code: "not_found", message: "no such image" });
  writeHead(res, 404, { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)) });
  res.end(body);
  return true;
}
