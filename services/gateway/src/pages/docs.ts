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
import { sendBytes } from "./index.js";

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

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

const asset = (body: string | Buffer, type: string): Asset => {
  const bytes = typeof body === "string" ? Buffer.from(body) : body;
  return { body: bytes, type, etag: `"${createHash("sha256").update(bytes).digest("hex").slice(0, 16)}"` };
};

const JS = "text/javascript; charset=utf-8";

/** What the route serves, by path; each made on its first request (nothing added to start-up). */
const ASSETS: Record<string, () => Promise<Asset>> = {
  "/openapi.json": async () => asset(`${JSON.stringify(OPENAPI)}\n`, "application/json"),
  "/docs": async () => asset(DOCS_PAGE, "text/html; charset=utf-8"),
  "/docs/init.js": async () => asset(INIT_JS, JS),
  "/docs/swagger-ui.css": async () => asset(await readFile(join(SWAGGER_DIR, "swagger-ui.css")), "text/css; charset=utf-8"),
  "/docs/swagger-ui-bundle.js": async () => asset(await readFile(join(SWAGGER_DIR, "swagger-ui-bundle.js")), JS),
};

/** A gateway route: true when it answered the request. */
export function docsRoute(): (req: Req, res: Res, url: URL) => Promise<boolean> {
  const made = new Map<string, Promise<Asset>>();
  return async (req, res, url) => {
    const p = url.pathname === "/docs/" ? "/docs" : url.pathname;
    if (!Object.hasOwn(ASSETS, p) || (req.method !== "GET" && req.method !== "HEAD")) return false;
    let making = made.get(p);
    if (!making) {
      made.set(p, (making = ASSETS[p]!()));
      making.catch(() => made.delete(p)); // a failed read is tried again next time
    }
    const found = await making;
    const headers: Record<string, string> = { "content-type": found.type, "cache-control": "no-cache" };
    if (p === "/docs") headers["content-security-policy"] = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'";
    if (p === "/openapi.json") headers["access-control-allow-origin"] = "*"; // other tools (editors, generators) read it too
    return sendBytes(req, res, found.body, found.etag, headers);
  };
}
