/**
 * Child process for fs-store.test.ts's cross-process races (run with `node --conditions=source --import tsx`):
 *   fs-race-worker.ts <root> <bucket> create <key>...   create-only puts; prints the keys it won
 *   fs-race-worker.ts <root> <bucket> increment <key> <n>   n CAS increments of a JSON counter
 * Waits for a "go" line on stdin so that all workers start together.
 */
import { createInterface } from "node:readline";
import { FsObjectStore } from "../fs-store.js";
import { PreconditionFailedError, updateJson } from "../index.js";

const [root, bucket, mode, ...args] = process.argv.slice(2);
const store = new FsObjectStore(root!, bucket!);
await store.init();
await new Promise<void>((resolve) => createInterface({ input: process.stdin }).once("line", () => resolve()));

if (mode === "create") {
  const won: string[] = [];
  await Promise.all(
    args.map(async (key) => {
      try {
        await store.put(key, `pid ${process.pid}`, { ifNoneMatch: "*" });
        won.push(key);
      } catch (err) {
        if (!(err instanceof PreconditionFailedError)) throw err;
      }
    }),
  );
  process.stdout.write(JSON.stringify(won));
} else if (mode === "increment") {
  const [key, n] = args;
  for (let i = 0; i < Number(n); i++) await updateJson<{ n: number }>(store, key!, (c) => ({ n: (c?.n ?? 0) + 1 }), { maxAttempts: 1000 });
  process.stdout.write("[]");
} else {
  throw new Error(`unknown mode ${mode}`);
}
