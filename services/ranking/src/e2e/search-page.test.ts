/**
 * End to end in a real browser: ranking, data and training services, the gateway, and
 * Debian's Chromium driven by playwright-core. Type a query, see images; upload a photo,
 * see captions. The screenshot is kept in .artifacts/search-page.png.
 */
import { existsSync, mkdirSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { startTestMesh, type TestMesh } from "@glimpse/gateway/testing";
import { testConfig } from "@glimpse/runtime/testing";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_DEMO_DIR } from "../seed.js";

// Browser globals, used inside functions that run in the page (no DOM lib in this project).
// eslint-disable-next-line @typescript-eslint/no-explicit-any
declare const document: any;
interface Img {
  complete: boolean;
  naturalWidth: number;
}

const CHROMIUM = process.env["GLIMPSE_CHROMIUM"] ?? "/usr/bin/chromium";
const ARTIFACTS = resolve(DEFAULT_DEMO_DIR, "..", ".artifacts");
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

// .ci/run installs Debian's Chromium (apt-get install chromium); without it this test fails, never skips.
describe("search page in headless Chromium", () => {
  const cfg = testConfig();
  let mesh: TestMesh;
  let browser: Browser;
  let base: string;

  beforeAll(async () => {
    mesh = await startTestMesh(cfg);
    base = mesh.base;
    if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install chromium (or set GLIMPSE_CHROMIUM)`);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
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
      await page.fill("[data-testid=query]", "a dog running through the grass");
      await page.press("[data-testid=query]", "Enter");
      await page.waitForSelector("[data-testid=hit]");
      const hits = await page.$$eval("[data-testid=hit]", (els) => els.length);
      expect(hits).toBe(12);
      await page.waitForFunction(() => ([...document.querySelectorAll("[data-testid=hit] img")] as Img[]).slice(0, 4).every((i) => i.complete && i.naturalWidth > 0));
      // the grid shows the API's hits in its rank order (cosine scores need not descend: the demo
      // model ranks by cosine plus a query-bank bias, proto ImageHit.score)
      const scores = await page.$$eval("[data-testid=score]", (els) => els.map((e) => e.textContent));
      const api = (await (await fetch(`${base}/demo/search?query=${encodeURIComponent("a dog running through the grass")}&top_k=12`)).json()) as { results: { score: number; rank: number }[] };
      expect(api.results.map((h) => h.rank)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
      expect(scores).toEqual(api.results.map((h) => h.score.toFixed(3)));
      expect(await page.textContent("[data-testid=model-version]")).toMatch(/model m-[0-9a-f]{16}/);
      expect(await page.textContent("[data-testid=dataset-version]")).toMatch(/dataset [0-9a-f]{16}/);

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
});
