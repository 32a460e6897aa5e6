import { mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createWriteStream } from "node:fs";
import { pipeline } from "node:stream/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import yazl from "yazl";
import { extractZip } from "./extract.js";

async function zip(path: string, files: Record<string, string>): Promise<void> {
  const z = new yazl.ZipFile();
  z.addEmptyDirectory("top/");
  for (const [name, body] of Object.entries(files)) z.addBuffer(Buffer.from(body), name);
  z.end();
  await pipeline(z.outputStream, createWriteStream(path));
}

describe("extract", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "glimpse-ex-"));
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it("keeps the archive layout, skips macOS junk, and resumes", async () => {
    const z = join(dir, "a.zip");
    await zip(z, { "top/a.txt": "alpha", "top/sub/b.txt": "bravo".repeat(1000), "__MACOSX/top/._a.txt": "junk", "c.txt": "charlie" });
    const out = join(dir, "out");
    const r = await extractZip(z, out, { fresh: true });
    expect(r).toMatchObject({ files: 3, reused: 0 });
    expect(await readFile(join(out, "top/sub/b.txt"), "utf8")).toBe("bravo".repeat(1000));
    expect((await readdir(out)).sort()).toEqual(["c.txt", "top"]);
    // An interrupted attempt left a short file: it is rewritten; complete ones are kept.
    await writeFile(join(out, "top/sub/b.txt"), "bra");
    const again = await extractZip(z, out);
    expect(again).toMatchObject({ files: 3, reused: 2 });
    expect((await stat(join(out, "top/sub/b.txt"))).size).toBe(5000);
  });

  it("rejects entries that would escape the target folder", async () => {
    const z = join(dir, "evil.zip");
    await zip(z, { "aa/evil.txt": "x" });
    // Same-length rename in the local header and the central directory: "aa/" → "../".
    const bytes = await readFile(z);
    const patched = Buffer.from(bytes.toString("latin1").split("aa/evil.txt").join("../evil.txt"), "latin1");
    await writeFile(z, patched);
    await expect(extractZip(z, join(dir, "out2"))).rejects.toThrow(/evil\.txt/);
    await expect(stat(join(dir, "evil.txt"))).rejects.toThrow();
  });

  it("enforces size limits", async () => {
    const z = join(dir, "big.zip");
    await zip(z, { "x.txt": "x".repeat(10_000) });
    await expect(extractZip(z, join(dir, "out3"), { maxEntryBytes: 1000 })).rejects.toThrow(/over the limit/);
    await expect(extractZip(z, join(dir, "out4"), { maxTotalBytes: 1000 })).rejects.toThrow(/expands to more/);
  });
});
