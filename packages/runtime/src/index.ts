import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createObjectStore, type ObjectStore } from "@glimpse/objectstore";
import { ApiKeys, type TlsFiles } from "@glimpse/rpc";
import type { GlimpseConfig } from "./config.js";

export * from "./config.js";

/** MinIO when MINIO_ENDPOINT is set, else a folder under the data dir: one switch for every service. */
export function storeFromConfig(cfg: GlimpseConfig): ObjectStore {
  if (cfg.minioEndpoint) {
    return createObjectStore({
      kind: "minio",
      endpoint: cfg.minioEndpoint,
      accessKey: cfg.minioAccessKey,
      secretKey: cfg.minioSecretKey,
      bucket: cfg.minioBucket,
      region: cfg.minioRegion,
    });
  }
  return createObjectStore({ kind: "fs", root: join(cfg.dataDir, "store"), bucket: cfg.minioBucket });
}

export function tlsFromConfig(cfg: GlimpseConfig): TlsFiles | undefined {
  if (!cfg.tlsCert || !cfg.tlsKey) return undefined;
  return { cert: readFileSync(cfg.tlsCert, "utf8"), key: readFileSync(cfg.tlsKey, "utf8") };
}

export function caFromConfig(cfg: GlimpseConfig): string | undefined {
  return cfg.tlsCa ? readFileSync(cfg.tlsCa, "utf8") : undefined;
}

/**
 * API keys from config. Refuses to run open unless GLIMPSE_ALLOW_OPEN says so: a
 * forgotten key must not silently expose training and promotion.
 */
export function apiKeysFromConfig(cfg: GlimpseConfig): ApiKeys {
  if (cfg.apiKeys.length === 0 && !cfg.allowOpen) {
    throw new Error("no API keys configured: set GLIMPSE_API_KEYS (or GLIMPSE_ALLOW_OPEN=true to run without auth)");
  }
  return new ApiKeys(cfg.apiKeys, cfg.authReads);
}
export * from "./serve.js";
