/**
 * A collection version as an index source. Its photos, in photo_id order, are the rows,
 * embedded from their normalised copies (the dataset pipeline's 224×224 JPEGs); no captions,
 * no splits. Its index is the index of the dataset "collections/<id>", stored at
 * models/<m>/indexes/collections/<id>/<version>/, so the gallery machinery — shard workers,
 * index Jobs, the index store, the builders — computes and stores it unchanged.
 */
import { ObjectNotFoundError, type ObjectStore } from "@glimpse/objectstore";
import { collectionGallery, parseCollectionName, readCollectionVersion, type CollectionManifest } from "@glimpse/layout";
import type { GallerySource } from "../index/build.js";
import { indexStored } from "../index/store.js";

/** The dataset name a collection's indexes are stored under: "collections/<id>", its resource name too. */
export const collectionDataset = collectionGallery;
/** The collection a dataset name is of (undefined for a dataset's gallery). */
export const collectionOf = (dataset: string): string | undefined => parseCollectionName(dataset);

/** How far back a build or a replica looks for an indexed earlier version (each step reads a manifest). */
export const MAX_ANCESTORS = 16;

export interface CollectionSource extends GallerySource {
  collection: string;
  manifest: CollectionManifest;
}

export async function readCollectionSource(store: ObjectStore, id: string, version: string): Promise<CollectionSource> {
  const published = await readCollectionVersion(store, id, version);
  if (!published) throw new Error(`collection ${id} has no version ${version}`);
  const photos = published.manifest.photos;
  const ids = photos.map((p) => p.photo_id).sort();
  return {
    dataset: collectionDataset(id),
    datasetVersion: published.version,
    images: Object.fromEntries(photos.map((p) => [p.photo_id, p.image])),
    ids,
    imageCaptions: ids.map(() => []),
    imageSplits: new Uint8Array(ids.length),
    collection: id,
    manifest: published.manifest,
  };
}

/** previous_version of each version read so far: versions are immutable, so it never changes. */
const previous = new Map<string, string>();

/** The version `version` was synced from ("" for a first version, or when its manifest is gone). */
export async function previousVersion(store: ObjectStore, id: string, version: string): Promise<string> {
  const key = `${id}/${version}`;
  let p = previous.get(key);
  if (p === undefined) {
    try {
      p = (await readCollectionVersion(store, id, version))?.manifest.previous_version ?? "";
    } catch (err) {
      if (!(err instanceof ObjectNotFoundError)) throw err;
      return "";
    }
    if (previous.size >= 10_000) previous.clear();
    previous.set(key, p);
  }
  return p;
}

/** The nearest earlier version (by previous_version) with a stored index for the model, within MAX_ANCESTORS. */
export async function nearestIndexedAncestor(store: ObjectStore, modelVersion: string, id: string, version: string): Promise<string | undefined> {
  let v = version;
  for (let hop = 0; hop < MAX_ANCESTORS; hop++) {
    v = await previousVersion(store, id, v);
    if (!v) return undefined;
    if (await indexStored(store, modelVersion, collectionDataset(id), v)) return v;
  }
  return undefined;
}
