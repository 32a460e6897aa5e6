/**
 * Model swaps and collections. A search embeds its query with the serving model and searches a
 * collection index of that same model, so a model can only take over once the collections have
 * indexes for it. The lifecycle asks these two questions before a switch (lifecycle.ts).
 */
import type { IndexPair } from "../lifecycle/index-job.js";
import { collectionDataset } from "./source.js";

/** Which of the models asked about have a stored index of some version of a collection. */
export interface CollectionCoverage {
  id: string;
  /** Its latest published version ("" before the first). */
  latest: string;
  indexedFor: ReadonlySet<string>;
}

/**
 * The collections that keep `candidate` from serving instead of `reference` — the serving model,
 * or for a replica that serves nothing yet the previous production (what the other replicas
 * still serve): those `reference` has an index of and `candidate` has none of. So a switch never
 * takes an answering collection away, and a collection no model answers yet (its first sync is
 * being embedded) holds nothing up.
 */
export function collectionsBlocking(candidate: string, reference: string | undefined, coverage: CollectionCoverage[]): string[] {
  if (!reference || candidate === reference) return [];
  return coverage.filter((c) => c.indexedFor.has(reference) && !c.indexedFor.has(candidate)).map((c) => c.id);
}

/** The index builds a model about to serve needs: the latest version of each collection it has no index of. */
export function collectionBuildsFor(candidate: string, coverage: CollectionCoverage[]): IndexPair[] {
  return coverage.filter((c) => c.latest !== "" && !c.indexedFor.has(candidate)).map((c) => ({ model: candidate, dataset: collectionDataset(c.id), datasetVersion: c.latest }));
}
