import { isNodeError } from "./json.js";

/** A failure worth retrying later (network, a busy server): the CLI exits with EXIT_TRANSIENT. */
export class TransientError extends Error {
  override readonly name = "TransientError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** The step's input is not what it should be; retrying will not help. */
export class PipelineInputError extends Error {
  override readonly name = "PipelineInputError";
}

/** Validation found violations; `report` is the machine-readable report. */
export class ValidationError extends Error {
  override readonly name = "ValidationError";
  constructor(
    message: string,
    readonly report: unknown,
  ) {
    super(message);
  }
}

/** Someone else moved the dataset's latest pointer between our read and our write. */
export class PublishConflictError extends Error {
  override readonly name = "PublishConflictError";
}

export class CancelledError extends Error {
  override readonly name = "CancelledError";
  constructor(message = "cancelled") {
    super(message);
  }
}

const TRANSIENT_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EAI_AGAIN",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENETDOWN",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
  // S3 error codes (minio-js puts them in `code`)
  "SlowDown",
  "InternalError",
  "ServiceUnavailable",
  "RequestTimeout",
  "XMinioServerNotInitialized",
]);

/** Whether an error (or its cause chain) looks transient: worth a retry of the step. */
export function isTransient(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e !== undefined && e !== null && depth < 8; depth++) {
    if (e instanceof TransientError) return true;
    if (isNodeError(e) && e.code !== undefined && TRANSIENT_CODES.has(e.code)) return true;
    const code = e instanceof Error ? (e as unknown as { code?: unknown }).code : undefined;
    if (typeof code === "string" && TRANSIENT_CODES.has(code)) return true;
    e = e instanceof Error ? e.cause : undefined;
  }
  return false;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
