/**
 * vitest's globalSetup (vitest.config.ts): every temporary folder a test run makes (the tests'
 * mkdtemp, the data dirs and MinIOs they start, the services those spawn) goes under one folder of
 * this run, removed when the run ends. Tests used to leave theirs behind, ~0.5 GB a run: on CI's
 * nearly full disk that left the cluster's node under its eviction threshold, and the kubelet
 * evicted the pods the Kubernetes suite was watching.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), "glimpse-vitest-"));
  // os.tmpdir() reads TMPDIR on each call; the workers and every process they start inherit it
  process.env["TMPDIR"] = dir;
  return () => rmSync(dir, { recursive: true, force: true });
}
