import { ConnectError } from "@connectrpc/connect";
import type { Client } from "@connectrpc/connect";
import { data, PATTERNS } from "@glimpse/api";
import { REQUEST_ID_HEADER, requestIdFrom } from "@glimpse/logging";
import type { ExtraRoute } from "./server.js";
import { forwardedHeaders, nodeHeader, sendError, writeHead } from "@glimpse/rpc";

/** An identifier's pattern (from the protos' rules) as a part of a longer one. */
const part = (re: RegExp): string => re.source.replace(/^\^/, "").replace(/\$$/, "");
const IMAGE_PATH = new RegExp(`^/data/images/(?:(${part(PATTERNS.dataset)})/)?(${part(PATTERNS.datasetVersion)}|latest)/(${part(PATTERNS.imageId)})$`);

/**
 * Image bytes over plain HTTP for <img> tags: /data/images/[<dataset>/]<version>/<image_id>.
 * A version's images never change, so responses are cacheable forever and revalidate by
 * their sha256 ETag; "latest" resolves per request and is cached briefly.
 */
export const imageRoute: ExtraRoute = async (req, res, url, backends) => {
  const m = IMAGE_PATH.exec(url.pathname);
  if (!m || (req.method !== "GET" && req.method !== "HEAD")) return false;
  const [, dataset = "", version = "", imageId = ""] = m;
  const requestId = requestIdFrom(req.headers[REQUEST_ID_HEADER] as string | undefined);
  const client = backends.get("data")!.client as unknown as Client<typeof data.DataService>;
  try {
    const img = await client.getImage(
      { dataset, version: version === "latest" ? "" : version, imageId },
      { headers: forwardedHeaders(nodeHeader(req), requestId) },
    );
    const etag = `"${img.sha256}"`;
    const headers = {
      etag,
      "cache-control": version === "latest" ? "public, max-age=60" : "public, max-age=31536000, immutable",
      "content-type": img.contentType,
      [REQUEST_ID_HEADER]: requestId,
    };
    if (req.headers["if-none-match"] === etag) {
      writeHead(res, 304, headers);
      res.end();
      return true;
    }
    writeHead(res, 200, { ...headers, "content-length": String(img.data.length) });
    if (req.method === "HEAD") res.end();
    else res.end(img.data);
  } catch (err) {
    sendError(res, ConnectError.from(err), requestId);
  }
  return true;
};
