/**
 * Property-based fuzzing of the public surface through the gateway (fast-check): every RPC's
 * Connect JSON body, every earlier REST path, and image uploads — random, truncated and oversized
 * values, wrong types, unicode, deep nesting, corrupt and huge images. Whatever arrives, the answer
 * is a client error or a success — never a 5xx other than 503 — it is JSON, and the mesh still
 * answers afterwards. The mesh is the real one (three services and the gateway over sockets); its
 * side effects are fenced: no pipeline source is allowed (nothing is downloaded) and the trainer
 * command is `false`.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { DescMessage, DescMethod } from "@bufbuild/protobuf";
import { data, ranking, training } from "@glimpse/api";
import { TEST_WRITE_KEY, testConfig } from "@glimpse/runtime/testing";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REST_ROUTES } from "@glimpse/rpc";
import { startTestMesh, type TestMesh } from "./testing.js";

const AUTH = { authorization: `Bearer ${TEST_WRITE_KEY}` };
const SERVICES = [ranking.RankingService, training.TrainingService, data.DataService];
const DEMO_IMAGES = new URL("../../../demo/images/", import.meta.url).pathname;
const SEED = Number(process.env["GLIMPSE_FUZZ_SEED"] ?? 20261202);
const RUNS = Number(process.env["GLIMPSE_FUZZ_RUNS"] ?? 25);

/** Deep nesting without recursion limits of its own: [[[[…]]]] or {"a":{"a":…}}. */
const deep = fc.tuple(fc.integer({ min: 20, max: 2_000 }), fc.boolean()).map(([n, arr]) => {
  let v: unknown = 1;
  for (let i = 0; i < n; i++) v = arr ? [v] : { a: v };
  return v;
});

/** A value for any field: wrong types, extremes, unicode, oversized strings, nesting. */
const wild: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.string({ unit: "binary", maxLength: 64 }),
  fc.string({ unit: "grapheme", maxLength: 64 }),
  fc.constantFrom("", " ", "\u0000", "\uFFFF", "a".repeat(100_000), "-1", "NaN", "1e400", "SPLIT_TEST", "m-0123456789abcdef", "../../etc/passwd", "file:///etc/passwd", "http://127.0.0.1:1/x.zip"),
  fc.constantFrom(0, -1, 1.5, 2 ** 31, 2 ** 53 + 1, -(2 ** 63), 1e308, -1e308, Number.MIN_VALUE),
  fc.constantFrom(null, true, false, [], {}),
  deep,
);

/** A JSON body for a message: mostly its own field names (JSON and proto names), with wild values. */
function bodyFor(msg: DescMessage): fc.Arbitrary<unknown> {
  const names = msg.fields.flatMap((f) => [f.jsonName, f.name]);
  const keys = names.length ? fc.oneof(fc.constantFrom(...names), fc.string({ maxLength: 12 })) : fc.string({ maxLength: 12 });
  return fc.oneof(
    { weight: 6, arbitrary: fc.dictionary(keys, wild, { maxKeys: 6 }) },
    { weight: 1, arbitrary: wild },
  );
}

/** Bytes that are not a valid JSON document: truncated JSON, random bytes, invalid UTF-8. */
const brokenBody = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }).chain((v) => {
    const s = JSON.stringify(v) ?? "null";
    return fc.integer({ min: 0, max: Math.max(0, s.length - 1) }).map((n) => Buffer.from(s.slice(0, n)));
  }),
  fc.uint8Array({ maxLength: 512 }).map((a) => Buffer.from(a)),
  fc.constant(Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d])),
);

type Answer = { status: number; json: boolean; body: string };

async function answer(res: Response): Promise<Answer> {
  const body = await res.text();
  let json = true;
  try {
    JSON.parse(body);
  } catch {
    json = false;
  }
  return { status: res.status, json, body: body.slice(0, 300) };
}

/** What every fuzzed request must get: a non-5xx answer (503 allowed), as JSON. */
function acceptable(a: Answer): boolean {
  return (a.status < 500 || a.status === 503) && a.json;
}

