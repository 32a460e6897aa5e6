import type { Counts } from "../layout.js";
import { PipelineInputError, TransientError, errorMessage } from "../util/errors.js";

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

/** A hook that POSTs the version as JSON to `url` (2xx = done; 5xx/network = transient). */
export function httpSyncHook(url: string, opts: { headers?: Record<string, string>; timeoutMs?: number } = {}): SyncHook {
  return async (v, log) => {
    let res: Response;
    try {
      res = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json", ...opts.headers },
        body: JSON.stringify(v),
        signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000),
      });
    } catch (err) {
      throw new TransientError(`sync hook ${url} failed: ${errorMessage(err)}`, { cause: err });
    }
    await res.body?.cancel();
    if (res.status >= 500 || res.status === 429 || res.status === 408) throw new TransientError(`sync hook ${url} answered HTTP ${res.status}`);
    if (res.status >= 300) throw new PipelineInputError(`sync hook ${url} answered HTTP ${res.status}`);
    log(`sync hook ${url} accepted version ${v.version} (HTTP ${res.status})`);
  };
}
