/**
 * A child process for lifecycle/memory.test.ts (and by hand): a Ranking server on a folder store
 * seeded from the demo pack swaps models A→B→A `--cycles` times through the registry's alias, as
 * a promotion does, with searches on each version; prints one JSON line with its RSS before the
 * first swap and after each return to A (after a full GC, once the old version has drained), and
 * whether every retired model's sessions were released and its objects collected.
 *
 *   node --expose-gc --conditions=source --import tsx services/ranking/src/testing/swap-memory.ts [--cycles 3]
 *
 * Run in its own process so nothing else a test file does moves its RSS.
 */
import { rmSync } from "node:fs";
import { parseArgs } from "node:util";
import { testConfig } from "@glimpse/runtime/testing";
import { collectGarbage, rssMiB } from "../lifecycle/memory.js";
import { writeAlias } from "../registry.js";
import { build } from "../server.js";
import { until, variantOf } from "./harness.js";

export interface SwapMemoryReport {
  versions: [string, string];
  /** RSS (MiB) serving A, before the first swap. */
  before: number;
  /** RSS (MiB) serving A again after each A→B→A cycle. */
  after: number[];
  /** Peak RSS seen (MiB, the process's maxRSS). */
  peak: number;
  /** V8's heap and external memory (ArrayBuffers: index vectors, model bytes), MiB, before and after. */
  heap: { before: number; after: number };
  external: { before: number; after: number };
  /** Retired models whose sessions were released once they drained (a released model refuses to embed). */
  released: number;
  retired: number;
  /** Retired models (and their gallery indexes) that garbage collection has freed. */
  collected: number;
}

const { values: args } = parseArgs({ options: { cycles: { type: "string", default: "3" } } });
const MiB = 1024 * 1024;

/** A full GC, time for the drained version's release to run, another GC. */
async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    collectGarbage();
    await new Promise((r) => setTimeout(r, 100));
  }
}

const cfg = testConfig();
const server = await build(cfg, { port: 0, pollMs: 3_600_000 });
const { manager, store } = server;
try {
  const a = manager.status().servingVersion;
  const b = await variantOf(store, a, "swap-memory");
  const collected = new Set<number>();
  const registry = new FinalizationRegistry<number>((i) => collected.add(i));
  let retired = 0;
  let released = 0;
  const queries = ["a dog playing in the snow", "children on a beach", "a man riding a bike", "two people sitting on a bench in a park near the water"];
  /** Searches on the serving version, some at once (micro-batched). */
  const search = async (tag: string): Promise<void> => {
    const s = manager.acquire();
    try {
      await Promise.all(queries.map(async (q, i) => s.gallery.searchImages(await s.model.embedText(`${q} ${tag} ${i}`), 10)));
      await s.model.embedTexts(queries);
    } finally {
      s.release();
    }
  };
  const serve = async (version: string): Promise<void> => {
    const old = manager.serving!;
    await writeAlias(store, version);
    await manager.poke();
    await until(`${version} to serve`, async () => (manager.status().servingVersion === version ? true : undefined));
    // the retired version: its sessions released once drained (a released model throws when
    // asked to embed), its objects watched for collection but not kept
    const id = retired++;
    registry.register(old.model, id);
    registry.register(old.gallery, 1000 + id);
    if (await until(`${old.model.version}'s sessions to be released`, () => old.model.embedTexts(["x"]).then(() => undefined, () => true), 10_000).catch(() => false)) released++;
    await search(`${id}`);
  };
  // warm: searches on A (the similarity session, the query cache), no swap yet
  for (let i = 0; i < 3; i++) await search(`warm ${i}`);
  await settle();
  const before = rssMiB();
  const heapBefore = process.memoryUsage().heapTotal / MiB;
  const externalBefore = process.memoryUsage().external / MiB;
  const after: number[] = [];
  for (let c = 0; c < Number(args.cycles); c++) {
    await serve(b);
    await serve(a);
    await settle();
    after.push(rssMiB());
  }
  const report: SwapMemoryReport = {
    versions: [a, b],
    before,
    after,
    peak: process.resourceUsage().maxRSS / 1024,
    heap: { before: heapBefore, after: process.memoryUsage().heapTotal / MiB },
    external: { before: externalBefore, after: process.memoryUsage().external / MiB },
    released,
    retired,
    collected: [...collected].filter((i) => i < 1000 && collected.has(1000 + i)).length,
  };
  process.stdout.write(`${JSON.stringify(report)}\n`);
} finally {
  await server.close(100);
  rmSync(cfg.dataDir, { recursive: true, force: true });
}
