import type { Counts } from "../layout.js";
import { PipelineInputError, TransientError, errorMessage } from "../util/errors.js";
import { retry, type RetryOptions } from "../util/retry.js";

/** The environment variable the CLI reads the sync step's API key from (the Argo sync step gets it from a Secret). */
export const SYNC_API_KEY_ENV = "GLIMPSE_SYNC_API_KEY";

/** What the sync step announces: a version that is now published. */
export interface PublishedVersion {
  dataset: string;
  version: string;
  manifestKey: string;
  publishedAt: string;
  /** Whether this run moved the latest pointer. */
  latest: boolean;
  counts: Counts;
  totalBytes: number;
  params: Record<string, string | number>;
}

/**
 * Tells the other services about a published version. The Data service's hook records it
 * (RegisterDatasetVersion); the default only logs.
 */
export type SyncHook = (version: PublishedVersion, log: (message: string) => void) => Promise<void>;

export const noopSync: SyncHook = async (v, log) => {
  log(`no sync hook configured: version ${v.version} of ${v.dataset} is published at ${v.manifestKey}; services find it through datasets/${v.dataset}/latest.json`);
};

/** A hook that POSTs the version as JSON to `url`. */
export interface HttpSyncOptions {
  /** Extra request headers (e.g. authorization). */
  headers?: Record<string, string>;
  /** Bearer API key sent as `authorization: Bearer <key>` (a write key when the mesh has keys). */
  apiKey?: string | undefined;
  /** Per-attempt timeout (default 30 s). */
  timeoutMs?: number;
  /** Attempts for transient failures (network, 5xx, 408, 429), with backoff (default 6). */
  retry?: RetryOptions;
}

const BODY_CHARS = 500;

/**
 * A hook that POSTs the version as JSON to `url`. 2xx = done. Network errors, timeouts, 5xx,
 * 408 and 429 are retried in-process with exponential backoff, then reported as transient
 * (the CLI exits 75, so Argo retries the step); any other answer (401/403: a missing or
 * read-only key, 400, 404) fails at once, naming the status and the body.
 */
export function httpSyncHook(url: string, opts: HttpSyncOptions = {}): SyncHook {
  const headers: Record<string, string> = { "content-type": "application/json", ...opts.headers };
  if (opts.apiKey) headers["authorization"] = `Bearer ${opts.apiKey}`;
  return async (v, log) => {
    const body = JSON.stringify(v);
    const res = await retry(
      async () => {
        let r: Response;
        let text: string;
        try {
          r = await fetch(url, { method: "POST", headers, body, signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000) });
          text = await r.text();
        } catch (err) {
          throw new TransientError(`sync hook ${url} failed: ${errorMessage(err)}`, { cause: err });
        }
        const answer = `HTTP ${r.status}${text.trim() ? `: ${text.trim().slice(0, BODY_CHARS)}` : ""}`;
        if (r.status >= 500 || r.status === 429 || r.status === 408) throw new TransientError(`sync hook ${url} answered ${answer}`);
        if (r.status >= 300) {
          const hint =
            r.status === 401 || r.status === 403
              ? opts.apiKey
                ? " (the API key was refused: it must be a write key the services accept)"
                : ` (no API key sent: set ${SYNC_API_KEY_ENV} to a write key)`
              : "";
          throw new PipelineInputError(`sync hook ${url} answered ${answer}${hint}`);
        }
        return r;
      },
      (err) => err instanceof TransientError,
      { attempts: 6, baseDelayMs: 1_000, maxDelayMs: 15_000, ...opts.retry, onRetry: (err, n, ms) => log(`${errorMessage(err)}; retry ${n} in ${ms} ms`) },
    );
    log(`sync hook ${url} accepted version ${v.version} (HTTP ${res.status})`);
  };
}
