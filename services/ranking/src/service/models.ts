/** The model RPCs: what serves (info, status) and the registry (list versions, promote). */
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { errorWithReason, notFound, pageOfLive, ranking } from "@glimpse/api";
import { listVersions, modelInfo, readAliasDocument, readChecksums, writeAlias } from "../registry.js";
import { indexBuild, indexInfo, notFoundField, withSnapshot, type RankingImpl, type ServiceDeps } from "./shared.js";

type ModelRpcs = Pick<RankingImpl, "getModelInfo" | "getModelStatus" | "listModelVersions" | "promoteModel">;

/** Runs a registry read or write; a store failure becomes a retryable UNAVAILABLE. */
async function registryCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ConnectError) throw err;
    throw errorWithReason(Code.Unavailable, "STORE_UNAVAILABLE", `the model registry cannot be reached: ${(err as Error).message}`);
  }
}

export function modelRpcs({ manager, store }: ServiceDeps): ModelRpcs {
  return {
    async getModelInfo() {
      return withSnapshot(manager, async (s) => {
        const st = manager.status();
        const info = await modelInfo(store, s.model.version, s.model.version === st.productionVersion);
        if (!info) throw notFound("model version", s.model.version);
        return { model: info };
      });
    },

    async getModelStatus() {
      const st = manager.status();
      // The alias's history, for a rollback; status still answers when the store does not.
      const alias = await readAliasDocument(store).catch(() => undefined);
      const loaded = st.loadedAt && timestampFromDate(st.loadedAt);
      return {
        state: st.state,
        servingVersion: st.servingVersion,
        loadingVersion: st.loadingVersion,
        lastError: st.lastError,
        productionVersion: st.productionVersion,
        ...(loaded ? { loadTime: loaded, loadedAt: loaded } : {}),
        ...(st.gallery ? { index: indexInfo(st.gallery) } : {}),
        ...(st.pendingIndex ? { pendingIndex: indexBuild(st.pendingIndex) } : {}),
        previousProductionVersions: alias?.previous ?? [],
      };
    },

    async listModelVersions(req) {
      const all = await registryCall(() => listVersions(store));
      const page = pageOfLive(all, req, ranking.ListModelVersionsRequestSchema, "ListModelVersions", listingKey, "descending");
      return { models: page.items, nextPageToken: page.nextPageToken };
    },

    async promoteModel(req) {
      const sums = await registryCall(() => readChecksums(store, req.version));
      if (!sums) throw notFoundField("version", "model version", req.version);
      await registryCall(() => writeAlias(store, req.version));
      void manager.poke();
      const info = await registryCall(() => modelInfo(store, req.version, true));
      if (!info) throw notFound("model version", req.version);
      return { model: info };
    },
  };
}

/** The order listVersions gives (newest first, then by version, descending) as one string key. */
function listingKey(m: ranking.ModelInfo): string {
  const at = m.createTime ?? { seconds: 0n, nanos: 0 };
  return `${at.seconds.toString().padStart(12, "0")}.${String(at.nanos).padStart(9, "0")}\n${m.version}`;
}
