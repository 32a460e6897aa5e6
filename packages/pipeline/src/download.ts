import { createReadStream, createWriteStream } from "node:fs";
import { rename, rm, stat, truncate } from "node:fs/promises";
import http, { type ClientRequest, type IncomingMessage } from "node:http";
import https from "node:https";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import type { SourceAllowList } from "./sources.js";
import { CancelledError, PipelineInputError, TransientError, errorMessage, isTransient } from "./util/errors.js";
import { readJsonIfExists, sha256File, writeJsonAtomic } from "./util/json.js";
import { retry, type RetryOptions } from "./util/retry.js";

export interface DownloadOptions {
  /** Verified after the download; a mismatch deletes the file and fails (not retried). */
  expectedSha256?: string;
  retry?: RetryOptions;
  /** Abort an attempt when no bytes arrive for this long (default 60 s); it is then retried. */
  idleTimeoutMs?: number;
  signal?: AbortSignal;
  /** Where sources may come from: checked before the first byte, on every connection and redirect. */
  allow?: SourceAllowList;
  /** Bytes on disk so far and the expected total (0 = unknown). */
  onProgress?: (done: number, total: number) => void;
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
  /** For logs: "resuming at N bytes". */
  onLog?: (message: string) => void;
}

export interface DownloadResult {
  bytes: number;
  sha256: string;
  /** Attempts it took (1 = no retry). */
  attempts: number;
  /** Whether an attempt resumed a partial file with a Range request. */
  resumed: boolean;
}

/** What we remember about a partial download, to resume it only against the same resource. */
interface PartMeta {
  url: string;
  etag?: string;
  lastModified?: string;
  total?: number;
}

/**
 * Streams `url` (http, https or file) into `dest`. Bytes go to `dest.part` first; a dropped
 * connection (or 5xx/429/408, or no data for `idleTimeoutMs`) is retried with backoff and
 * resumed with a Range request (guarded by If-Range, so a changed remote file restarts from
 * zero). Redirects are followed. The finished file is verified and renamed into place.
 */
export async function downloadToFile(url: string, dest: string, opts: DownloadOptions = {}): Promise<DownloadResult> {
  const part = `${dest}.part`;
  const metaPath = `${dest}.part.json`;
  const parsed = new URL(url);
  let attempts = 0;
  let resumed = false;
  // http(s) is checked per connection and redirect (httpGet); a file only here
  if (parsed.protocol === "file:") await opts.allow?.check(url);

  await retry(
    async (attempt) => {
      attempts = attempt;
      if (opts.signal?.aborted) throw new CancelledError();
      const r = parsed.protocol === "file:" ? await copyFileAttempt(parsed, part, opts) : await httpAttempt(url, part, metaPath, opts);
      resumed ||= r.resumed;
    },
    (err) => !opts.signal?.aborted && isTransient(err),
    {
      ...opts.retry,
      ...(opts.signal ? { signal: opts.signal } : {}),
      onRetry: (err, attempt, delay) => opts.onRetry?.(err, attempt, delay),
    },
  ).catch((err: unknown) => {
    if (opts.signal?.aborted) throw new CancelledError();
    throw err;
  });

  const { sha256, size } = await sha256File(part);
  if (opts.expectedSha256 && sha256 !== opts.expectedSha256.toLowerCase()) {
    await rm(part, { force: true });
    await rm(metaPath, { force: true });
    throw new PipelineInputError(`sha256 mismatch for ${url}: expected ${opts.expectedSha256}, got ${sha256} (${size} bytes); the partial file was removed`);
  }
  await rename(part, dest);
  await rm(metaPath, { force: true });
  return { bytes: size, sha256, attempts, resumed };
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

/** Counts bytes and resets an idle timer on every chunk. */
function meter(start: number, total: number, opts: DownloadOptions, onChunk: () => void): Transform {
  let done = start;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      done += chunk.length;
      onChunk();
      opts.onProgress?.(done, total);
      cb(null, chunk);
    },
  });
}

async function copyFileAttempt(url: URL, part: string, opts: DownloadOptions): Promise<{ resumed: boolean }> {
  const src = fileURLToPath(url);
  let total: number;
  try {
    total = (await stat(src)).size;
  } catch (err) {
    throw new PipelineInputError(`cannot read ${url.href}: ${errorMessage(err)}`);
  }
  let start = await sizeOf(part);
  if (start > total) {
    await truncate(part, 0);
    start = 0;
  }
  opts.onProgress?.(start, total);
  if (start === total) return { resumed: start > 0 };
  if (start > 0) opts.onLog?.(`resuming ${url.href} at ${start} of ${total} bytes`);
  await pipeline(
    createReadStream(src, { start, highWaterMark: 1 << 20 }),
    meter(start, total, opts, () => {}),
    createWriteStream(part, { flags: start > 0 ? "a" : "w" }),
    ...(opts.signal ? [{ signal: opts.signal }] : []),
  );
  return { resumed: start > 0 };
}

function parseContentRange(h: string | null): { start: number; total: number } | undefined {
  const m = h ? /^bytes\s+(?:(\d+)-\d+|\*)\/(\d+)$/i.exec(h.trim()) : null;
  if (!m) return undefined;
  return { start: m[1] === undefined ? -1 : Number(m[1]), total: Number(m[2]) };
}

