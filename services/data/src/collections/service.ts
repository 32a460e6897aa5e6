/** The DataService's collection RPCs. */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import { Code } from "@connectrpc/connect";
import { data, collection as pb, errorWithReason, invalidArgument, notFound, pageOfFixed, pageOfLive } from "@glimpse/api";
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
      const page = pageOfLive(await collections.list(), req, data.ListCollectionsRequestSchema, "ListCollections", (id) => id, "ascending");
      return create(data.ListCollectionsResponseSchema, {
        collections: await Promise.all(page.items.map((id) => collections.describe(id))),
        nextPageToken: page.nextPageToken,
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
      const id = idOf(req.parent);
      const { version, manifest } = await collections.manifest(id);
      // Bound to the version listed: a sync that publishes another one between pages is noticed.
      const listing = `ListPhotos/${id}/${version}/${req.skipped ? "skipped" : "photos"}`;
      if (req.skipped) {
        const page = pageOfFixed(manifest.skipped, req, data.ListPhotosRequestSchema, listing);
        return create(data.ListPhotosResponseSchema, { skipped: page.items.map((s) => create(pb.SkippedFileSchema, s)), nextPageToken: page.nextPageToken, version });
      }
      const page = pageOfFixed(manifest.photos, req, data.ListPhotosRequestSchema, listing);
      return create(data.ListPhotosResponseSchema, { photos: page.items.map((p) => photoMessage(id, p)), nextPageToken: page.nextPageToken, version });
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
