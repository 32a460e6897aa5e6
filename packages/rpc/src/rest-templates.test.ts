/**
 * google.api.http path templates, DELETE and response_body in the REST route table (rest.ts):
 * the matcher alone, then handleRest over HTTP with fake Data and Ranking clients as backends.
 */
import { createHash } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { create } from "@bufbuild/protobuf";
import { data, ranking, type ServiceName } from "@glimpse/api";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compileTemplate, handleRest, REST_ROUTES, restMatch, restRoute, restRouter } from "./rest.js";

const ALL = { has: () => true };
const only = (...names: ServiceName[]) => new Set(names);
const route = (rpc: string) => REST_ROUTES.find((r) => r.rpc.name === rpc)!;

describe("the route table", () => {
  it("holds the collection routes with their methods, uploads and response_body", () => {
    expect(REST_ROUTES.map((r) => `${r.method} ${r.path} ${r.rpc.name}`)).toEqual(
      expect.arrayContaining([
        "POST /v1/collections CreateCollection",
        "GET /v1/{name=collections/*} GetCollection",
        "GET /v1/collections ListCollections",
        "DELETE /v1/{name=collections/*} DeleteCollection",
        "POST /v1/{name=collections/*}:sync SyncCollection",
        "POST /v1/{parent=collections/*}/photos CreatePhoto",
        "GET /v1/{name=collections/*/photos/*} GetPhoto",
        "GET /v1/{parent=collections/*}/photos ListPhotos",
        "DELETE /v1/{name=collections/*/photos/*} DeletePhoto",
        "GET /v1/{name=collections/*/photos/*}/thumbnail GetPhotoThumbnail",
        "POST /v1/{name=collections/*}:search SearchCollection",
        "GET /v1/{parent=collections/*}/duplicates ListCollectionDuplicates",
      ]),
    );
    expect(route("GetPhotoThumbnail").responseBody).toBe("data");
    expect(route("CreatePhoto").upload).toBe("image");
    expect(route("CreateCollection").body).toBe("collection");
    expect(route("DeletePhoto").body).toBe("");
  });

  it("compiles a template: variables, `*`, a verb; refuses what it cannot serve", () => {
    const t = compileTemplate("/v1/{name=collections/*}:sync");
    expect([t.shape, t.vars, t.regex.exec("/v1/collections/a:sync")?.[1]]).toEqual(["/v1/collections/*:sync", ["name"], "collections/a"]);
    expect(compileTemplate("/v1/{id}/x").shape).toBe("/v1/*/x");
    for (const bad of ["/v1/{name=**}", "/v1/{a.b}", "/v1/{x}/{x}", "/v1/{name=}", "/v1/{name", "/v1/a*b/{x}"]) expect(() => compileTemplate(bad), bad).toThrow();
  });

  it("refuses a path split across services, or a method annotated twice at one path", () => {
    const get = route("GetCollection");
    expect(() => restRouter([get, { ...route("SearchCollection"), method: "DELETE", path: "/v1/{parent=collections/*}" }])).toThrow(/one service/);
    expect(() => restRouter([get, { ...route("GetPhoto"), path: "/v1/{x=collections/*}" }])).toThrow(/method once/);
  });
});

