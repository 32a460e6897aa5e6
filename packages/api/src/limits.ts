import { invalidArgument, type FieldViolation } from "./errors.js";

/**
 * Request limits shared by servers, the gateway and the docs. The proto comments state the
 * same numbers; limits.test.ts keeps them in step.
 */
export const LIMITS = {
  queryMaxChars: 512,
  topKDefault: 10,
  topKMax: 100,
  demoTopKDefault: 8,
  demoTopKMax: 50,
  captionsTopKDefault: 5,
  imageMaxBytes: 10 * 1024 * 1024,
  imageMaxPixels: 40_000_000,
  batchMaxQueries: 64,
  candidatesMax: 1000,
  pageSizeDefault: 20,
  pageSizeMax: 100,
  samplesPageSizeMax: 200,
  urlMaxChars: 2048,
} as const;

export const PATTERNS = {
  dataset: /^[a-z0-9][a-z0-9-]{0,62}$/,
  datasetVersion: /^[0-9a-f]{16}$/,
  modelVersion: /^m-[0-9a-f]{16}$/,
  imageId: /^[A-Za-z0-9_.-]{1,128}$/,
  runId: /^[A-Za-z0-9_-]{1,64}$/,
  sha256: /^[0-9a-f]{64}$/,
} as const;

/**
 * Collects every problem of a request before answering, so a caller fixes them all in one
 * round trip instead of one per call.
 */
export class Violations {
  readonly list: FieldViolation[] = [];

  add(field: string, description: string, reason = "INVALID"): this {
    this.list.push({ field, description, reason });
    return this;
  }

  /** A text query: trimmed, 1..queryMaxChars, with at least one letter or digit. Returns the trimmed text. */
  query(field: string, value: string): string {
    const text = value.trim();
    if (text.length === 0) this.add(field, "must not be empty", "REQUIRED");
    else if (text.length > LIMITS.queryMaxChars) this.add(field, `must be at most ${LIMITS.queryMaxChars} characters (got ${text.length})`, "TOO_LONG");
    else if (!/[\p{L}\p{N}]/u.test(text)) this.add(field, "must contain a word", "NO_WORDS");
    return text;
  }

  /** An integer in [min, max] where 0 means the default. */
  range(field: string, value: number, def: number, min: number, max: number): number {
    if (value === 0) return def;
    if (!Number.isInteger(value) || value < min || value > max) this.add(field, `must be between ${min} and ${max} (got ${value})`, "OUT_OF_RANGE");
    return value;
  }

  topK(field: string, value: number, def: number = LIMITS.topKDefault, max: number = LIMITS.topKMax): number {
    return this.range(field, value, def, 1, max);
  }

  pageSize(field: string, value: number, max: number = LIMITS.pageSizeMax): number {
    return this.range(field, value, LIMITS.pageSizeDefault, 1, max);
  }

  /** A string matching a pattern; empty allowed when optional. */
  pattern(field: string, value: string, re: RegExp, what: string, optional = true): string {
    if (value === "") {
      if (!optional) this.add(field, "is required", "REQUIRED");
    } else if (!re.test(value)) this.add(field, `must be ${what}`, "BAD_FORMAT");
    return value;
  }

  /** Image bytes within the size limit (pixel limits are checked when decoding). */
  imageBytes(field: string, value: Uint8Array): void {
    if (value.length === 0) this.add(field, "must not be empty", "REQUIRED");
    else if (value.length > LIMITS.imageMaxBytes) this.add(field, `must be at most ${LIMITS.imageMaxBytes} bytes (got ${value.length})`, "TOO_LARGE");
  }

  /** Throws INVALID_ARGUMENT with all collected violations, if any. */
  throwIfAny(): void {
    if (this.list.length > 0) throw invalidArgument(this.list);
  }
}
