import { describe, expect, it } from "vitest";
import { chooseGallery, type GalleryFacts } from "./choose-gallery.js";
import { SEARCH_PAGE } from "./search-page.js";

const DEMO = "1111111111111111";
const FULL = "2222222222222222";
const facts = (f: Partial<GalleryFacts>): GalleryFacts => ({ requested: null, servingVersion: "", demoVersion: "", collections: [], ...f });
const trip = { value: "collections/trip", searchable: true };
const busy = { value: "collections/busy", searchable: false };

describe("chooseGallery: which gallery the search page opens on", () => {
  it("the demo when it is what serves, or when nothing serves", () => {
    expect(chooseGallery(facts({ servingVersion: DEMO, demoVersion: DEMO }))).toEqual({ listServing: false, selected: "demo", unavailable: "" });
    expect(chooseGallery(facts({}))).toEqual({ listServing: false, selected: "demo", unavailable: "" });
    // collections are never opened on unasked
    expect(chooseGallery(facts({ servingVersion: DEMO, demoVersion: DEMO, collections: [trip] })).selected).toBe("demo");
  });

  it("the dataset gallery when one other than the demo serves (or the demo's version is unknown)", () => {
    expect(chooseGallery(facts({ servingVersion: FULL, demoVersion: DEMO }))).toEqual({ listServing: true, selected: "serving", unavailable: "" });
    expect(chooseGallery(facts({ servingVersion: FULL, demoVersion: "" }))).toEqual({ listServing: true, selected: "serving", unavailable: "" });
  });

  it("?gallery= wins when it names something searchable", () => {
    expect(chooseGallery(facts({ requested: "demo", servingVersion: FULL, demoVersion: DEMO })).selected).toBe("demo");
    expect(chooseGallery(facts({ requested: "collections/trip", servingVersion: FULL, demoVersion: DEMO, collections: [trip] })).selected).toBe("collections/trip");
    expect(chooseGallery(facts({ requested: "serving", servingVersion: FULL, demoVersion: DEMO })).selected).toBe("serving");
  });

  it("an old link's gallery=serving while the demo serves is the demo, with nothing to report", () => {
    expect(chooseGallery(facts({ requested: "serving", servingVersion: DEMO, demoVersion: DEMO }))).toEqual({ listServing: false, selected: "demo", unavailable: "" });
  });

  it("a collection still indexing, or an unknown name, falls back to what serves and says so", () => {
    expect(chooseGallery(facts({ requested: "collections/busy", servingVersion: FULL, demoVersion: DEMO, collections: [trip, busy] }))).toEqual({ listServing: true, selected: "serving", unavailable: "collections/busy" });
    expect(chooseGallery(facts({ requested: "collections/gone", servingVersion: DEMO, demoVersion: DEMO }))).toEqual({ listServing: false, selected: "demo", unavailable: "collections/gone" });
  });

  it("is inlined into the page as it is (no helper it would lack there)", () => {
    expect(SEARCH_PAGE).toContain(chooseGallery.toString());
    // and runs on its own, as the page runs it
    const standalone = new Function(`${chooseGallery.toString()}; return chooseGallery;`)() as typeof chooseGallery;
    expect(standalone(facts({ servingVersion: FULL, demoVersion: DEMO })).selected).toBe("serving");
  });
});
