/**
 * The API reference: `/openapi.json` (the OpenAPI 3 document generated from the protos,
 * @glimpse/api/openapi) and `/docs`, Swagger UI rendering it. Swagger UI's files come from the
 * swagger-ui-dist package and are served from here, so the page works offline.
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { OPENAPI } from "@glimpse/api/openapi";
import { writeHead } from "@glimpse/rpc";

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

const DOCS_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Glimpse API reference</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
`;

// A file of its own: the page's policy allows no inline script.
const INIT_JS = `window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true });\n`;

const SWAGGER_DIR = dirname(createRequire(import.meta.url).resolve("swagger-ui-dist/package.json"));
const SWAGGER_FILES: Record<string, string> = {
  "swagger-ui.css": "text/css; charset=utf-8",
  "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
};

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

const asset = (body: string | Buffer, type: string): Asset => {
  const bytes = typeof body === "string" ? Buffer.from(body) : body;
  return { body: bytes, type, etag: `"${createHash("sha256").update(bytes).digest("hex").slice(0, 16)}"` };
};

/** A gateway route: true when it answered the request. */
export function docsRoute(): (req: Req, res: Res, url: URL) => Promise<boolean> {
  const fixed = new Map<string, Asset>([
    ["/openapi.json", asset(`${JSON.stringify(OPENAPI)}\n`, "application/json")],
    ["/docs", asset(DOCS_PAGE, "text/html; charset=utf-8")],
    ["/docs/init.js", asset(INIT_JS, "text/javascript; charset=utf-8")],
  ]);
  const files = new Map<string, Promise<Asset>>();
  return async (req, res, url) => {
    const p = url.pathname === "/docs/" ? "/docs" : url.pathname;
    let found = fixed.get(p);
    const file = p.startsWith("/docs/") ? p.slice("/docs/".length) : "";
    if (!found && Object.hasOwn(SWAGGER_FILES, file)) {
      let loading = files.get(file);
      if (!loading) files.set(file, (loading = readFile(join(SWAGGER_DIR, file)).then((b) => asset(b, SWAGGER_FILES[file]!))));
      found = await loading;
    }
    if (!found) return false;
    if (req.method !== "GET" && req.method !== "HEAD") return false;
    const headers: Record<string, string> = {
      "content-type": found.type,
      "cache-control": "no-cache",
      etag: found.etag,
      "x-content-type-options": "nosniff",
    };
    if (p === "/docs") headers["content-security-policy"] = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'";
    if (p === "/openapi.json") headers["access-control-allow-origin"] = "*"; // other tools (editors, generators) read it too
    if (req.headers["if-none-match"] === found.etag) {
      writeHead(res, 304, { etag: found.etag });
      res.end();
      return true;
    }
    writeHead(res, 200, { ...headers, "content-length": String(found.body.length) });
    if (req.method === "HEAD") res.end();
    else res.end(found.body);
    return true;
  };
}