describe("matching a path", () => {
  it("binds the variables to the matched text, percent-decoded per segment", () => {
    expect(restMatch("/v1/collections/holiday", ALL, "GET")).toMatchObject({ route: { rpc: { name: "GetCollection" } }, params: { name: "collections/holiday" }, allow: "DELETE, GET" });
    expect(restMatch("/v1/collections/holiday", ALL, "DELETE")?.route.rpc.name).toBe("DeleteCollection");
    expect(restMatch("/v1/collections/my%2Dtrip/photos/0123456789abcdef?x=1", ALL, "GET")?.params).toEqual({ name: "collections/my-trip/photos/0123456789abcdef" });
    expect(restMatch("/v1/collections/a%20b/photos", ALL, "POST")).toMatchObject({ route: { rpc: { name: "CreatePhoto" } }, params: { parent: "collections/a b" } });
    expect(restMatch("/v1/collections/bad%zz/photos", ALL, "GET")?.params).toEqual({ parent: "collections/bad%zz" });
    expect(restMatch("/v1/collections/a/photos/b/thumbnail", ALL, "HEAD")?.route.rpc.name).toBe("GetPhotoThumbnail");
  });

  it("tries a verb before a bare `*` that would swallow it, and reports the path's methods", () => {
    expect(restMatch("/v1/collections/holiday:sync", ALL, "POST")).toMatchObject({ route: { rpc: { name: "SyncCollection" } }, params: { name: "collections/holiday" } });
    // Another method at the verb's path: the caller answers 405, not GetCollection of "holiday:sync".
    expect(restMatch("/v1/collections/holiday:sync", ALL, "GET")).toMatchObject({ route: { method: "POST" }, allow: "POST" });
  });

  it("serves literal paths from the exact map, and a literal wins over a template", () => {
    expect(restMatch("/v1/collections", ALL, "POST")).toMatchObject({ route: { rpc: { name: "CreateCollection" } }, params: {}, allow: "GET, POST" });
    expect(restMatch("/v1/collections", ALL, "GET")?.route.rpc.name).toBe("ListCollections");
    expect(restMatch("/demo/search?query=a", ALL, "GET")?.route.rpc.name).toBe("DemoSearch");
    const match = restRouter([route("GetCollection"), { ...route("ListCollections"), path: "/v1/collections/special" }]);
    expect(match("/v1/collections/special", ALL, "GET")).toMatchObject({ route: { rpc: { name: "ListCollections" } }, params: {} });
    expect(match("/v1/collections/other", ALL, "GET")).toMatchObject({ route: { rpc: { name: "GetCollection" } }, params: { name: "collections/other" } });
  });

  it("matches nothing else", () => {
    for (const path of ["/v1/collections/", "/v1/collections//photos", "/v1/collections/a/b", "/v1/collections/a/photos/b/c", "/v1/other/a", "/v2/collections/a", "/v1", "/glimpse.data.v1.DataService/GetCollection", "/"]) {
      expect(restMatch(path, ALL, "GET"), path).toBeUndefined();
    }
  });

  it("answers only for the services asked about: Ranking's collection paths pass through, Data's do not", () => {
    expect(restRoute("/v1/collections/holiday:search", only("ranking"))).toMatchObject({ service: "ranking", rpc: { name: "SearchCollection" } });
    expect(restRoute("/v1/collections/holiday/duplicates", only("ranking"))?.rpc.name).toBe("ListCollectionDuplicates");
    expect(restRoute("/v1/collections/holiday", only("ranking"))).toBeUndefined();
    expect(restRoute("/v1/collections/holiday:sync", only("ranking"))).toBeUndefined();
    expect(restRoute("/v1/collections", only("ranking"))).toBeUndefined();
    expect(restRoute("/v1/collections/holiday/photos", only("data"))?.service).toBe("data");
    expect(restRoute("/v1/collections/holiday:search", only("data"))).toBeUndefined();
  });
});

