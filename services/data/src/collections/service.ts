/** The DataService's collection RPCs. */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { Code } from "@connectrpc/connect";
import { LIMITS, Violations, data, collection as pb, errorWithReason, invalidArgument, notFound } from "@glimpse/api";
import type { ObjectStore } from "@glimpse/objectstore";
import { collectionName, parseCollectionName, parsePhotoName, photoName, thumbnailKey, thumbnailUrl, uploadsPrefix, type CollectionPhoto } from "@glimpse/layout";
import { ingestPhoto, storeIngested } from "@glimpse/pipeline";
import type { CollectionManager } from "./manager.js";
import { storageEvents } from "./events.js";


/** The proto's rules checked the name's shape. */
const idOf = (name: string): string => parseCollectionName(name)!;

export function photoMessage(collection: string, p: CollectionPhoto): pb.Photo {
  return create(pb.PhotoSchema, {
    name: photoName(collection, p.photo_id),
    photoId: p.photo_id,
    path: p.path,
    sha256: p.sha256,
    sizeBytes: BigInt(p.size),
    width: p.width,
    height: p.height,
    takenTime: timestampFromDate(new Date(p.taken_time)),
    cameraModel: p.camera_model,
    thumbnailUrl: thumbnailUrl(collection, p.photo_id),
    duplicatePaths: p.duplicate_paths,
  });
}

/** Offset page tokens, bound to the listing they came from (a version, or "collections"). */
function pageOffset(v: Violations, token: string, bound: string): number {
  if (!token) return 0;
  try {
    const t = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as { b: string; o: number };
    if (t.b === bound && Number.isInteger(t.o) && t.o >= 0) return t.o;
  } catch {
    // reported below
  }
  v.add("page_token", "is not from a previous response of this listing (a new sync published another version: start again)", "BAD_TOKEN");
  return 0;
}
const pageToken = (bound: string, offset: number) => Buffer.from(JSON.stringify({ b: bound, o: offset })).toString("base64url");

export function collectionService(store: ObjectStore, collections: CollectionManager): Partial<ServiceImpl<typeof data.DataService>> {
  async function findPhoto(name: string) {
    const { collection, photoId } = parsePhotoName(name)!;
    const { version, manifest } = await collections.manifest(collection);
    const photo = manifest.photos.find((p) => p.photo_id === photoId);
    if (!photo) throw notFound("photo", name, `no photo ${name} in version ${version} of collections/${collection}`);
    return { collection, photo };
  }

  return {
    async createCollection(req) {
      return create(data.CreateCollectionResponseSchema, { collection: await collections.create(req.collectionId, req.collection!) });
    },

    async getCollection(req) {
      return create(data.GetCollectionResponseSchema, { collection: await collections.describe(idOf(req.name)) });
    },

    async listCollections(req) {
      const v = new Violations();
      const ids = await collections.list();
      const size = req.pageSize || LIMITS.pageSizeDefault;
      const offset = pageOffset(v, req.pageToken, "collections");
      v.throwIfAny();
      const page = ids.slice(offset, offset + size);
      return create(data.ListCollectionsResponseSchema, {
        collections: await Promise.all(page.map((id) => collections.describe(id))),
        nextPageToken: offset + size < ids.length ? pageToken("collections", offset + size) : "",
      });
    },

    async deleteCollection(req) {
      await collections.delete(idOf(req.name));
      return create(data.DeleteCollectionResponseSchema, {});
    },

    async syncCollection(req) {
      const id = idOf(req.name);
      void collections.sync(id);
      return create(data.SyncCollectionResponseSchema, { collection: await collections.describe(id) });
    },

    watchCollection(req, ctx) {
      return collections.watch(idOf(req.name), req.untilSynced, ctx.signal);
    },

    async createPhoto(req) {
      const id = idOf(req.parent);
      const record = collections.record(id);
      if (record.source.kind !== "uploads") {
        throw errorWithReason(Code.FailedPrecondition, "NOT_AN_UPLOADS_COLLECTION", `collections/${id} reads its photos from its ${record.source.kind}: add the photo there`);
      }
      if (req.filename.includes("/") || req.filename === "." || req.filename === "..") throw invalidArgument([{ field: "filename", description: "must be a file name, without \"/\"", reason: "BAD_FORMAT" }]);
      const bytes = Buffer.from(req.image);
      const checked = await ingestPhoto(bytes);
      if (!checked.ok) throw invalidArgument([{ field: "image", description: checked.message, reason: checked.reason }]);
      const filename = req.filename || `${checked.photoId}.${checked.format === "jpeg" ? "jpg" : checked.format}`;
      const key = uploadsPrefix(id) + filename;
      await store.put(key, bytes, { contentType: `image/${checked.format}` });
      // decoded once: the sync finds these bytes known and does not decode them again
      const mtime = (await store.stat(key))?.lastModified.getTime() ?? Date.now();
      await collections.sync(id, [await storeIngested(store, id, checked, { path: filename, size: bytes.length, mtime })]);
      const { photo } = await findPhoto(photoName(id, checked.photoId));
      return create(data.CreatePhotoResponseSchema, { photo: photoMessage(id, photo) });
    },

    async getPhoto(req) {
      const { collection, photo } = await findPhoto(req.name);
      return create(data.GetPhotoResponseSchema, { photo: photoMessage(collection, photo) });
    },

    async listPhotos(req) {
      const v = new Violations();
      const id = idOf(req.parent);
      const { version, manifest } = await collections.manifest(id);
      const size = req.pageSize || LIMITS.photosPageSizeDefault;
      const bound = `${version}/${req.skipped ? "skipped" : "photos"}`;
      const offset = pageOffset(v, req.pageToken, bound);
      v.throwIfAny();
      const all = req.skipped ? manifest.skipped : manifest.photos;
      const next = offset + size < all.length ? pageToken(bound, offset + size) : "";
      if (req.skipped) return create(data.ListPhotosResponseSchema, { skipped: manifest.skipped.slice(offset, offset + size).map((s) => create(pb.SkippedFileSchema, s)), nextPageToken: next, version });
      return create(data.ListPhotosResponseSchema, { photos: manifest.photos.slice(offset, offset + size).map((p) => photoMessage(id, p)), nextPageToken: next, version });
    },

    async deletePhoto(req) {
      const { collection, photo } = await findPhoto(req.name);
      const record = collections.record(collection);
      if (record.source.kind !== "uploads") {
        throw errorWithReason(Code.FailedPrecondition, "SOURCE_OWNS_PHOTO", `collections/${collection} reads its photos from its ${record.source.kind}: delete ${photo.path} there${record.watch ? "" : " and sync"}`);
      }
      for (const path of [photo.path, ...photo.duplicate_paths]) await store.delete(uploadsPrefix(collection) + path);
      await collections.sync(collection);
      return create(data.DeletePhotoResponseSchema, {});
    },

    async receiveStorageEvents(req) {
      const out = await collections.receiveStorageEvents(storageEvents(req));
      return create(data.ReceiveStorageEventsResponseSchema, { applied: out.applied, dropped: out.dropped, ignored: out.ignored, collections: out.synced.map(collectionName) });
    },

    async getPhotoThumbnail(req) {
      const { collection, photo } = await findPhoto(req.name);
      const bytes = await store.getBuffer(thumbnailKey(collection, photo.sha256));
      return create(data.GetPhotoThumbnailResponseSchema, { data: bytes, contentType: "image/jpeg", sha256: `${photo.sha256.slice(0, 16)}-thumb` });
    },
  };
}
