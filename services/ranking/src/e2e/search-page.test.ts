/**
 * End to end in a real browser: ranking, data and training services, the gateway, and
 * Debian's Chromium driven by playwright-core. The page opens on the demo gallery (the only
 * one serving here); type a query, see images in rank order with the score that order follows;
 * "more like this" on one; upload a photo, see captions. The screenshot is kept in
 * .artifacts/search-page.png. Collections: collections-page.test.ts.
 */
import { mkdirSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { launchChromium, startTestMesh, type TestMesh } from "@glimpse/gateway/testing";
import { testConfig } from "@glimpse/runtime/testing";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_DEMO_DIR } from "../seed.js";

// Browser globals, used inside functions that run in the page (no DOM lib in this project).
// eslint-disable-next-line @typescript-eslint/no-explicit-any
declare const document: any;
interface Img {
  complete: boolean;
  naturalWidth: number;
}

interface Hit {
  image_id: string;
  score: number;
  rank: number;
  rank_score?: number;
}
const nonIncreasing = (xs: number[]) => xs.every((x, i) => i === 0 || x <= xs[i - 1]!);

const ARTIFACTS = resolve(DEFAULT_DEMO_DIR, "..", ".artifacts");

// .ci/run installs Debian's Chromium (apt-get install chromium); without it this test fails, never skips.
describe("search page in headless Chromium", () => {
  const cfg = testConfig();
  let mesh: TestMesh;
  let browser: Browser;
  let base: string;

  beforeAll(async () => {
    mesh = await startTestMesh(cfg);
    base = mesh.base;
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await mesh?.close();
  });

  it("answers the README's curl: five demo images with scores", async () => {
    const res = await fetch(`${base}/demo/search?query=a%20dog%20playing&top_k=5`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { results: { image_id: string; score: number; image_url: string }[]; model_version: string; dataset_version: string };
    expect(body.results).toHaveLength(5);
    for (const h of body.results) expect(typeof h.score).toBe("number");
    expect(body.model_version).toMatch(/^m-/);
    const img = await fetch(`${base}${body.results[0]!.image_url}`);
    expect(img.status).toBe(200);
    expect(img.headers.get("content-type")).toBe("image/jpeg");
    // The demo pack's files, straight from the gateway (no Data service needed).
    expect((await fetch(`${base}/demo/images/${body.results[0]!.image_id}`)).status).toBe(200);
    expect((await fetch(`${base}/demo/images/..%2Fcaptions.json`)).status).toBe(404);
    expect((await fetch(`${base}/demo/images/nope`)).status).toBe(404);
  });

  it("type a query → an image grid with scores and captions; upload a photo → captions", async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    try {
      await page.goto(`${base}/`);
      await page.waitForFunction(() => document.querySelector("[data-testid=state]")?.textContent === "serving");
      await page.waitForSelector("[data-testid=gallery][data-ready=true]");
      // only the demo serves here: it is what the page opens on, and the only gallery listed
      expect(await page.inputValue("[data-testid=gallery]")).toBe("demo");
      expect(await page.$$eval("[data-testid=gallery] option", (els) => els.length)).toBe(1);
      await page.fill("[data-testid=query]", "a dog running through the grass");
      await page.press("[data-testid=query]", "Enter");
      await page.waitForSelector("[data-testid=hit]");
      const hits = await page.$$eval("[data-testid=hit]", (els) => els.length);
      expect(hits).toBe(12);
      await page.waitForFunction(() => ([...document.querySelectorAll("[data-testid=hit] img")] as Img[]).slice(0, 4).every((i) => i.complete && i.naturalWidth > 0));
      // the grid shows the API's hits in its rank order, each with the score that order follows:
      // rank_score (cosine plus the query-bank bias, proto ImageHit.rank_score) when Ranking sends
      // one, else score (the cosine, which need not descend)
      const scores = await page.$$eval("[data-testid=score]", (els) => els.map((e) => e.textContent));
      const api = (await (await fetch(`${base}/demo/search?query=${encodeURIComponent("a dog running through the grass")}&top_k=12`)).json()) as { results: Hit[] };
      expect(api.results.map((h) => h.rank)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
      expect(await page.$$eval("[data-testid=hit]", (els) => els.map((e) => e.getAttribute("data-image-id")))).toEqual(api.results.map((h) => h.image_id));
      expect(scores).toEqual(api.results.map((h) => (h.rank_score || h.score).toFixed(3)));
      if (api.results.every((h) => h.rank_score !== undefined)) expect(nonIncreasing(scores.map(Number))).toBe(true);
      expect(await page.textContent("[data-testid=model-version]")).toMatch(/model m-[0-9a-f]{16}/);
      expect(await page.textContent("[data-testid=dataset-version]")).toMatch(/dataset [0-9a-f]{16}/);

      // "more like this" on a gallery hit: the images like it, without it
      const first = api.results[0]!.image_id;
      await page.click("[data-testid=hit] [data-testid=more-like-this]");
      await page.waitForFunction(() => /^12 images like /.test(String(document.querySelector("[data-testid=meta]")?.textContent ?? "")));
      const like = await page.$$eval("[data-testid=hit]", (els) => els.map((e) => String(e.getAttribute("data-image-id"))));
      expect(like).toHaveLength(12);
      expect(like).not.toContain(first);

      const photo = join(DEFAULT_DEMO_DIR, "images", readdirSync(join(DEFAULT_DEMO_DIR, "images")).sort()[7]!);
      await page.setInputFiles("[data-testid=upload]", photo);
      await page.waitForSelector("[data-testid=caption]");
      expect(await page.$$eval("[data-testid=caption]", (els) => els.length)).toBe(5);
      await page.waitForFunction(() => ([...document.querySelectorAll("#similar img")] as Img[]).every((i) => i.complete));
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: join(ARTIFACTS, "search-page.png"), fullPage: true });

      // A bad upload shows the service's error, and the page keeps working.
      await page.setInputFiles("[data-testid=upload]", { name: "notes.txt", mimeType: "image/jpeg", buffer: Buffer.from("not an image") });
      await page.waitForFunction(() => String(document.getElementById("upload-error")?.textContent ?? "").length > 0);
      expect(await page.textContent("#upload-error")).toMatch(/image/i);
    } finally {
      await page.close();
    }
  });

  it("shows rank_score, the score the order follows, when Ranking sends one (never a lower #1 than #2)", async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    try {
      await page.goto(`${base}/?gallery=demo`);
      await page.waitForSelector("[data-testid=gallery][data-ready=true]");
      // the API's answer with rank_score filled in, as Ranking sends it with a query bank: it
      // descends where the cosine does not
      const bias = (i: number) => 0.5 - i * 0.03;
      await page.route("**/demo/search?*", async (route) => {
        const res = await route.fetch();
        const body = (await res.json()) as { results: Hit[] };
        body.results = body.results.map((h, i) => ({ ...h, score: 0.1 + (i % 3) * 0.05, rank_score: bias(i) }));
        await route.fulfill({ response: res, json: body });
      });
      await page.fill("[data-testid=query]", "a dog");
      await page.press("[data-testid=query]", "Enter");
      await page.waitForFunction(() => document.querySelectorAll("[data-testid=hit]").length === 12);
      const scores = await page.$$eval("[data-testid=score]", (els) => els.map((e) => e.textContent));
      expect(scores).toEqual(Array.from({ length: 12 }, (_, i) => bias(i).toFixed(3)));
      expect(nonIncreasing(scores.map(Number))).toBe(true);
    } finally {
      await page.close();
    }
  });
});