describe("handleRest with templates, DELETE and response_body", () => {
  const calls: { rpc: string; req: Record<string, unknown> }[] = [];
  const thumb = Buffer.from("\xff\xd8 not really a jpeg \xff\xd9", "latin1");
  const sha = createHash("sha256").update(thumb).digest("hex");
  const record = (rpc: string, req: unknown) => calls.push({ rpc, req: req as Record<string, unknown> });
  const dataClient = {
    createCollection: (req: unknown) => (record("createCollection", req), create(data.CreateCollectionResponseSchema, {})),
    getCollection: (req: unknown) => (record("getCollection", req), create(data.GetCollectionResponseSchema, { collection: { name: "collections/holiday" } })),
    deleteCollection: (req: unknown) => (record("deleteCollection", req), create(data.DeleteCollectionResponseSchema, {})),
    createPhoto: (req: unknown) => (record("createPhoto", req), create(data.CreatePhotoResponseSchema, { photo: { name: "collections/up/photos/0123456789abcdef" } })),
    listPhotos: (req: unknown) => (record("listPhotos", req), create(data.ListPhotosResponseSchema, {})),
    getPhotoThumbnail: (req: { name: string }) =>
      create(data.GetPhotoThumbnailResponseSchema, req.name.endsWith("0000000000000000") ? { data: thumb } : { data: thumb, contentType: "image/jpeg", sha256: sha }),
  };
  const rankingClient = {
    searchCollection: (req: unknown) => (record("searchCollection", req), create(ranking.SearchCollectionResponseSchema, { collectionVersion: "v1" })),
  };
  const backends = new Map<ServiceName, { service: never; client: unknown }>([
    ["data", { service: data.DataService as never, client: dataClient }],
    ["ranking", { service: ranking.RankingService as never, client: rankingClient }],
  ]);
  let server: Server;
  let base = "";
  const last = () => calls.at(-1)!;

  beforeAll(async () => {
    server = createServer((req, res) => {
      void handleRest(req, res, new URL(req.url ?? "/", "http://rest"), { backends, maxBodyBytes: 1 << 20, timeoutMs: 5_000 }).then((served) => {
        if (!served) res.writeHead(404).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it("GET and DELETE at one template path call their own RPCs with the bound name", async () => {
    const got = await fetch(`${base}/v1/collections/holiday`);
    expect([got.status, await got.json(), last()]).toEqual([200, { collection: expect.objectContaining({ name: "collections/holiday" }) }, { rpc: "getCollection", req: expect.objectContaining({ name: "collections/holiday" }) }]);
    const del = await fetch(`${base}/v1/collections/holiday`, { method: "DELETE" });
    expect([del.status, await del.json(), last()]).toEqual([200, {}, { rpc: "deleteCollection", req: expect.objectContaining({ name: "collections/holiday" }) }]);
  });

  it("answers 405 with the path's methods when the path matches but the method does not", async () => {
    for (const [method, path, allow] of [
      ["POST", "/v1/collections/holiday", "DELETE, GET"],
      ["DELETE", "/v1/collections", "GET, POST"],
      ["GET", "/v1/collections/holiday:sync", "POST"],
      ["PUT", "/v1/collections/holiday/photos/0123456789abcdef", "DELETE, GET"],
    ] as const) {
      const res = await fetch(`${base}${path}`, { method });
      expect([res.status, res.headers.get("allow"), ((await res.json()) as { code: string }).code], `${method} ${path}`).toEqual([405, allow, "unimplemented"]);
    }
    expect((await fetch(`${base}/v1/collections/a/b`)).status).toBe(404);
  });

  it("maps the body onto its field and the query onto the others; the path wins over both", async () => {
    await fetch(`${base}/v1/collections?collection_id=holiday`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ display_name: "Holiday", source: { uploads: {} } }) });
    expect(last().req).toMatchObject({ collectionId: "holiday", collection: { displayName: "Holiday", source: { kind: { case: "uploads" } } } });
    const search = await fetch(`${base}/v1/collections/holiday:search?name=collections/query`, { method: "POST", body: JSON.stringify({ name: "collections/body", text: "a dog", top_k: 3 }) });
    expect([search.status, await search.json()]).toEqual([200, { collection_version: "v1" }]);
    expect(last()).toMatchObject({ rpc: "searchCollection", req: { name: "collections/holiday", query: { case: "text", value: "a dog" }, topK: 3 } });
    // The query string's text becomes a bool field's value and a number's.
    await fetch(`${base}/v1/collections/holiday/photos?skipped=true&page_size=5&parent=collections/other`);
    expect(last()).toMatchObject({ rpc: "listPhotos", req: { parent: "collections/holiday", skipped: true, pageSize: 5 } });
  });

  it("CreatePhoto takes a raw image/* body or a multipart upload, the file name from the query or a field", async () => {
    const jpeg = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 0xff, 0xd9]);
    const raw = await fetch(`${base}/v1/collections/up/photos?filename=beach.jpg`, { method: "POST", headers: { "content-type": "image/jpeg" }, body: jpeg });
    expect(raw.status).toBe(200);
    expect(last()).toMatchObject({ rpc: "createPhoto", req: { parent: "collections/up", filename: "beach.jpg" } });
    expect(Buffer.from(last().req["image"] as Uint8Array)).toEqual(jpeg);
    const form = new FormData();
    form.append("filename", "dune.jpg");
    form.append("file", new Blob([jpeg], { type: "image/jpeg" }), "ignored.jpg");
    const multi = await fetch(`${base}/v1/collections/up/photos`, { method: "POST", body: form });
    expect([multi.status, await multi.json()]).toEqual([200, { photo: expect.objectContaining({ name: "collections/up/photos/0123456789abcdef" }) }]);
    expect(last()).toMatchObject({ req: { parent: "collections/up", filename: "dune.jpg" } });
    expect(Buffer.from(last().req["image"] as Uint8Array)).toEqual(jpeg);
  });

  it("response_body answers the bytes, typed and content-addressed; If-None-Match gets 304, HEAD the headers", async () => {
    const path = `${base}/v1/collections/holiday/photos/0123456789abcdef/thumbnail`;
    const res = await fetch(path);
    expect(Buffer.from(await res.arrayBuffer())).toEqual(thumb);
    expect(Object.fromEntries(["content-type", "content-length", "etag", "cache-control"].map((h) => [h, res.headers.get(h)]))).toEqual({
      "content-type": "image/jpeg",
      "content-length": String(thumb.length),
      etag: `"${sha}"`,
      "cache-control": "public, max-age=31536000, immutable",
    });
    const again = await fetch(path, { headers: { "if-none-match": `W/"other", "${sha}"` } });
    expect([again.status, again.headers.get("etag"), (await again.arrayBuffer()).byteLength]).toEqual([304, `"${sha}"`, 0]);
    const head = await fetch(path, { method: "HEAD" });
    expect([head.status, head.headers.get("content-length"), (await head.arrayBuffer()).byteLength]).toEqual([200, String(thumb.length), 0]);
    // No sha256 nor content_type: plain bytes, no cache promise.
    const plain = await fetch(`${base}/v1/collections/holiday/photos/0000000000000000/thumbnail`);
    expect([plain.headers.get("content-type"), plain.headers.get("etag"), plain.headers.get("cache-control")]).toEqual(["application/octet-stream", null, null]);
    expect(Buffer.from(await plain.arrayBuffer())).toEqual(thumb);
  });
});
