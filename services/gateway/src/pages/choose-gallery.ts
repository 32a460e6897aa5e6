/**
 * Which gallery the search page opens on. A pure function, so it is unit-tested here and runs
 * in the browser unchanged: search-page.ts inlines its source (`chooseGallery.toString()`).
 * It must therefore stay self-contained — no imports, no helpers outside its body, and no
 * named inner functions (a bundler's keep-names helper would not exist in the page).
 *
 * The page's gallery values: "demo" (the demo pack's gallery, /demo/search), "serving" (the
 * dataset gallery Ranking serves, when that is not the demo) and "collections/<id>".
 */

/** What the page knows when it opens. */
export interface GalleryFacts {
  /** `?gallery=` from the URL, or null. */
  requested: string | null;
  /** The dataset version Ranking's gallery index serves (/model/status index.dataset_version); "" when none. */
  servingVersion: string;
  /** The demo gallery's dataset version (a /demo/search answer's dataset_version); "" when unknown. */
  demoVersion: string;
  /** The collections listed ("collections/<id>"); searchable once search serves a version of it. */
  collections: { value: string; searchable: boolean }[];
}

export interface GalleryChoice {
  /** List a "serving" option: a dataset gallery other than the demo serves. */
  listServing: boolean;
  /** The value to select. */
  selected: string;
  /** The requested gallery when it cannot be selected now (unknown, or a collection still indexing); else "". */
  unavailable: string;
}

/**
 * A `?gallery=` that names something searchable wins. Otherwise the page opens on what serves:
 * the dataset gallery when one other than the demo serves, else the demo. ("serving" in an old
 * link while the demo is what serves is the demo: the same gallery.)
 */
export function chooseGallery(f: GalleryFacts): GalleryChoice {
  const listServing = f.servingVersion !== "" && f.servingVersion !== f.demoVersion;
  const fallback = listServing ? "serving" : "demo";
  const req = f.requested ?? "";
  const searchable = ["demo"].concat(listServing ? ["serving"] : [], f.collections.filter((c) => c.searchable).map((c) => c.value));
  if (req === "" || searchable.indexOf(req) >= 0) return { listServing, selected: req || fallback, unavailable: "" };
  if (req === "serving") return { listServing, selected: fallback, unavailable: "" };
  return { listServing, selected: fallback, unavailable: req };
}
