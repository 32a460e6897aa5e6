/** The model registry as the trainer's export writes it: models/<version>/{…, config.json, checksums.json (last)}. */
import { getJson, type ObjectStore } from "@glimpse/objectstore";
import { PATTERNS } from "@glimpse/api";

const modelFilesKey = (version: string, file: string): string => `models/${version}/${file}`;

/** True once the export finished uploading the version (checksums.json is written last). */
export async function modelRegistered(store: ObjectStore, version: string): Promise<boolean> {
  return PATTERNS.modelVersion.test(version) && (await store.stat(modelFilesKey(version, "checksums.json"))) !== undefined;
}

/**
 * The registered model a run exported, found by the run name its config.json records; for when
 * the export's own output is not at hand (a Job's pod is gone, a restart).
 */
export async function findModelOfRun(store: ObjectStore, runId: string): Promise<string | undefined> {
  let pageToken: string | undefined;
  do {
    const page = await store.listPage("models/", { delimiter: "/", ...(pageToken ? { pageToken } : {}) });
    for (const prefix of page.prefixes) {
      const version = prefix.slice("models/".length, -1);
      if (!PATTERNS.modelVersion.test(version)) continue;
      try {
        const conf = await getJson<{ run_name?: unknown }>(store, modelFilesKey(version, "config.json"));
        if (conf.run_name === runId && (await modelRegistered(store, version))) return version;
      } catch {
        // a version being uploaded, or not the trainer's: skip
      }
    }
    pageToken = page.nextPageToken;
  } while (pageToken);
  return undefined;
}
