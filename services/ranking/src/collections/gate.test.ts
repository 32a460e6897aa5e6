/** The model-swap decision for collections (collections/gate.ts). */
import { describe, expect, it } from "vitest";
import { collectionBuildsFor, collectionsBlocking, type CollectionCoverage } from "./gate.js";

const A = "m-000000000000000a";
const B = "m-000000000000000b";
const coverage = (rows: [id: string, latest: string, models: string[]][]): CollectionCoverage[] => rows.map(([id, latest, m]) => ({ id, latest, indexedFor: new Set(m) }));

describe("switching models with collections", () => {
  it("a new model waits while a collection the serving model answers has no index for it", () => {
    const c = coverage([["holiday", "1111111111111111", [A]], ["work", "2222222222222222", [A, B]]]);
    expect(collectionsBlocking(B, A, c)).toEqual(["holiday"]);
    // ...and its builds are asked for: every collection it has no index of
    expect(collectionBuildsFor(B, c)).toEqual([{ model: B, dataset: "collections/holiday", datasetVersion: "1111111111111111" }]);
  });

  it("once every answering collection has some version indexed for it (not necessarily the latest), it may serve", () => {
    const c = coverage([["holiday", "3333333333333333", [A, B]], ["work", "2222222222222222", [A, B]]]);
    expect(collectionsBlocking(B, A, c)).toEqual([]);
  });

  it("a collection no model answers yet holds nothing up; it is built for the new model too", () => {
    const c = coverage([["new", "4444444444444444", []], ["empty", "", []]]);
    expect(collectionsBlocking(B, A, c)).toEqual([]);
    expect(collectionBuildsFor(B, c)).toEqual([{ model: B, dataset: "collections/new", datasetVersion: "4444444444444444" }]);
  });

  it("the serving model itself, or no model to compare with, is never held up", () => {
    const c = coverage([["holiday", "1111111111111111", [A]]]);
    expect(collectionsBlocking(A, A, c)).toEqual([]);
    expect(collectionsBlocking(B, undefined, c)).toEqual([]);
  });
});
