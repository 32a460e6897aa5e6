/** RankUploadedImage, and the uploaded-bytes path other RPCs share: bad images are the caller's error. */
import { invalidArgument, LIMITS } from "@glimpse/api";
import type { LoadedModel } from "../model/model.js";
import { ImageInputError } from "../model/preprocess.js";
import type { GalleryIndex } from "../index/gallery.js";
import { captionHits, galleryFor, imageHits, notFoundField, splitOf, withSnapshot, type RankingImpl, type ServiceDeps } from "./shared.js";

/** Embeds uploaded bytes; an image that cannot be decoded (or is too big) is INVALID_ARGUMENT on `field`. */
export async function embedUpload(model: LoadedModel, field: string, bytes: Uint8Array) {
  try {
    return await model.embedImage(bytes);
  } catch (err) {
    if (err instanceof ImageInputError) throw invalidArgument([{ field, description: err.message, reason: err.reason }]);
    throw err;
  }
}

/** An image query's embedding: a gallery image's (NOT_FOUND when it has none) or uploaded bytes'. */
export async function imageQuery(index: GalleryIndex, model: LoadedModel, image: { case: "imageId"; value: string } | { case: "imageBytes"; value: Uint8Array }): Promise<Float32Array> {
  if (image.case === "imageBytes") return (await embedUpload(model, "image_bytes", image.value)).embedding;
  const row = index.byId.get(image.value);
  if (row === undefined) throw notFoundField("image_id", "image", image.value);
  return index.imageEmbedding(row);
}

export function uploadRpcs({ manager }: ServiceDeps): Pick<RankingImpl, "rankUploadedImage"> {
  return {
    async rankUploadedImage(req) {
      const kc = req.topKCaptions || LIMITS.captionsTopKDefault;
      const ki = req.topKImages;
      return withSnapshot(manager, async (s) => {
        const index = await galleryFor(manager, s, req.scope);
        const up = await embedUpload(s.model, "image", req.image);
        const split = splitOf(req.scope);
        const [caps, sims] = await Promise.all([index.findCaptions(up.embedding, kc, split), ki > 0 ? index.findImages(up.embedding, ki, split) : Promise.resolve([])]);
        return {
          captions: captionHits(index, caps),
          similarImages: imageHits(index, sims),
          modelVersion: s.model.version,
          datasetVersion: index.data.datasetVersion,
          width: up.width,
          height: up.height,
        };
      });
    },
  };
}
