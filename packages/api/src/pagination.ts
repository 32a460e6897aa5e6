/**
 * Pagination of every List method (AIP-158), one codec for all: the page size comes from the
 * page_size field's glimpse.api.v1.page_size option (0 → its default, above its max → the max),
 * and a page token is opaque — base64url JSON naming the listing it belongs to and where the next
 * page starts — so a token handed to another listing, or to the same one after its filters or the
 * version it listed changed, is refused with one field violation (page_token, BAD_PAGE_TOKEN)
 * instead of returning the wrong page.
 */
import { getOption, hasOption, type DescMessage } from "@bufbuild/protobuf";
import { invalidArgument } from "./errors.js";
import { page_size as pageSizeOption } from "./gen/glimpse/api/v1/annotations_pb.js";

/** The page_size sizes a List request declares; throws when the proto leaves them out. */
export function pageSizes(request: DescMessage): { defaultSize: number; maxSize: number } {
  const field = request.fields.find((f) => f.name === "page_size");
  if (!field || !hasOption(field, pageSizeOption)) throw new Error(`${request.typeName}.page_size declares no glimpse.api.v1.page_size`);
  const { defaultSize, maxSize } = getOption(field, pageSizeOption);
  return { defaultSize, maxSize };
}

/** The entries a page holds for a request's page_size (validated ≥ 0 before the handler runs). */
export function pageSizeOf(request: DescMessage, pageSize: number): number {
  const { defaultSize, maxSize } = pageSizes(request);
  return pageSize === 0 ? defaultSize : Math.min(pageSize, maxSize);
}

/** Where a page starts: after the entry with this key, or at this offset of an immutable listing. */
type Position = { after: string } | { offset: number };

interface Token {
  /** The listing: the method and whatever fixes its contents (filters, the version listed). */
  l: string;
  a?: string;
  o?: number;
}

export function encodePageToken(listing: string, at: Position): string {
  const t: Token = "after" in at ? { l: listing, a: at.after } : { l: listing, o: at.offset };
  return Buffer.from(JSON.stringify(t), "utf8").toString("base64url");
}

/** The position a token names; INVALID_ARGUMENT (page_token, BAD_PAGE_TOKEN) for any other listing's or a made-up token. */
export function decodePageToken(token: string, listing: string): Position {
  let t: Token | undefined;
  try {
    t = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as Token;
  } catch {
    // reported below
  }
  if (t && typeof t === "object" && t.l === listing) {
    if (typeof t.a === "string") return { after: t.a };
    if (Number.isSafeInteger(t.o) && t.o! >= 0) return { offset: t.o! };
  }
  throw badPageToken();
}

const badPageToken = () =>
  invalidArgument([{
    field: "page_token",
    description: "is not a next_page_token of this listing (from another method, or its filters or the version it listed changed: start again without one)",
    reason: "BAD_PAGE_TOKEN",
  }]);

export interface ListRequest {
  pageSize: number;
  pageToken: string;
}

export interface Page<T> {
  items: T[];
  /** "" on the last page. */
  nextPageToken: string;
}

/**
 * One page of a listing that does not change between calls (a dataset or collection version):
 * positions are offsets. `listing` names the method and everything that fixes the entries.
 */
export function pageOfFixed<T>(all: readonly T[], req: ListRequest, request: DescMessage, listing: string): Page<T> {
  const size = pageSizeOf(request, req.pageSize);
  let offset = 0;
  if (req.pageToken !== "") {
    const at = decodePageToken(req.pageToken, listing);
    if (!("offset" in at)) throw badPageToken();
    offset = at.offset;
  }
  const items = all.slice(offset, offset + size);
  return { items, nextPageToken: offset + size < all.length ? encodePageToken(listing, { offset: offset + size }) : "" };
}

/**
 * One page of a live listing (entries come and go between calls): `all` is sorted by `keyOf` in
 * `order` (code-unit order of unique keys), and a page starts after the last key of the one
 * before, so an entry added or removed meanwhile neither repeats nor skips another.
 */
export function pageOfLive<T>(
  all: readonly T[],
  req: ListRequest,
  request: DescMessage,
  listing: string,
  keyOf: (item: T) => string,
  order: "ascending" | "descending",
): Page<T> {
  const size = pageSizeOf(request, req.pageSize);
  let start = 0;
  if (req.pageToken !== "") {
    const at = decodePageToken(req.pageToken, listing);
    if (!("after" in at)) throw badPageToken();
    const beyond = order === "ascending" ? (k: string) => k > at.after : (k: string) => k < at.after;
    start = all.findIndex((item) => beyond(keyOf(item)));
    if (start === -1) start = all.length;
  }
  const items = all.slice(start, start + size);
  const more = start + size < all.length;
  return { items, nextPageToken: more ? encodePageToken(listing, { after: keyOf(items.at(-1)!) }) : "" };
}
