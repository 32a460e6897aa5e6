/**
 * How the command line reaches the gateway: Connect (binary) over HTTP/1.1, the gateway's URL
 * from --gateway or GLIMPSE_URL (default http://127.0.0.1:8000), the API key from --api-key,
 * GLIMPSE_API_KEY, or the file `npm start` keeps it in (.data/api-key, under GLIMPSE_DATA_DIR
 * when that is set), sent as "authorization: Bearer <key>" on every call.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { Code, ConnectError, createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { data, ranking, rpcDetails, training } from "@glimpse/api";

export const DEFAULT_URL = "http://127.0.0.1:8000";
/** Unary calls' deadline; watch streams have none (a sync can take as long as it takes). */
export const UNARY_TIMEOUT_MS = 30_000;

export interface ClientSettings {
  url: string;
  /** undefined: no key found (reads still work unless GLIMPSE_AUTH_READS=true). */
  apiKey: string | undefined;
  /** Where the key came from, for messages ("--api-key", "GLIMPSE_API_KEY", a file path). */
  apiKeyFrom: string | undefined;
}

/** The gateway and key from flags, then the environment, then the defaults. */
export function clientSettings(flags: { gateway?: string | undefined; apiKey?: string | undefined }, env: NodeJS.ProcessEnv, cwd: string): ClientSettings {
  const url = (flags.gateway || env["GLIMPSE_URL"] || DEFAULT_URL).replace(/\/+$/, "");
  if (flags.apiKey) return { url, apiKey: flags.apiKey, apiKeyFrom: "--api-key" };
  if (env["GLIMPSE_API_KEY"]) return { url, apiKey: env["GLIMPSE_API_KEY"], apiKeyFrom: "GLIMPSE_API_KEY" };
  const file = resolve(cwd, env["GLIMPSE_DATA_DIR"] || ".data", "api-key");
  try {
    const key = readFileSync(file, "utf8").trim();
    if (key) return { url, apiKey: key, apiKeyFrom: file };
  } catch {
    // no key file: calls go without a key
  }
  return { url, apiKey: undefined, apiKeyFrom: undefined };
}

export interface GlimpseClients {
  data: Client<typeof data.DataService>;
  ranking: Client<typeof ranking.RankingService>;
  training: Client<typeof training.TrainingService>;
}

/** Connect clients of the three services through the gateway (or over `transport`, for tests). */
export function glimpseClients(settings: ClientSettings, transport?: Transport): GlimpseClients {
  const auth: Interceptor = (next) => (req) => {
    if (settings.apiKey) req.header.set("authorization", `Bearer ${settings.apiKey}`);
    return next(req);
  };
  const t =
    transport ??
    createConnectTransport({
      baseUrl: settings.url,
      httpVersion: "1.1",
      useBinaryFormat: true,
      defaultTimeoutMs: UNARY_TIMEOUT_MS,
      interceptors: [auth],
    });
  return { data: createClient(data.DataService, t), ranking: createClient(ranking.RankingService, t), training: createClient(training.TrainingService, t) };
}

/** Options for a server stream: no deadline (the transport's default is for unary calls). */
export const STREAM_CALL = { timeoutMs: 0 } as const;

/** "InvalidArgument" → "invalid_argument", as Connect's JSON and the README spell codes. */
export function codeName(code: Code): string {
  return (Code[code] ?? "unknown").replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}

const NETWORK_ERRORS = new Set(["ECONNREFUSED", "ENOTFOUND", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN", "ECONNRESET", "EADDRNOTAVAIL"]);

/** The network error under a ConnectError when the gateway itself could not be reached. */
export function unreachableCause(err: ConnectError): string | undefined {
  if (err.code !== Code.Unavailable && err.code !== Code.Unknown && err.code !== Code.Internal) return undefined;
  for (let c: unknown = err.cause, depth = 0; c && depth < 5; c = (c as { cause?: unknown }).cause, depth++) {
    const code = (c as NodeJS.ErrnoException).code;
    if (typeof code === "string" && NETWORK_ERRORS.has(code)) return code;
    // AggregateError (happy eyeballs: several addresses tried)
    const errors = (c as { errors?: unknown[] }).errors;
    if (Array.isArray(errors)) for (const e of errors) if (NETWORK_ERRORS.has((e as NodeJS.ErrnoException).code ?? "")) return (e as NodeJS.ErrnoException).code;
  }
  return /\b(ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ENETUNREACH|EAI_AGAIN)\b/.exec(err.rawMessage)?.[1];
}

/**
 * An error as lines for a person: "error: <code>: <message>", each google.rpc.BadRequest field
 * violation on its own line, and a hint where one helps (no key, a read key, no gateway).
 */
export function describeError(err: unknown, settings: ClientSettings): string[] {
  if (!(err instanceof ConnectError)) return [`error: ${err instanceof Error ? err.message : String(err)}`];
  const unreachable = unreachableCause(err);
  if (unreachable) {
    return [
      `error: cannot reach the Glimpse gateway at ${settings.url} (${unreachable})`,
      `  is it running? start the mesh with \`npm start\`, or point GLIMPSE_URL (or --gateway) at a running gateway`,
    ];
  }
  const lines = [`error: ${codeName(err.code)}: ${err.rawMessage}`];
  for (const bad of err.findDetails(rpcDetails.BadRequestSchema)) {
    for (const v of bad.fieldViolations) lines.push(`  ${v.field}: ${v.description}${v.reason && v.reason !== "INVALID" ? ` (${v.reason})` : ""}`);
  }
  if (err.code === Code.Unauthenticated) {
    lines.push(
      settings.apiKey
        ? `  the gateway refused the API key from ${settings.apiKeyFrom}: use the key \`npm start\` printed (kept in .data/api-key)`
        : "  this call needs an API key: set GLIMPSE_API_KEY or pass --api-key (`npm start` prints one and keeps it in .data/api-key)",
    );
  } else if (err.code === Code.PermissionDenied && err.findDetails(rpcDetails.BadRequestSchema).length === 0) {
    lines.push(`  the API key from ${settings.apiKeyFrom ?? "(none)"} may only read: this call needs a write key`);
  }
  return lines;
}
