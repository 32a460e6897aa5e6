/**
 * What an index build embeds. A dataset version's gallery embeds every image and caption; a
 * collection version embeds only the photos an earlier version's index of the same model does
 * not already hold (collections/reuse.ts). The shard workers cut `embed` into chunks and the
 * assembler puts the embedded and the reused rows back in `src` order.
 */
import type { ObjectStore } from "@glimpse/objectstore";
import { planCollectionBuild } from "../collections/reuse.js";
import { collectionOf } from "../collections/source.js";
import { readGallerySource, type GallerySource } from "./build.js";

/** Rows of the index taken from an earlier version's stored index instead of embedded. */
export interface ReusedRows {
  /** The version whose index they come from. */
  fromVersion: string;
  /** Their rows in `src`, ascending. */
  rows: Int32Array;
  /** Their image embeddings, [rows × dim], in that order. */
  emb: Float32Array;
  dim: number;
}

export interface BuildPlan {
  /** Every row of the index. */
  src: GallerySource;
  /** The rows this build embeds, as a source of their own (the chunks cut this one); `src` itself when nothing is reused. */
  embed: GallerySource;
  reused: ReusedRows | undefined;
  /** A collection's index: searched exactly, with its near duplicates in the document. */
  collection: boolean;
}

export async function planBuild(store: ObjectStore, modelVersion: string, dataset: string, datasetVersion: string): Promise<BuildPlan> {
  const id = collectionOf(dataset);
  if (id) return planCollectionBuild(store, modelVersion, id, datasetVersion);
  const src = await readGallerySource(store, dataset, datasetVersion);
  return { src, embed: src, reused: undefined, collection: false };
}
