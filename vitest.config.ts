import { defaultServerConditions } from "vite";
import { defineConfig } from "vitest/config";

export default defineConfig({
  // Tests run against the sources: the "source" export condition points each @glimpse package
  // at src/ instead of its compiled dist/ (which production runs).
  ssr: { resolve: { conditions: ["source", ...defaultServerConditions] } },
  test: {
    include: ["packages/*/src/**/*.test.ts", "services/*/src/**/*.test.ts", "helm/*.test.ts", "argo/**/*.test.ts"],
    // Integration tests start real servers (MinIO, gRPC, browsers): give them room on 2 cores.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
    maxWorkers: 2,
    // one temporary folder for the run, removed at its end (scripts/test-tmpdir.ts)
    globalSetup: ["scripts/test-tmpdir.ts"],
  },
});
