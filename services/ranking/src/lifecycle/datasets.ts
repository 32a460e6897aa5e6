/** Dataset pointers in the object store: which version is latest, and which dataset a version is of. */
import type { ObjectStore } from "@glimpse/objectstore";
import { readLatest } from "@glimpse/layout/datasets";
import type { GalleryIndex } from "../index/gallery.js";
import { DEMO_DATASET } from "../seed.js";

export interface GalleryRef {
  dataset: string;
  version: string;
}

/** Both name the same dataset version (the demo gallery is often the serving one). */
export function sameGallery(a: GalleryRef | undefined, b: GalleryRef | undefined): boolean {
  return a !== undefined && b !== undefined && a.dataset === b.dataset && a.version === b.version;
}

/** The dataset version an index is of (undefined for the empty index of no gallery). */
export function galleryOf(index: GalleryIndex): GalleryRef | undefined {
  return index.data.dataset ? { dataset: index.data.dataset, version: index.data.datasetVersion } : undefined;
}

export async function latestOf(store: ObjectStore, dataset: string): Promise<GalleryRef | undefined> {
  const version = (await readLatest(store, dataset))?.pointer?.version;
  return typeof version === "string" ? { dataset, version } : undefined;
}

/** The configured dataset's latest version, else the demo dataset's. */
export async function latestGallery(store: ObjectStore, dataset: string): Promise<GalleryRef | undefined> {
  return (await latestOf(store, dataset)) ?? (await latestOf(store, DEMO_DATASET));
}

/** Finds which dataset a version belongs to (the configured one, the demo, or any other). */
export async function findDataset(store: ObjectStore, dataset: string, datasetVersion: string): Promise<string | undefined> {
  const names = [dataset, DEMO_DATASET];
  const page = await store.listPage("datasets/", { delimiter: "/" });
  for (const p of page.prefixes) {
    const n = p.slice("datasets/".length, -1);
    if (!names.includes(n)) names.push(n);
  }
  for (const n of names) if (await store.stat(`datasets/${n}/versions/${datasetVersion}/manifest.json`)) return n;
  return undefined;
}