describe("fuzzing the gateway (fast-check)", () => {
  let mesh: TestMesh;
  let cases = 0;
  const failures: string[] = [];

  beforeAll(async () => {
    mesh = await startTestMesh(
      testConfig({ GLIMPSE_SOURCE_ALLOWLIST: "file:///nonexistent-glimpse-fuzz", GLIMPSE_TRAINER_COMMAND: "false", GLIMPSE_TRAINER_EXPORT_COMMAND: "false" }),
    );
  }, 120_000);
  afterAll(async () => {
    console.log(`[fuzz] ${cases} requests (seed ${SEED}, ${RUNS} runs per property); failures: ${failures.length}`);
    await mesh?.close();
  });

  const check = async (what: string, res: Promise<Response>): Promise<boolean> => {
    cases++;
    const a = await answer(await res);
    if (!acceptable(a)) failures.push(`${what} → ${a.status} ${a.body}`);
    return acceptable(a);
  };

  /** A server-streaming call over the Connect protocol: enveloped JSON in, envelopes out; the end-stream envelope must be JSON and its error a client one. */
  const streamCheck = async (what: string, url: string, payload: Buffer): Promise<boolean> => {
    cases++;
    const env = Buffer.alloc(5);
    env.writeUInt32BE(payload.length, 1);
    let verdict = "";
    try {
      const res = await fetch(url, { method: "POST", headers: { "content-type": "application/connect+json", ...AUTH }, body: Buffer.concat([env, payload]), signal: AbortSignal.timeout(20_000) });
      const body = Buffer.from(await res.arrayBuffer());
      if (res.status !== 200) verdict = res.status >= 500 && res.status !== 503 ? `HTTP ${res.status}` : "";
      else {
        let at = 0;
        let end: { error?: { code?: string } } | undefined;
        while (at + 5 <= body.length) {
          const len = body.readUInt32BE(at + 1);
          if (body[at]! & 0x02) end = JSON.parse(body.subarray(at + 5, at + 5 + len).toString("utf8")) as typeof end;
          at += 5 + len;
        }
        if (!end) verdict = "no end-stream message";
        else if (["internal", "unknown", "data_loss"].includes(end.error?.code ?? "")) verdict = `end-stream ${JSON.stringify(end)}`;
      }
    } catch (err) {
      verdict = `no answer: ${(err as Error).message}`;
    }
    if (verdict) failures.push(`${what} → ${verdict}`);
    return verdict === "";
  };

  for (const svc of SERVICES) {
    for (const method of svc.methods as DescMethod[]) {
      it(`Connect JSON: ${svc.name}/${method.name}`, async () => {
        const url = `${mesh.base}/${svc.typeName}/${method.name}`;
        if (method.methodKind === "server_streaming") {
          await fc.assert(
            fc.asyncProperty(fc.oneof(bodyFor(method.input).map((b) => Buffer.from(JSON.stringify(b) ?? "null")), brokenBody), async (bytes) =>
              streamCheck(`${method.name} ${bytes.toString("utf8").slice(0, 200)}`, url, bytes),
            ),
            { seed: SEED, numRuns: RUNS },
          );
          return;
        }
        await fc.assert(
          fc.asyncProperty(bodyFor(method.input), async (body) =>
            check(`${method.name} ${JSON.stringify(body)?.slice(0, 200)}`, fetch(url, { method: "POST", headers: { "content-type": "application/json", ...AUTH }, body: JSON.stringify(body) })),
          ),
          { seed: SEED, numRuns: RUNS },
        );
        await fc.assert(
          fc.asyncProperty(brokenBody, async (bytes) =>
            check(`${method.name} raw ${bytes.toString("hex").slice(0, 80)}`, fetch(url, { method: "POST", headers: { "content-type": "application/json", ...AUTH }, body: bytes })),
          ),
          { seed: SEED, numRuns: Math.ceil(RUNS / 2) },
        );
      }, 120_000);
    }
  }

  for (const route of REST_ROUTES) {
    it(`REST: ${route.method} ${route.path}`, async () => {
      const input = route.rpc.input;
      const names = input.fields.flatMap((f) => [f.name, f.jsonName]).concat(["split", "dataset_version", "top_k", "query"]);
      if (route.method === "GET") {
        const query = fc.dictionary(fc.oneof(fc.constantFrom(...names), fc.string({ maxLength: 8 })), fc.oneof(fc.string({ unit: "grapheme", maxLength: 40 }), fc.constantFrom("", "-1", "99999999999999999999", "x".repeat(5000))), { maxKeys: 5 });
        await fc.assert(
          fc.asyncProperty(query, async (q) =>
            check(`GET ${route.path}?${new URLSearchParams(q)}`, fetch(`${mesh.base}${route.path}?${new URLSearchParams(q)}`, { headers: AUTH })),
          ),
          { seed: SEED, numRuns: RUNS },
        );
      } else {
        await fc.assert(
          fc.asyncProperty(fc.oneof(bodyFor(input).map((b) => Buffer.from(JSON.stringify(b) ?? "null")), brokenBody), async (bytes) =>
            check(`POST ${route.path} ${bytes.toString("utf8").slice(0, 200)}`, fetch(`${mesh.base}${route.path}`, { method: "POST", headers: { "content-type": "application/json", ...AUTH }, body: bytes })),
          ),
          { seed: SEED, numRuns: RUNS },
        );
      }
    }, 120_000);
  }

  it("image uploads: random bytes, truncated and corrupt JPEG/PNG/WebP, huge declared dimensions", async () => {
    const sharp = (await import("sharp")).default;
    const jpeg = readFileSync(join(DEMO_IMAGES, readdirSync(DEMO_IMAGES).find((f) => f.endsWith(".jpg"))!));
    const png = await sharp(jpeg).png().toBuffer();
    const webp = await sharp(jpeg).webp().toBuffer();
    // a JPEG whose frame header declares 65500×65500 pixels (the decoder must refuse, not allocate)
    const huge = Buffer.from(jpeg);
    for (let i = 2; i < huge.length - 9; i++) {
      if (huge[i] === 0xff && (huge[i + 1] === 0xc0 || huge[i + 1] === 0xc2)) {
        huge.writeUInt16BE(65_500, i + 5);
        huge.writeUInt16BE(65_500, i + 7);
        break;
      }
    }
    const image = fc.oneof(
      fc.uint8Array({ maxLength: 4096 }).map((a) => Buffer.from(a)),
      fc.tuple(fc.constantFrom(jpeg, png, webp), fc.double({ min: 0, max: 1, noNaN: true })).map(([b, f]) => b.subarray(0, Math.floor(b.length * f))),
      fc.tuple(fc.constantFrom(jpeg, png, webp), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 20 })).map(([b, edits]) => {
        const c = Buffer.from(b);
        for (const [at, v] of edits) c[at % c.length] = v;
        return c;
      }),
      fc.constant(huge),
    );
    await fc.assert(
      fc.asyncProperty(image, fc.constantFrom("/inference/upload-image", "/inference/image-to-text"), fc.constantFrom("image/jpeg", "image/png", "image/webp"), async (bytes, path, type) =>
        check(`${path} ${type} ${bytes.length} bytes ${bytes.subarray(0, 16).toString("hex")}`, fetch(`${mesh.base}${path}`, { method: "POST", headers: { "content-type": type }, body: bytes })),
      ),
      { seed: SEED, numRuns: RUNS * 4 },
    );
    const refused = await answer(await fetch(`${mesh.base}/inference/upload-image`, { method: "POST", headers: { "content-type": "image/jpeg" }, body: huge }));
    expect(refused.status, refused.body).toBe(400);
    expect(refused.body).toMatch(/pixel|dimension|large/i);
  }, 300_000);

  it("the mesh still answers afterwards, and nothing above found a failure", async () => {
    const health = (await (await fetch(`${mesh.base}/health/detailed`)).json()) as { services: Record<string, { status: string }> };
    for (const s of Object.values(health.services)) expect(s.status).toBe("SERVING");
    const search = (await (await fetch(`${mesh.base}/demo/search?query=a%20dog%20in%20the%20snow&top_k=3`)).json()) as { results: unknown[] };
    expect(search.results).toHaveLength(3);
    expect(failures).toEqual([]);
    expect(cases).toBeGreaterThan(1_000);
  });
});
