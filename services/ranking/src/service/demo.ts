/** The search page's RPCs: its example queries, and a search over the demo gallery. */
import { LIMITS } from "@glimpse/api";
import { imageHits, withSnapshot, type RankingImpl, type ServiceDeps } from "./shared.js";

export function demoRpcs({ manager, demoQueries }: ServiceDeps): Pick<RankingImpl, "listDemoQueries" | "demoSearch"> {
  return {
    listDemoQueries() {
      return { queries: demoQueries };
    },

    async demoSearch(req) {
      const query = req.query.trim();
      const k = req.topK || LIMITS.demoTopKDefault;
      return withSnapshot(manager, async (s) => {
        const index = s.demo ?? s.gallery;
        const q = await s.model.embedText(query);
        return { results: imageHits(index, await index.findImages(q, k)), modelVersion: s.model.version, datasetVersion: index.data.datasetVersion, query };
      });
    },
  };
}
