import { createWriteStream } from "node:fs";
import { mkdir, rm, stat } from "node:fs/promises";
import { dirname, join, normalize, sep } from "node:path";
import { pipeline } from "node:stream/promises";
import yauzl from "yauzl";
import { CancelledError, PipelineInputError } from "./util/errors.js";

export interface ExtractLimits {
  /** Largest single entry (default 2 GiB). */
  maxEntryBytes?: number;
  /** Largest total uncompressed size (default 32 GiB) — a zip-bomb guard. */
  maxTotalBytes?: number;
  /** Most entries (default 1,000,000). */
  maxEntries?: number;
}

export interface ExtractOptions extends ExtractLimits {
  signal?: AbortSignal;
  /** Entries handled (written or found already there) and the archive's entry count. */
  onProgress?: (done: number, total: number) => void;
  /** Entries written at once (default 8). */
  concurrency?: number;
  /** The folder is known to be empty (a fresh start): skip the per-file "already there?" check. */
  fresh?: boolean;
}

export interface ExtractResult {
  /** Files in the archive (directories and macOS metadata excluded). */
  files: number;
  bytes: number;
  /** Files already in place from an interrupted attempt. */
  reused: number;
}

/** Ignored entries: folders and macOS resource forks. */
function isJunkEntry(name: string): boolean {
  return name.endsWith("/") || name.startsWith("__MACOSX/") || name.split("/").some((s) => s.startsWith("._") || s === ".DS_Store");
}

function openZip(path: string): Promise<yauzl.ZipFile> {
  return new Promise((resolve, reject) => {
    yauzl.open(path, { lazyEntries: true, autoClose: false, validateEntrySizes: true, decodeStrings: true }, (err, zip) => {
      if (err || !zip) reject(new PipelineInputError(`cannot open zip ${path}: ${err?.message ?? "unknown error"}`));
      else resolve(zip);
    });
  });
}

/**
 * Extracts a zip on disk into `destDir`, keeping the archive's layout. Streams entry by
 * entry (the archive is never read into memory; CRC and sizes are checked) and skips files
 * already there with the right size (a restart).
 * Entry names that would escape `destDir` are rejected, as are archives over the limits.
 */
export async function extractZip(zipPath: string, destDir: string, opts: ExtractOptions = {}): Promise<ExtractResult> {
  const maxEntry = opts.maxEntryBytes ?? 2 * 1024 ** 3;
  const maxTotal = opts.maxTotalBytes ?? 32 * 1024 ** 3;
  const maxEntries = opts.maxEntries ?? 1_000_000;
  const concurrency = Math.max(1, opts.concurrency ?? 8);
  await mkdir(destDir, { recursive: true });
  const root = normalize(destDir + sep);
  const zip = await openZip(zipPath);
  if (zip.entryCount > maxEntries) {
    zip.close();
    throw new PipelineInputError(`${zipPath} has ${zip.entryCount} entries, more than the limit of ${maxEntries}`);
  }
  const total = zip.entryCount;
  const result: ExtractResult = { files: 0, bytes: 0, reused: 0 };
  let seen = 0;
  const madeDirs = new Set<string>();

  return new Promise<ExtractResult>((resolve, reject) => {
    let inFlight = 0;
    let ended = false;
    let failed = false;
    let waiting = false;
    const fail = (err: unknown): void => {
      if (failed) return;
      failed = true;
      zip.close();
      reject(err);
    };
    const maybeDone = (): void => {
      if (!failed && ended && inFlight === 0) {
        zip.close();
        resolve(result);
      }
    };
    const pump = (): void => {
      if (failed) return;
      if (opts.signal?.aborted) return fail(new CancelledError());
      if (inFlight < concurrency) {
        waiting = false;
        zip.readEntry();
      } else {
        waiting = true;
      }
    };

    zip.on("error", fail);
    zip.on("end", () => {
      ended = true;
      maybeDone();
    });
    zip.on("entry", (entry: yauzl.Entry) => {
      seen++;
      const name = entry.fileName;
      if (isJunkEntry(name)) {
        opts.onProgress?.(seen, total);
        return pump();
      }
      const target = normalize(join(destDir, name));
      if (!target.startsWith(root)) return fail(new PipelineInputError(`zip entry ${JSON.stringify(name)} escapes the target folder`));
      if (entry.uncompressedSize > maxEntry) return fail(new PipelineInputError(`zip entry ${name} is ${entry.uncompressedSize} bytes, over the limit of ${maxEntry}`));
      result.bytes += entry.uncompressedSize;
      if (result.bytes > maxTotal) return fail(new PipelineInputError(`${zipPath} expands to more than ${maxTotal} bytes`));
      result.files++;
      inFlight++;
      writeEntry(zip, entry, target, madeDirs, opts.fresh === true)
        .then((reused) => {
          if (reused) result.reused++;
          inFlight--;
          opts.onProgress?.(seen, total);
          if (waiting) pump();
          maybeDone();
        })
        .catch(fail);
      pump();
    });
    pump();
  });
}

async function writeEntry(zip: yauzl.ZipFile, entry: yauzl.Entry, target: string, madeDirs: Set<string>, fresh: boolean): Promise<boolean> {
  if (!fresh) {
    try {
      if ((await stat(target)).size === entry.uncompressedSize) return true;
    } catch {
      // not there yet
    }
  }
  const dir = dirname(target);
  if (!madeDirs.has(dir)) {
    await mkdir(dir, { recursive: true });
    madeDirs.add(dir);
  }
  const stream = await new Promise<NodeJS.ReadableStream>((resolve, reject) => {
    zip.openReadStream(entry, (err, s) => (err || !s ? reject(new PipelineInputError(`cannot read zip entry ${entry.fileName}: ${err?.message ?? "unknown"}`)) : resolve(s)));
  });
  // Written in place: an interrupted write leaves a shorter file, which a restart rewrites
  // (only files of exactly the entry's size count as extracted).
  try {
    await pipeline(stream, createWriteStream(target));
  } catch (err) {
    await rm(target, { force: true });
    throw err instanceof PipelineInputError ? err : new PipelineInputError(`cannot extract ${entry.fileName}: ${err instanceof Error ? err.message : String(err)}`);
  }
  return false;
}
