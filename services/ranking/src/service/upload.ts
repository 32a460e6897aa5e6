/** RankUploadedImage, and the uploaded-bytes path other RPCs share: bad images are the caller's error. */
import { invalidArgument, LIMITS } from "@glimpse/api";
import type { LoadedModel } from "../model/model.js";
import { ImageInputError } from "../model/preprocess.js";
import { captionHits, galleryFor, imageHits, splitOf, withSnapshot, type RankingImpl, type ServiceDeps } from "./shared.js";

/** Embeds uploaded bytes; an image that cannot be decoded (or is too big) is INVALID_ARGUMENT on `field`. */
export async function embedUpload(model: LoadedModel, field: string, bytes: Uint8Array) {
  try {
    return await model.embedImage(bytes);
  } catch (err) {
    return imageError(field, err);
  }
}

function imageError(field: string, err: unknown): never {
  if (err instanceof ImageInputError) throw invalidArgument([{ field, description: err.message, reason: err.reason }]);
  throw err;
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
