/** The model registry as the trainer's export writes it: models/<version>/{…, config.json, checksums.json (last)}. */
import { getJson, type ObjectStore } from "@glimpse/objectstore";
import { modelKey, modelRegistered, modelVersionFolders } from "@glimpse/layout/models";

export { modelRegistered };

/**
 * The registered model a run exported, found by the run name its config.json records; for when
 * the export's own output is not at hand (a Job's pod is gone, a restart).
 */
export async function findModelOfRun(store: ObjectStore, runId: string): Promise<string | undefined> {
  for await (const version of modelVersionFolders(store)) {
    try {
      const conf = await getJson<{ run_name?: unknown }>(store, modelKey(version, "config.json"));
      if (conf.run_name === runId && (await modelRegistered(store, version))) return version;
    } catch {
      // a version being uploaded, or not the trainer's: skip
    }
  }
  return undefined;
}
