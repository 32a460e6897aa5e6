import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { dataset as ds, notFound } from "@glimpse/api";
import { ObjectNotFoundError, getJson, type ObjectStore } from "@glimpse/objectstore";
import {
  SPLIT_NAMES,
  readLatest,
  readBlob,
  readCaptions,
  readPublished,
  readSplits,
  versionsPrefix,
  type LatestPointer,
  type Manifest,
  type SplitName,
} from "@glimpse/pipeline";

const SPLIT_ENUM: Record<SplitName, ds.Split> = { train: ds.Split.TRAIN, dev: ds.Split.DEV, test: ds.Split.TEST };

/** What the Data service records about a version (the pipeline's sync step registers it). */
export interface VersionRecord {
  dataset: string;
  version: string;
  published_at: string;
}

/** One published version, loaded once: versions are immutable, so this never goes stale. */
export interface LoadedVersion {
  dataset: string;
  version: string;
  manifestKey: string;
  manifest: Manifest;
  captions: Record<string, string[]>;
  /** Every image id in key order, with its split. */
  ids: string[];
  splitOf: Map<string, ds.Split>;
}

export const recordKey = (dataset: string, version: string) => `data/versions/${dataset}/${version}.json`;

/**
 * Published dataset versions, read from the object store. Manifests, captions and splits
 * are cached per version (a few MB for Flickr8K) so samples and images are served without
 * re-reading them.
 */
export class DatasetCatalog {
  private readonly cache = new Map<string, Promise<LoadedVersion>>();

  constructor(private readonly store: ObjectStore, private readonly maxCached = 8) {}

  async latest(dataset: string): Promise<LatestPointer | undefined> {
    return (await readLatest(this.store, dataset))?.pointer;
  }

  /** Resolves "" to the latest version; NOT_FOUND when nothing is published. */
  async resolve(dataset: string, version: string): Promise<string> {
    if (version) return version;
    const latest = await this.latest(dataset);
    if (!latest) throw notFound("dataset", dataset, `dataset ${JSON.stringify(dataset)} has no published version yet: start a pipeline run first`);
    return latest.version;
  }

  load(dataset: string, version: string): Promise<LoadedVersion> {
    const key = `${dataset}@${version}`;
    let p = this.cache.get(key);
    if (!p) {
      p = this.read(dataset, version);
      this.cache.set(key, p);
      p.catch(() => this.cache.delete(key));
      if (this.cache.size > this.maxCached) this.cache.delete(this.cache.keys().next().value!);
    }
    return p;
  }

  private async read(dataset: string, version: string): Promise<LoadedVersion> {
    let published;
    try {
      published = await readPublished(this.store, dataset, version);
    } catch (err) {
      if (err instanceof ObjectNotFoundError) throw notFound("dataset version", `${dataset}@${version}`);
      throw err;
    }
    const [captions, splits] = await Promise.all([readCaptions(this.store, published.manifest), readSplits(this.store, published.manifest)]);
    const splitOf = new Map<string, ds.Split>();
    for (const s of SPLIT_NAMES) for (const id of splits[s]) splitOf.set(id, SPLIT_ENUM[s]);
    const ids = Object.keys(published.manifest.images).sort();
    return { dataset, version, manifestKey: published.manifestKey, manifest: published.manifest, captions, ids, splitOf };
  }

  /** Versions present in the store, newest first (by publication record, then id). */
  async versions(dataset: string): Promise<string[]> {
    return (await this.versionsListed(dataset)).map((x) => x.version);
  }

  /** The same, each with the key that orders it (descending): its publication time, then its id. */
  async versionsListed(dataset: string): Promise<{ version: string; key: string }[]> {
    const found: string[] = [];
    let pageToken: string | undefined;
    do {
      const page = await this.store.listPage(versionsPrefix(dataset), { delimiter: "/", ...(pageToken ? { pageToken } : {}) });
      for (const p of page.prefixes) found.push(p.slice(versionsPrefix(dataset).length).replace(/\/$/, ""));
      pageToken = page.nextPageToken;
    } while (pageToken);
    const records = await Promise.all(found.map((v) => this.record(dataset, v)));
    const listed = found.map((version, i) => ({ version, key: `${records[i]?.published_at ?? ""}\n${version}` }));
    return listed.sort((a, b) => (a.key < b.key ? 1 : a.key > b.key ? -1 : 0));
  }

  async record(dataset: string, version: string): Promise<VersionRecord | undefined> {
    try {
      return await getJson<VersionRecord>(this.store, recordKey(dataset, version));
    } catch (err) {
      if (err instanceof ObjectNotFoundError) return undefined;
      throw err;
    }
  }

  /** The proto view of a version: counts per split, bytes, params, whether it is latest. */
  async describe(dataset: string, version: string): Promise<ds.DatasetVersion> {
    const [v, latest, record] = await Promise.all([this.load(dataset, version), this.latest(dataset), this.record(dataset, version)]);
    const m = v.manifest;
    const captionsIn = (ids: string[]) => ids.reduce((n, id) => n + (v.captions[id]?.length ?? 0), 0);
    const bySplit = new Map<ds.Split, string[]>();
    for (const id of v.ids) {
      const s = v.splitOf.get(id) ?? ds.Split.UNSPECIFIED;
      const list = bySplit.get(s);
      if (list) list.push(id);
      else bySplit.set(s, [id]);
    }
    const published = record?.published_at ?? (latest?.version === version ? latest.published_at : undefined);
    const publishTime = published ? timestampFromDate(new Date(published)) : undefined;
    return create(ds.DatasetVersionSchema, {
      dataset,
      version,
      imageCount: BigInt(m.counts.images),
      captionCount: BigInt(m.counts.captions),
      splits: [ds.Split.TRAIN, ds.Split.DEV, ds.Split.TEST, ds.Split.UNSPECIFIED].map((split) => {
        const ids = bySplit.get(split) ?? [];
        return create(ds.SplitCountSchema, { split, images: BigInt(ids.length), captions: BigInt(captionsIn(ids)) });
      }),
      totalBytes: BigInt(Object.values(m.images).reduce((n, i) => n + i.size, 0) + m.captions.size + m.splits.size),
      latest: latest?.version === version,
      manifestKey: v.manifestKey,
      params: Object.fromEntries(Object.entries(m.params).map(([k, val]) => [k, String(val)])),
      // publish_time, and the deprecated published_at still filled for a release
      ...(publishTime ? { publishTime, publishedAt: publishTime } : {}),
    });
  }

  /** An image's bytes, checked against the manifest's sha256. */
  async image(v: LoadedVersion, imageId: string): Promise<{ data: Buffer; sha256: string; width: number; height: number }> {
    const ref = v.manifest.images[imageId];
    if (!ref) throw notFound("image", imageId, `image ${JSON.stringify(imageId)} is not in ${v.dataset}@${v.version}`);
    return { data: await readBlob(this.store, ref), sha256: ref.sha256, width: ref.width, height: ref.height };
  }
}
