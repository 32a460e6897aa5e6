/**
 * The search page with collections (#23), end to end in Debian's Chromium driven by
 * playwright-core: a real Ranking (seeded from the demo pack), a real Data service and a real
 * gateway on one filesystem store; a folder collection created through the REST API and waited
 * for until search serves it. Then in the browser: the picker lists it, a text search shows its
 * thumbnails in score order, "more like this" leaves the photo out, choosing or dropping one of
 * its photos finds that photo first; the page opens on the demo while only the demo serves, and
 * on the dataset gallery once one serves. The screenshot is kept in .artifacts/collections-page.png.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { launchChromium, startTestMesh, type TestMesh } from "@glimpse/gateway/testing";
import { TEST_WRITE_KEY, testConfig } from "@glimpse/runtime/testing";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_DEMO_DIR } from "../seed.js";
import { publishDemoImages, until } from "../testing/harness.js";

// Browser globals, used inside functions that run in the page (no DOM lib in this project).
// eslint-disable-next-line @typescript-eslint/no-explicit-any
declare const document: any;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
declare const DataTransfer: any;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
declare const File: any;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
declare const location: any;
interface Img {
  complete: boolean;
  naturalWidth: number;
}
interface Opt {
  value: string;
  textContent: string;
  disabled: boolean;
}

const ARTIFACTS = resolve(DEFAULT_DEMO_DIR, "..", ".artifacts");
const DEMO_IMAGES = join(DEFAULT_DEMO_DIR, "images");
const picked = readdirSync(DEMO_IMAGES).filter((f) => f.endsWith(".jpg")).sort().slice(40, 52);

interface PhotoHit {
  photo_id: string;
  path: string;
  score?: number;
}

// .ci/run installs Debian's Chromium (apt-get install chromium); without it this test fails, never skips.
describe("search page with collections, in headless Chromium", () => {
  let root: string;
  let mesh: TestMesh;
  let browser: Browser;
  let base: string;
  let version = "";

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), "glimpse-page-collections-"));
    mkdirSync(join(root, "allowed", "trip"), { recursive: true });
    for (const f of picked) copyFileSync(join(DEMO_IMAGES, f), join(root, "allowed", "trip", f));
    // one store for all (the data dir's filesystem store); Data asks Ranking what search serves
    mesh = await startTestMesh(testConfig({ GLIMPSE_SOURCE_ALLOWLIST: pathToFileURL(join(root, "allowed")).href, GLIMPSE_COLLECTION_RELIST_MS: "60000" }), { rankingPollMs: 200 });
    base = `http://127.0.0.1:${mesh.gateway.port}`;

    const created = await fetch(`${base}/v1/collections?collection_id=trip`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${TEST_WRITE_KEY}` },
      body: JSON.stringify({ display_name: "Trip photos", source: { folder: { path: join(root, "allowed", "trip") } } }),
    });
    expect(created.status, await created.clone().text()).toBe(200);
    // the sync, then Ranking's index of the new version: search serves it once serving_version is set
    version = await until("the collection to serve", async () => {
      const c = ((await (await fetch(`${base}/v1/collections/trip`)).json()) as { collection: { version?: string; serving_version?: string } }).collection;
      return c.version && c.serving_version === c.version ? c.version : undefined;
    }, 90_000);
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await mesh?.close();
  });

  /** A page opened at `path`, once it has chosen its gallery. */
  async function open(path = "/"): Promise<Page> {
    const page = await browser.newPage({ viewport: { width: 1280, height: 2400 } });
    await page.goto(`${base}${path}`);
    await page.waitForSelector("[data-testid=gallery][data-ready=true]");
    return page;
  }
  const hitIds = (page: Page) => page.$$eval("[data-testid=hit]", (els) => els.map((e) => String(e.getAttribute("data-photo-id"))));
  const scores = (page: Page) => page.$$eval("[data-testid=score]", (els) => els.map((e) => Number(e.textContent)));
  const nonIncreasing = (xs: number[]) => xs.every((x, i) => i === 0 || x <= xs[i - 1]!);
  /** Waits until a new answer replaced the grid (the meta line says what it was). */
  async function answered(page: Page, meta: RegExp): Promise<void> {
    await page.waitForFunction((src) => new RegExp(src).test(String(document.querySelector("[data-testid=meta]")?.textContent ?? "")), meta.source);
  }

  it("lists the collection in the picker, and opens on the demo while only the demo serves", async () => {
    const page = await open();
    try {
      expect(await page.inputValue("[data-testid=gallery]")).toBe("demo");
      const opts = (await page.$$eval("[data-testid=gallery] option", (els) => (els as unknown as Opt[]).map((o) => ({ value: o.value, text: o.textContent, disabled: o.disabled })))) as { value: string; text: string; disabled: boolean }[];
      expect(opts.map((o) => o.value)).toEqual(["demo", "collections/trip"]);
      expect(opts[1]).toEqual({ value: "collections/trip", text: "Trip photos · 12 photos", disabled: false });
      // the picker and the search field are labelled
      expect(await page.$$eval("label[for=gallery], label[for=query]", (els) => els.length)).toBe(2);
      expect(new URL(page.url()).searchParams.get("gallery")).toBe("demo");
    } finally {
      await page.close();
    }
  });

  it("shows a collection still indexing disabled, and a link to it falls back to what serves", async () => {
    const page = await browser.newPage();
    try {
      // one more collection, as a Data service would list it while its first index is computed
      await page.route("**/v1/collections?*", async (route) => {
        const res = await route.fetch();
        const body = (await res.json()) as { collections: unknown[] };
        body.collections.push({ name: "collections/busy", display_name: "Busy", state: "STATE_SYNCING", counts: { indexed: "3" } });
        await route.fulfill({ response: res, json: body });
      });
      await page.goto(`${base}/?gallery=collections/busy&q=a%20dog`);
      await page.waitForSelector("[data-testid=gallery][data-ready=true]");
      const busy = await page.$eval("[data-testid=gallery] option[value='collections/busy']", (o) => ({ text: (o as unknown as Opt).textContent, disabled: (o as unknown as Opt).disabled }));
      expect(busy).toEqual({ text: "Busy · 3 photos (indexing…)", disabled: true });
      expect(await page.inputValue("[data-testid=gallery]")).toBe("demo");
      expect(await page.textContent("#search-error")).toMatch(/Busy cannot be searched yet \(still indexing\)/);
    } finally {
      await page.close();
    }
  });

  it("a text search on the collection shows its thumbnails, paths, dates and scores in order", async () => {
    const requested: string[] = [];
    const page = await browser.newPage({ viewport: { width: 1280, height: 2400 } });
    page.on("request", (r) => requested.push(r.url()));
    await page.goto(`${base}/`);
    await page.waitForSelector("[data-testid=gallery][data-ready=true]");
    try {
      await page.selectOption("[data-testid=gallery]", "collections/trip");
      // a collection has no captions: its photo section is the grid itself
      expect(await page.isHidden("[data-testid=photo-section]")).toBe(true);
      await page.fill("[data-testid=query]", "a dog running on the grass");
      await page.press("[data-testid=query]", "Enter");
      await answered(page, /^12 photos for/);
      await page.waitForFunction(() => ([...document.querySelectorAll("[data-testid=hit] img")] as Img[]).every((i) => i.complete));
      const loaded = await page.$$eval("[data-testid=hit] img", (els) => (els as unknown as Img[]).map((i) => i.naturalWidth));
      expect(loaded).toHaveLength(12);
      for (const w of loaded) expect(w).toBeGreaterThan(0);
      expect(await page.isHidden("[data-testid=query-photo]")).toBe(true);
      const shown = await scores(page);
      expect(nonIncreasing(shown), shown.join(" ")).toBe(true);
      const api = (await (await fetch(`${base}/v1/collections/trip:search`, { method: "POST", body: JSON.stringify({ text: "a dog running on the grass", top_k: 12 }) })).json()) as { results: PhotoHit[] };
      expect(await hitIds(page)).toEqual(api.results.map((h) => h.photo_id));
      expect(shown).toEqual(api.results.map((h) => Number((h.score ?? 0).toFixed(3))));
      const paths = await page.$$eval("[data-testid=hit-path]", (els) => els.map((e) => e.textContent));
      expect([...paths].sort()).toEqual([...picked].sort());
      for (const t of await page.$$eval("[data-testid=hit-taken]", (els) => els.map((e) => e.textContent))) expect(t).toMatch(/^\d{4}-\d{2}-\d{2}$/);
      expect(await page.textContent("[data-testid=dataset-version]")).toBe(`collection ${version}`);
      expect(await page.textContent("[data-testid=model-version]")).toMatch(/^model m-[0-9a-f]{16}$/);
      const url = new URL(page.url());
      expect([url.searchParams.get("gallery"), url.searchParams.get("q")]).toEqual(["collections/trip", "a dog running on the grass"]);
      // same-origin only: the page, its REST calls and the thumbnails (no third-party requests)
      expect(requested.filter((u) => !u.startsWith(`${base}/`))).toEqual([]);
      expect(requested.filter((u) => u.includes("/thumbnail"))).toHaveLength(12);
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: join(ARTIFACTS, "collections-page.png"), fullPage: true });

      // the shared URL opens on the same search
      const again = await open(`/${url.search}`);
      try {
        expect(await again.inputValue("[data-testid=gallery]")).toBe("collections/trip");
        await answered(again, /^12 photos for/);
        expect(await hitIds(again)).toEqual(api.results.map((h) => h.photo_id));
      } finally {
        await again.close();
      }
    } finally {
      await page.close();
    }
  });

  it("“more like this” on a hit shows the photos like it, without it, from the keyboard", async () => {
    const page = await open("/?gallery=collections/trip&q=children%20playing");
    try {
      await answered(page, /^12 photos for/);
      const first = (await hitIds(page))[0]!;
      // the first hit's button, pressed from the keyboard
      await page.focus("[data-testid=hit] [data-testid=more-like-this]");
      await page.keyboard.press("Enter");
      await answered(page, /^11 photos like/);
      const ids = await hitIds(page);
      expect(ids).toHaveLength(11);
      expect(ids).not.toContain(first);
      expect(nonIncreasing(await scores(page))).toBe(true);
      expect(new URL(page.url()).searchParams.get("like")).toBe(first);
      await page.waitForFunction(() => ([...document.querySelectorAll("[data-testid=hit] img")] as Img[]).every((i) => i.complete && i.naturalWidth > 0));
    } finally {
      await page.close();
    }
  });

  it("choosing or dropping one of its photos searches by it, and finds that photo first", async () => {
    const page = await open("/?gallery=collections/trip");
    try {
      await page.setInputFiles("[data-testid=upload]", join(root, "allowed", "trip", picked[3]!));
      await answered(page, new RegExp(`^12 photos like ${picked[3]!.replace(/\./g, "\\.")}`));
      expect(await page.textContent("[data-testid=hit] [data-testid=hit-path]")).toBe(picked[3]);
      expect(nonIncreasing(await scores(page))).toBe(true);
      expect(await page.isVisible("[data-testid=query-photo]")).toBe(true);

      // a drop anywhere on the page (a DataTransfer with the file, as the browser makes one)
      const bytes = readFileSync(join(root, "allowed", "trip", picked[7]!)).toString("base64");
      const dt = await page.evaluateHandle(({ b64, name }) => {
        const bin = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const d = new DataTransfer();
        d.items.add(new File([bin], name, { type: "image/jpeg" }));
        return d;
      }, { b64: bytes, name: picked[7]! });
      await page.dispatchEvent("[data-testid=results]", "dragenter", { dataTransfer: dt });
      expect(await page.isVisible("[data-testid=drop-overlay]")).toBe(true);
      await page.dispatchEvent("[data-testid=results]", "drop", { dataTransfer: dt });
      await answered(page, new RegExp(`^12 photos like ${picked[7]!.replace(/\./g, "\\.")}`));
      expect(await page.textContent("[data-testid=hit] [data-testid=hit-path]")).toBe(picked[7]);
      expect(await page.isVisible("[data-testid=drop-overlay]")).toBe(false);
    } finally {
      await page.close();
    }
  });

  it("opens on the dataset gallery once one other than the demo serves; ?gallery=demo still wins", { timeout: 180_000 }, async () => {
    const v = await publishDemoImages(mesh.ranking.store, "flickr8k", 20);
    // Ranking sees the new latest version, computes its index and moves to it
    await until("the dataset gallery to serve", async () => {
      const st = (await (await fetch(`${base}/model/status`)).json()) as { index?: { dataset_version?: string } };
      return st.index?.dataset_version === v ? true : undefined;
    }, 150_000);
    const page = await open();
    try {
      expect(await page.inputValue("[data-testid=gallery]")).toBe("serving");
      expect(await page.textContent("[data-testid=gallery] option[value=serving]")).toBe("Serving gallery (20 images)");
      expect(await page.textContent("[data-testid=dataset-version]")).toBe(`dataset ${v}`);
      await page.fill("[data-testid=query]", "a dog");
      await page.press("[data-testid=query]", "Enter");
      await answered(page, /^12 images for/);
      const urls = await page.$$eval("[data-testid=hit] img", (els) => els.map((e) => String(e.getAttribute("src"))));
      for (const u of urls) expect(u).toContain(`/flickr8k/${v}/`);
      // the collection is still there, and still searchable
      expect(await page.$$eval("[data-testid=gallery] option", (els) => els.map((o) => (o as unknown as Opt).value))).toEqual(["demo", "serving", "collections/trip"]);
    } finally {
      await page.close();
    }
    const demo = await open("/?gallery=demo");
    try {
      expect(await demo.inputValue("[data-testid=gallery]")).toBe("demo");
      expect(await demo.evaluate(() => String(location.search))).toBe("?gallery=demo");
    } finally {
      await demo.close();
    }
  });
});
