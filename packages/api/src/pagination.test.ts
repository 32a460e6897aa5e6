import { describe, expect, it } from "vitest";
import { ConnectError } from "@connectrpc/connect";
import { BadRequestSchema } from "./gen/google/rpc/error_details_pb.js";
import * as data from "./gen/glimpse/data/v1/data_service_pb.js";
import * as training from "./gen/glimpse/training/v1/training_service_pb.js";
import { encodePageToken, pageOfFixed, pageOfLive, pageSizeOf, type ListRequest } from "./pagination.js";

const RUNS = training.ListTrainingRunsRequestSchema; // 0 means 20; above 100 reads as 100
const req = (pageSize: number, pageToken = ""): ListRequest => ({ pageSize, pageToken });

function violation(fn: () => unknown): [string, string] | undefined {
  try {
    fn();
  } catch (err) {
    const v = ConnectError.from(err).findDetails(BadRequestSchema)[0]?.fieldViolations[0];
    return v && [v.field, v.reason];
  }
  return undefined;
}

/** Every entry, page by page, as a client walks a listing. */
function walk(list: (r: ListRequest) => { items: string[]; nextPageToken: string }, pageSize: number): string[][] {
  const pages: string[][] = [];
  let token = "";
  do {
    const page = list(req(pageSize, token));
    pages.push(page.items);
    token = page.nextPageToken;
  } while (token && pages.length < 1000);
  return pages;
}

describe("page sizes come from the proto's page_size option", () => {
  it("0 asks for the default, a size above the max reads as the max (clamped, not refused)", () => {
    expect([0, 1, 100, 101, 2 ** 31 - 1].map((n) => pageSizeOf(RUNS, n))).toEqual([20, 1, 100, 100, 100]);
    expect([0, 1000, 5000].map((n) => pageSizeOf(data.ListPhotosRequestSchema, n))).toEqual([100, 1000, 1000]);
  });

  it("an oversized page_size still lists everything, in pages of the max", () => {
    const ids = Array.from({ length: 250 }, (_, i) => `r${String(i).padStart(4, "0")}`);
    const pages = walk((r) => pageOfLive(ids, r, RUNS, "ListTrainingRuns", (id) => id, "ascending"), 10_000);
    expect(pages.map((p) => p.length)).toEqual([100, 100, 50]);
    expect(pages.flat()).toEqual(ids);
  });
});

describe("a live listing pages after the last key it returned", () => {
  const ids = (n: number) => Array.from({ length: n }, (_, i) => `r${String(i).padStart(3, "0")}`).reverse(); // newest first

  it("an entry added before the cursor or removed behind it neither repeats nor skips another", () => {
    let all = ids(9);
    const list = (r: ListRequest) => pageOfLive(all, r, RUNS, "ListTrainingRuns", (id) => id, "descending");
    const first = list(req(3));
    expect(first.items).toEqual(["r008", "r007", "r006"]);
    all = ["r009", ...all.filter((id) => id !== "r006" && id !== "r004")]; // one run started, two deleted (one of them the cursor)
    const second = list(req(3, first.nextPageToken));
    expect(second.items).toEqual(["r005", "r003", "r002"]);
    const third = list(req(3, second.nextPageToken));
    expect(third).toEqual({ items: ["r001", "r000"], nextPageToken: "" });
  });

  it("the last page has no next token; an empty listing is one empty page", () => {
    expect(walk((r) => pageOfLive(ids(6), r, RUNS, "L", (id) => id, "descending"), 3)).toEqual([["r005", "r004", "r003"], ["r002", "r001", "r000"]]);
    expect(pageOfLive([], req(0), RUNS, "L", (id: string) => id, "descending")).toEqual({ items: [], nextPageToken: "" });
  });
});

describe("page tokens are opaque and bound to their listing", () => {
  const photos = Array.from({ length: 7 }, (_, i) => `p${i}`);
  const fixed = (listing: string) => (r: ListRequest) => pageOfFixed(photos, r, data.ListPhotosRequestSchema, listing);

  it("a fixed listing (a version) pages by offset", () => {
    expect(walk(fixed("ListPhotos/holiday/v1/photos"), 3)).toEqual([["p0", "p1", "p2"], ["p3", "p4", "p5"], ["p6"]]);
  });

  it("another listing's token, a live listing's token on a fixed one, or a made-up one is INVALID_ARGUMENT on page_token", () => {
    const next = fixed("ListPhotos/holiday/v1/photos")(req(3)).nextPageToken;
    expect(next).toMatch(/^[A-Za-z0-9_-]+$/); // base64url: safe in a query string
    const bad: [string, string] = ["page_token", "BAD_PAGE_TOKEN"];
    expect(violation(() => fixed("ListPhotos/holiday/v2/photos")(req(3, next)))).toEqual(bad); // a sync published v2
    expect(violation(() => fixed("ListPhotos/holiday/v1/skipped")(req(3, next)))).toEqual(bad);
    expect(violation(() => pageOfLive(photos, req(3, next), RUNS, "ListPhotos/holiday/v1/photos", (p) => p, "ascending"))).toEqual(bad);
    const cursor = encodePageToken("ListPhotos/holiday/v1/photos", { after: "p2" });
    expect(violation(() => fixed("ListPhotos/holiday/v1/photos")(req(3, cursor)))).toEqual(bad);
    for (const junk of ["nope", "bm9wZQ", "%%%", Buffer.from('{"l":"ListPhotos/holiday/v1/photos","o":-3}').toString("base64url")]) {
      expect(violation(() => fixed("ListPhotos/holiday/v1/photos")(req(3, junk))), junk).toEqual(bad);
    }
  });
});
