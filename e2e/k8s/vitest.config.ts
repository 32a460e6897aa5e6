import { BaseSequencer, type TestSpecification } from "vitest/node";
import { defaultServerConditions } from "vite";
import { defineConfig } from "vitest/config";

/** The files are one story on one cluster, told in the order of their names (install … uninstall, tilt). */
class ByName extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    return [...files].sort((a, b) => a.moduleId.localeCompare(b.moduleId));
  }
}

export default defineConfig({
  // The suite imports the project's packages from their sources (as vitest.config.ts does).
  ssr: { resolve: { conditions: ["source", ...defaultServerConditions] } },
  test: {
    root: new URL("../..", import.meta.url).pathname,
    include: ["e2e/k8s/*.test.ts"],
    fileParallelism: false,
    sequence: { sequencer: ByName },
    pool: "forks",
    maxWorkers: 1,
    // one temporary folder for the run, removed at its end (scripts/test-tmpdir.ts)
    globalSetup: ["scripts/test-tmpdir.ts"],
    testTimeout: 600_000,
    hookTimeout: 900_000,
    // a failed step leaves the cluster in a state later files would only re-report
    bail: 1,
  },
});
