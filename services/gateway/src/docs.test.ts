/**
 * The OpenAPI document and its reference page: the document names exactly the REST routes the
 * gateway serves, with the protos' limits as constraints; the gateway serves it over a real
 * socket, and /docs renders every operation in Debian's Chromium (offline: Swagger UI's files
 * come from the gateway).
 */
import { LIMITS, ranking } from "@glimpse/api";
import { OPENAPI } from "@glimpse/api/openapi";
import { compileTemplate, restRoutes } from "@glimpse/rpc";
import { testConfig } from "@glimpse/runtime/testing";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchChromium, startTestMesh, type TestMesh } from "./testing.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
declare const document: any;

interface Doc {
  paths: Record<string, Record<string, { operationId: string; responses: Record<string, { content: Record<string, { schema: { $ref: string } }> }> }>>;
  components: { schemas: Record<string, { properties?: Record<string, Record<string, unknown>>; required?: string[] }> };
}
const doc = OPENAPI as unknown as Doc;

/** "/v1/{name=collections/*}/photos" and "/v1/collections/{collection}/photos" alike: "/v1/collections/*\/photos". */
const shape = (path: string) => compileTemplate(path).shape;


describe("the OpenAPI document (generated from the protos)", () => {
  const operations = Object.entries(doc.paths).flatMap(([path, ops]) => Object.entries(ops).map(([method, op]) => ({ path, method, op })));

  it("names every REST route the gateway serves, and no other", () => {
    const served = restRoutes().map((r) => `${r.method} ${shape(r.path)} ${r.rpc.parent.name}_${r.rpc.name}`).sort();
    // An additional binding's operationId is the RPC's with "_<n>" (operationIds are unique).
    const documented = operations.map(({ path, method, op }) => `${method.toUpperCase()} ${shape(path)} ${op.operationId.replace(/_\d+$/, "")}`).sort();
    expect(new Set(operations.map(({ op }) => op.operationId)).size).toBe(operations.length);
    expect(documented).toEqual(served);
    expect(documented.length).toBeGreaterThanOrEqual(30);
  });

  it("states the protos' limits and requirements, and the error body the gateway sends", () => {
    const search = doc.components.schemas[ranking.SearchImagesRequestSchema.typeName]!;
    expect(search.required).toEqual(["query"]);
    expect(search.properties!["query"]).toMatchObject({ maxLength: LIMITS.queryMaxChars });
    expect(search.properties!["top_k"]).toMatchObject({ minimum: 0, maximum: LIMITS.topKMax });
    const runs = doc.paths["/data/runs"]!["get"]!;
    expect(runs).toMatchObject({ parameters: expect.arrayContaining([expect.objectContaining({ name: "page_size", schema: expect.objectContaining({ minimum: 0 }) })]) });
    for (const { op } of operations) expect(op.responses["default"]!.content["application/json"]!.schema.$ref).toBe("#/components/schemas/connect.Error");
  });
});

// .ci/run installs Debian's Chromium (apt-get install chromium); without it this test fails, never skips.
describe("/openapi.json and /docs on the gateway", () => {
  let mesh: TestMesh;
  let browser: Browser;

  beforeAll(async () => {
    mesh = await startTestMesh(testConfig());
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await mesh?.close();
  });

  it("serves the document as JSON, with an ETag", async () => {
    const res = await fetch(`${mesh.base}/openapi.json`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(await res.json()).toEqual(OPENAPI);
    expect((await fetch(`${mesh.base}/openapi.json`, { headers: { "if-none-match": res.headers.get("etag")! } })).status).toBe(304);
  });

  it("renders every operation at /docs, from the gateway alone", async () => {
    const page = await browser.newPage();
    const outside: string[] = [];
    const errors: string[] = [];
    page.on("request", (r) => {
      if (!r.url().startsWith(mesh.base) && !r.url().startsWith("data:")) outside.push(r.url());
    });
    page.on("pageerror", (e) => errors.push(String(e)));
    try {
      await page.goto(`${mesh.base}/docs`);
      const count = Object.values(doc.paths).reduce((n, ops) => n + Object.keys(ops).length, 0);
      await page.waitForFunction((n: number) => document.querySelectorAll(".opblock").length === n, count, { timeout: 30_000 });
      const text: string = await page.evaluate(() => document.body.innerText);
      expect(text).toContain("/inference/text-to-image");
      expect(text).toContain("/v1/collections/{collection}/photos");
      expect(outside).toEqual([]);
      expect(errors).toEqual([]);
    } finally {
      await page.close();
    }
  });
});