interface Got {
  res: IncomingMessage;
  req: ClientRequest;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** GET with redirects (at most 5) and a socket idle timeout; resolves on the final response's headers. */
function httpGet(url: URL, headers: Record<string, string>, idleMs: number, signal: AbortSignal | undefined, allow: SourceAllowList | undefined, redirectsLeft = 5): Promise<Got> {
  const mod = url.protocol === "https:" ? https : http;
  return new Promise<Got>((resolve, reject) => {
    try {
      allow?.checkHttp(url); // a redirect is a new source: the same rules
    } catch (err) {
      return reject(err);
    }
    const req = mod.get(url, { headers, ...(signal ? { signal } : {}), ...(allow ? { lookup: allow.lookupFor(url) } : {}) }, (res) => {
      const status = res.statusCode ?? 0;
      if (REDIRECTS.has(status) && res.headers.location) {
        res.resume();
        if (redirectsLeft <= 0) return reject(new PipelineInputError(`too many redirects from ${url.href}`));
        httpGet(new URL(res.headers.location, url), headers, idleMs, signal, allow, redirectsLeft - 1).then(resolve, reject);
        return;
      }
      resolve({ res, req });
    });
    req.setTimeout(idleMs, () => req.destroy(new TransientError(`no data from ${url.href} for ${idleMs} ms`)));
    req.on("error", (err) =>
      reject(
        signal?.aborted
          ? new CancelledError()
          : err instanceof TransientError || err instanceof PipelineInputError // a refused source is not retried
            ? err
            : new TransientError(`cannot fetch ${url.href}: ${errorMessage(err)}`, { cause: err }),
      ),
    );
  });
}

/**
 * Writes a response body to `path`, keeping every byte that arrived even when the connection
 * drops (the body is consumed as it comes, and the file is ended — not discarded — on error).
 */
function bodyToFile(res: IncomingMessage, path: string, append: boolean, onBytes: (n: number) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const ws = createWriteStream(path, { flags: append ? "a" : "w" });
    let failure: unknown;
    let ended = false;
    const end = (): void => {
      if (ended) return;
      ended = true;
      ws.end();
    };
    res.on("data", (chunk: Buffer) => {
      onBytes(chunk.length);
      if (!ws.write(chunk)) res.pause();
    });
    ws.on("drain", () => res.resume());
    res.on("end", end);
    res.on("error", (err) => {
      failure ??= err;
      end();
    });
    res.on("close", () => {
      if (!res.complete) failure ??= new Error("connection closed before the end of the body");
      end();
    });
    ws.on("error", (err) => {
      failure = err;
      res.destroy();
      reject(err);
    });
    ws.on("finish", () => (failure === undefined ? resolve() : reject(failure)));
  });
}

async function httpAttempt(url: string, part: string, metaPath: string, opts: DownloadOptions): Promise<{ resumed: boolean }> {
  let start = await sizeOf(part);
  const meta = await readJsonIfExists<PartMeta>(metaPath);
  const headers: Record<string, string> = { "accept-encoding": "identity", "user-agent": "glimpse-pipeline" };
  if (start > 0 && meta?.url === url && (meta.etag || meta.lastModified)) {
    headers["range"] = `bytes=${start}-`;
    const validator = meta.etag && !meta.etag.startsWith("W/") ? meta.etag : meta.lastModified;
    if (validator) headers["if-range"] = validator;
  } else if (start > 0) {
    await truncate(part, 0);
    start = 0;
  }

  const idleMs = opts.idleTimeoutMs ?? 60_000;
  const { res, req } = await httpGet(new URL(url), headers, idleMs, opts.signal, opts.allow);
  const status = res.statusCode ?? 0;
  const drain = (): void => {
    res.resume();
  };
  if (status === 416) {
    drain();
    const cr = parseContentRange(res.headers["content-range"] ?? null);
    if (cr && cr.total === start) return { resumed: true }; // the part file is already complete
    await truncate(part, 0);
    throw new TransientError(`range not satisfiable for ${url} at ${start}: restarting from zero`);
  }
  if (status === 408 || status === 429 || status >= 500) {
    drain();
    throw new TransientError(`HTTP ${status} from ${url}`);
  }
  if (status !== 200 && status !== 206) {
    drain();
    throw new PipelineInputError(`HTTP ${status} ${res.statusMessage ?? ""} from ${url}`.trim());
  }

  let total: number;
  let resumed = false;
  if (status === 206) {
    const cr = parseContentRange(res.headers["content-range"] ?? null);
    if (!cr || cr.start !== start) {
      req.destroy();
      await truncate(part, 0);
      throw new TransientError(`unexpected Content-Range ${res.headers["content-range"]} for ${url} (wanted bytes ${start}-): restarting`);
    }
    total = cr.total;
    resumed = true;
    opts.onLog?.(`resuming ${url} at ${start} of ${total} bytes`);
  } else {
    if (start > 0) opts.onLog?.(`server sent the whole of ${url} again: restarting from zero`);
    start = 0;
    const len = res.headers["content-length"];
    total = len ? Number(len) : 0;
  }
  const m: PartMeta = { url, total };
  const etag = res.headers["etag"];
  const lastModified = res.headers["last-modified"];
  if (etag) m.etag = etag;
  if (lastModified) m.lastModified = lastModified;
  opts.onProgress?.(start, total);
  let done = start;
  // Consume the body at once (before any await), or bytes that arrive before a dropped
  // connection could be discarded with the destroyed response.
  const body = bodyToFile(res, part, start > 0, (n) => {
    done += n;
    opts.onProgress?.(done, total);
  });
  body.catch(() => {}); // handled below; this keeps an early failure from counting as unhandled
  try {
    await writeJsonAtomic(metaPath, m);
    await body;
  } catch (err) {
    if (opts.signal?.aborted) throw new CancelledError();
    throw new TransientError(`download of ${url} interrupted at ${done} of ${total || "?"} bytes: ${errorMessage(err)}`, { cause: err });
  }
  const got = await sizeOf(part);
  if (total > 0 && got !== total) throw new TransientError(`download of ${url} ended at ${got} of ${total} bytes`);
  return { resumed };
}
