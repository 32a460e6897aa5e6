import { InvalidKeyError } from "./types.js";

/**
 * Folder inside the fs store's bucket folder that holds temp files and locks. Reserved as a first
 * key segment on every implementation, so code that works on one store works on the other.
 */
export const RESERVED_SEGMENT = ".objectstore";

/** S3's limit, in UTF-8 bytes. */
const MAX_KEY_BYTES = 1024;
/** File name limit of common filesystems; MinIO stores keys as paths too. */
const MAX_SEGMENT_BYTES = 255;

// Control characters (NUL included) break XML listings and terminal output; backslashes are path
// separators on Windows and look like one to humans.
// eslint-disable-next-line no-control-regex
const BAD_CHARS = /[\u0000-\u001f\u007f\\]/;

function checkSegment(key: string, segment: string): void {
  if (segment === "") throw new InvalidKeyError(key, "empty path segment (leading, trailing or double '/')");
  if (segment === "." || segment === "..") throw new InvalidKeyError(key, `'${segment}' segment`);
  if (segment.length * 3 > MAX_SEGMENT_BYTES && Buffer.byteLength(segment) > MAX_SEGMENT_BYTES) {
    throw new InvalidKeyError(key, `path segment longer than ${MAX_SEGMENT_BYTES} bytes`);
  }
}

/** Throws InvalidKeyError unless `key` is a "/"-separated relative path (see ObjectStore). */
export function validateKey(key: string): void {
  if (typeof key !== "string" || key === "") throw new InvalidKeyError(String(key), "empty key");
  if (BAD_CHARS.test(key)) throw new InvalidKeyError(key, "control character or backslash");
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) throw new InvalidKeyError(key, `longer than ${MAX_KEY_BYTES} bytes`);
  const segments = key.split("/");
  for (const segment of segments) checkSegment(key, segment);
  if (segments[0] === RESERVED_SEGMENT) throw new InvalidKeyError(key, `'${RESERVED_SEGMENT}' is reserved`);
}

/**
 * A list prefix may end in a partial segment ("images/ca" matches "images/cat.jpg"), so only the
 * complete segments before the last "/" are checked like a key's; "" lists everything.
 */
export function validatePrefix(prefix: string): void {
  if (prefix === "") return;
  if (BAD_CHARS.test(prefix)) throw new InvalidKeyError(prefix, "control character or backslash in prefix");
  const segments = prefix.split("/");
  segments.pop();
  for (const segment of segments) checkSegment(prefix, segment);
}

/**
 * Orders keys by UTF-8 bytes, as S3 lists them. UTF-16 code-unit order (JS `<`) differs only when a
 * surrogate (U+D800–DFFF) meets U+E000–FFFF, so the fast path is a plain comparison.
 */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      // Surrogates encode code points >= U+10000: move them above U+E000–FFFF.
      x += x < 0xe000 ? 0x2000 : -0x800;
      y += y < 0xe000 ? 0x2000 : -0x800;
    }
    return x - y;
  }
  return a.length - b.length;
}

/** 1..1000, default 1000 (S3's MaxKeys). */
export function checkPageSize(pageSize: number | undefined): number {
  if (pageSize === undefined) return 1000;
  if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 1000) {
    throw new RangeError(`pageSize must be an integer in 1..1000, got ${pageSize}`);
  }
  return pageSize;
}

/** Validates a get() range; `end` is inclusive. */
export function checkRange(range: { start: number; end?: number }): void {
  const { start, end } = range;
  if (!Number.isSafeInteger(start) || start < 0) throw new RangeError(`invalid range start ${start}`);
  if (end !== undefined && (!Number.isSafeInteger(end) || end < start)) {
    throw new RangeError(`invalid range end ${end} (start ${start})`);
  }
}
