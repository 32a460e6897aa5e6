import type { ObjectStore } from "@glimpse/objectstore";
import { latestKey, manifestKey, MANIFEST_SCHEMA, VERSION_RE, type LatestPointer, type Manifest, type Splits } from "./layout.js";
import { sha256Hex } from "./util/json.js";

export interface PublishedDataset {
  version: string;
  manifestKey: string;
  manifest: Manifest;
  /** The pointer, when the version was resolved through latest.json. */
  latest?: LatestPointer;
}

/**
 * Reads a published version (default: the one latest.json names) and checks that the
 * manifest's bytes hash to its version.
 */
export async function readPublished(store: ObjectStore, dataset: string, version?: string): Promise<PublishedDataset> {
  let latest: LatestPointer | undefined;
  let key: string;
  if (version === undefined) {
    latest = JSON.parse((await store.getBuffer(latestKey(dataset))).toString("utf8")) as LatestPointer;
    version = latest.version;
    key = latest.manifest;
  } else key = manifestKey(dataset, version);
  if (!VERSION_RE.test(version)) throw new Error(`bad version ${JSON.stringify(version)}`);
  const bytes = await store.getBuffer(key);
  if (sha256Hex(bytes).slice(0, 16) !== version) throw new Error(`manifest ${key} does not hash to version ${version}`);
  const manifest = JSON.parse(bytes.toString("utf8")) as Manifest;
  if (manifest.schema !== MANIFEST_SCHEMA) throw new Error(`unexpected manifest schema ${manifest.schema}`);
  return latest ? { version, manifestKey: key, manifest, latest } : { version, manifestKey: key, manifest };
}

/** Reads and checks one object the manifest lists. */
export async function readBlob(store: ObjectStore, ref: { key: string; sha256: string }): Promise<Buffer> {
  const b = await store.getBuffer(ref.key);
  if (sha256Hex(b) !== ref.sha256) throw new Error(`sha256 mismatch for ${ref.key}`);
  return b;
}

export async function readCaptions(store: ObjectStore, m: Manifest): Promise<Record<string, string[]>> {
  return JSON.parse((await readBlob(store, m.captions)).toString("utf8")) as Record<string, string[]>;
}

export async function readSplits(store: ObjectStore, m: Manifest): Promise<Splits> {
  return JSON.parse((await readBlob(store, m.splits)).toString("utf8")) as Splits;
}
