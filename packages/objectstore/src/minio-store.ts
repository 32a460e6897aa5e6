/**
 * MinIO / S3 ObjectStore on the `minio` client (v8).
 *
 * - put: bodies up to `partSize` go up in one PutObject; larger ones (and streams that do not end
 *   within the first part) as a multipart upload, one part buffered at a time. We drive the
 *   multipart upload ourselves because minio-js's putObject (a) buffers a whole part of up to
 *   ~550 MiB for a stream of unknown length and (b) resumes *any* unfinished upload of the same key,
 *   which would splice concurrent writers' parts into one object.
 * - Conditional writes: MinIO evaluates If-None-Match / If-Match on PutObject, CreateMultipartUpload
 *   and CompleteMultipartUpload under its per-object lock. minio-js forwards both headers from the
 *   metadata argument of putObject (they are in its list of "supported headers"); for the multipart
 *   path they go on the initiate call (early reject, before uploading) and on the complete call,
 *   which is the authoritative check and which we sign via the client's makeRequestAsync because
 *   completeMultipartUpload() takes no headers.
 * - list: ListObjectsV2 via makeRequestAsync with our own XML parsing; minio-js's parser turns
 *   numeric-looking keys into numbers ("007" comes back as "7").
 */
import { createHash } from "node:crypto";
import http from "node:http";
import https from "node:https";
import { Readable } from "node:stream";
import { XMLParser } from "fast-xml-parser";
import { Client, CloudFunctionConfig, NotificationConfig, ObjectCreatedAll, ObjectRemovedAll, QueueConfig, S3Error, TopicConfig, type TargetConfig } from "minio";
import { checkPageSize, checkRange, validateKey, validatePrefix } from "./keys.js";
import {
  ObjectNotFoundError,
  PreconditionFailedError,
  type Body,
  type ListOptions,
  type ListPage,
  type ListPageOptions,
  type ObjectInfo,
  type ObjectStore,
  type PutOptions,
} from "./types.js";

export interface MinioObjectStoreConfig {
  /** "http://host:port" or "https://host[:port]". */
  endpoint: string;
  accessKey: string;
  secretKey: string;
  bucket: string;
  /** Default "us-east-1" (MinIO's default); set so the client never has to look it up. */
  region?: string;
  /** Multipart part size in bytes, 5..64 MiB; default 8 MiB. put() holds one part in memory. */
  partSize?: number;
}

const MiB = 1024 * 1024;
const DEFAULT_PART_SIZE = 8 * MiB;
const MAX_PARTS = 10_000;

const xml = new XMLParser({
  parseTagValue: false, // keep every value a string: keys, etags and tokens are not numbers
  isArray: (name) => name === "Contents" || name === "CommonPrefixes",
});

type Headers = Record<string, string>;

export class MinioObjectStore implements ObjectStore {
  readonly kind = "minio";
  readonly location: string;
  readonly bucket: string;
  /** The underlying client, for tests and admin tasks. */
  readonly client: Client;
  private readonly region: string;
  private readonly partSize: number;
  private readonly agent: http.Agent;

  constructor(config: MinioObjectStoreConfig) {
    const url = new URL(config.endpoint);
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new Error(`minio endpoint must be http(s)://host[:port], got ${config.endpoint}`);
    }
    const useSSL = url.protocol === "https:";
    this.bucket = config.bucket;
    this.region = config.region ?? "us-east-1";
    this.partSize = config.partSize ?? DEFAULT_PART_SIZE;
    // Single puts (< partSize) go through client.putObject, which only sends one request up to its
    // own 64 MiB part size; S3 needs parts of at least 5 MiB.
    if (this.partSize < 5 * MiB || this.partSize > 64 * MiB) {
      throw new RangeError(`partSize must be within 5..64 MiB, got ${this.partSize}`);
    }
    // Our own keep-alive agent, so close() can drop its sockets.
    this.agent = useSSL ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true });
    this.client = new Client({
      endPoint: url.hostname.replace(/^\[(.*)\]$/, "$1"),
      port: url.port ? Number(url.port) : useSSL ? 443 : 80,
      useSSL,
      accessKey: config.accessKey,
      secretKey: config.secretKey,
      region: this.region,
      pathStyle: true,
      transportAgent: this.agent,
    });
    this.location = `${url.origin}/${config.bucket}`;
  }

  async init(): Promise<void> {
    if (await this.client.bucketExists(this.bucket)) return;
    try {
      await this.client.makeBucket(this.bucket, this.region);
    } catch (err) {
      // Another process created it between our check and our create.
      if (s3Code(err) === "BucketAlreadyOwnedByYou" || s3Code(err) === "BucketAlreadyExists") return;
      throw err;
    }
  }

  async put(key: string, body: Body, options: PutOptions = {}): Promise<ObjectInfo> {
    validateKey(key);
    const conditions: Headers = {};
    if (options.ifNoneMatch === "*") conditions["If-None-Match"] = "*";
    if (options.ifMatch !== undefined) conditions["If-Match"] = `"${unquote(options.ifMatch)}"`;
    const headers: Headers = { "Content-Type": options.contentType ?? "application/octet-stream", ...conditions };

    const source =
      typeof body === "string" ? Buffer.from(body) : body instanceof Uint8Array ? asBuffer(body) : body;
    const parts = source instanceof Readable ? readParts(source, this.partSize) : sliceParts(source, this.partSize);
    try {
      const first = await parts.next();
      const firstPart = first.done ? Buffer.alloc(0) : first.value;
      // A short first part means the body ended inside it: a single PutObject will do.
      if (firstPart.length < this.partSize) {
        const res = await this.client.putObject(this.bucket, key, firstPart, firstPart.length, headers);
        return { key, size: firstPart.length, etag: res.etag, lastModified: new Date() };
      }
      return await this.putMultipart(key, firstPart, parts, headers, conditions);
    } catch (err) {
      throw mapError(err, key, options.ifMatch !== undefined);
    } finally {
      await parts.return(undefined); // stops reading (and destroys) the source stream on failure
    }
  }

  async get(key: string, range?: { start: number; end?: number }): Promise<Readable> {
    validateKey(key);
    if (range) checkRange(range);
    try {
      // {start: 0} alone is the whole object; getPartialObject's length 0 means "to the end".
      if (!range || (range.start === 0 && range.end === undefined)) return await this.client.getObject(this.bucket, key);
      const length = range.end === undefined ? 0 : range.end - range.start + 1;
      return await this.client.getPartialObject(this.bucket, key, range.start, length);
    } catch (err) {
      throw mapError(err, key);
    }
  }

  async getBuffer(key: string): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const chunk of await this.get(key)) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    validateKey(key);
    try {
      const st = await this.client.statObject(this.bucket, key);
      return { key, size: st.size, etag: unquote(st.etag), lastModified: st.lastModified };
    } catch (err) {
      if (s3Code(err) === "NotFound" || s3Code(err) === "NoSuchKey") return undefined;
      throw err;
    }
  }

  async *list(prefix: string, options: ListOptions = {}): AsyncIterable<ObjectInfo> {
    validatePrefix(prefix);
    let token: string | undefined;
    do {
      const page = await this.listObjectsV2(prefix, 1000, token, options.startAfter, undefined);
      yield* page.objects;
      token = page.nextPageToken;
    } while (token !== undefined);
  }

  async listPage(prefix: string, options: ListPageOptions = {}): Promise<ListPage> {
    validatePrefix(prefix);
    const pageSize = checkPageSize(options.pageSize);
    return this.listObjectsV2(prefix, pageSize, options.pageToken, undefined, options.delimiter);
  }

  async delete(key: string): Promise<void> {
    validateKey(key);
    await this.client.removeObject(this.bucket, key); // S3 answers 204 for missing keys too
  }

  async close(): Promise<void> {
    this.agent.destroy();
  }

  /**
   * Sends the bucket's ObjectCreated and ObjectRemoved events to a notification target the
   * server has configured (`arn:minio:sqs::<ID>:webhook` for MINIO_NOTIFY_WEBHOOK_*_<ID>).
   * Idempotent: "unchanged" when the bucket already does; other targets' configurations are kept.
   * A MinIO without that target answers an error (ARN not found).
   */
  async setBucketEventTarget(arn: string): Promise<"set" | "unchanged"> {
    const events = [ObjectCreatedAll, ObjectRemovedAll];
    const current = await this.client.getBucketNotification(this.bucket);
    const ours = current.QueueConfiguration.filter((q) => q.Queue === arn);
    if (ours.length === 1 && (ours[0]!.Filter ?? []).length === 0 && [...(ours[0]!.Event ?? [])].sort().join() === [...events].sort().join()) return "unchanged";
    const config = new NotificationConfig();
    type Entry = { Id?: string; Event?: string[]; Filter?: { Name: string; Value: string }[] };
    const keep = (target: TargetConfig, e: Entry) => {
      if (e.Id) target.setId(e.Id);
      for (const ev of e.Event ?? []) target.addEvent(ev);
      for (const f of e.Filter ?? []) (f.Name === "prefix" ? target.addFilterPrefix(f.Value) : target.addFilterSuffix(f.Value));
      config.add(target);
    };
    for (const t of current.TopicConfiguration as (Entry & { Topic: string })[]) keep(new TopicConfig(t.Topic), t);
    for (const q of current.QueueConfiguration as (Entry & { Queue: string })[]) if (q.Queue !== arn) keep(new QueueConfig(q.Queue), q);
    for (const c of current.CloudFunctionConfiguration as (Entry & { CloudFunction: string })[]) keep(new CloudFunctionConfig(c.CloudFunction), c);
    keep(new QueueConfig(arn), { Event: events });
    await this.client.setBucketNotification(this.bucket, config);
    return "set";
  }

  private async putMultipart(
    key: string,
    firstPart: Buffer,
    rest: AsyncGenerator<Buffer>,
    headers: Headers,
    conditions: Headers,
  ): Promise<ObjectInfo> {
    const uploadId = await this.client.initiateNewMultipartUpload(this.bucket, key, headers);
    try {
      const etags: { part: number; etag: string }[] = [];
      let size = 0;
      let part: Buffer | undefined = firstPart;
      for (let partNumber = 1; part; partNumber++) {
        if (partNumber > MAX_PARTS) throw new RangeError(`object ${key} exceeds ${MAX_PARTS} parts of ${this.partSize} bytes`);
        const md5 = createHash("md5").update(part).digest("base64");
        const { etag } = await this.client.uploadPart(
          { bucketName: this.bucket, objectName: key, uploadID: uploadId, partNumber, headers: { "Content-MD5": md5 } },
          part,
        );
        etags.push({ part: partNumber, etag });
        size += part.length;
        // The part buffer is reused by readParts(): only ask for the next one after the upload.
        const next = await rest.next();
        part = next.done ? undefined : next.value;
      }
      const etag = await this.completeMultipart(key, uploadId, etags, conditions);
      return { key, size, etag, lastModified: new Date() };
    } catch (err) {
      await this.client.abortMultipartUpload(this.bucket, key, uploadId).catch(() => undefined);
      throw err;
    }
  }

  private async completeMultipart(
    key: string,
    uploadId: string,
    parts: { part: number; etag: string }[],
    conditions: Headers,
  ): Promise<string> {
    const payload =
      `<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
      parts.map((p) => `<Part><PartNumber>${p.part}</PartNumber><ETag>"${p.etag}"</ETag></Part>`).join("") +
      `</CompleteMultipartUpload>`;
    const res = await this.client.makeRequestAsync(
      { method: "POST", bucketName: this.bucket, objectName: key, query: `uploadId=${uriEscape(uploadId)}`, headers: conditions },
      payload,
    );
    const doc = xml.parse(await readText(res));
    // S3 may report a failed complete as an <Error> document in a 200 response.
    if (doc.Error) throw s3Error(doc.Error.Code, doc.Error.Message);
    return unquote(doc.CompleteMultipartUploadResult?.ETag ?? "");
  }

  private async listObjectsV2(
    prefix: string,
    maxKeys: number,
    token: string | undefined,
    startAfter: string | undefined,
    delimiter: string | undefined,
  ): Promise<ListPage> {
    const query = ["list-type=2", "encoding-type=url", `max-keys=${maxKeys}`, `prefix=${uriEscape(prefix)}`];
    if (delimiter) query.push(`delimiter=${uriEscape(delimiter)}`);
    if (token) query.push(`continuation-token=${uriEscape(token)}`);
    if (startAfter) query.push(`start-after=${uriEscape(startAfter)}`);
    const res = await this.client.makeRequestAsync({ method: "GET", bucketName: this.bucket, query: query.join("&") });
    const result = xml.parse(await readText(res)).ListBucketResult;
    if (!result) throw new Error("unexpected ListObjectsV2 response");
    const page: ListPage = {
      objects: (result.Contents ?? []).map((c: Record<string, string>) => ({
        key: urlDecode(c["Key"] ?? ""),
        size: Number(c["Size"]),
        etag: unquote(c["ETag"] ?? ""),
        lastModified: new Date(c["LastModified"] ?? 0),
      })),
      prefixes: (result.CommonPrefixes ?? []).map((p: Record<string, string>) => urlDecode(p["Prefix"] ?? "")),
    };
    if (result.IsTruncated === "true" && result.NextContinuationToken) page.nextPageToken = result.NextContinuationToken;
    return page;
  }
}

/** Reads a stream into parts of exactly `size` bytes (the last may be shorter), reusing one buffer. */
async function* readParts(stream: Readable, size: number): AsyncGenerator<Buffer> {
  const buf = Buffer.allocUnsafe(size);
  let filled = 0;
  for await (const chunk of stream) {
    let data: Buffer = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    while (data.length > 0) {
      const n = data.copy(buf, filled);
      filled += n;
      data = data.subarray(n);
      if (filled === size) {
        yield buf;
        filled = 0;
      }
    }
  }
  if (filled > 0) yield buf.subarray(0, filled);
}

async function* sliceParts(data: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let offset = 0; offset < data.length; offset += size) yield data.subarray(offset, offset + size);
}

function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

function mapError(err: unknown, key: string, ifMatch = false): unknown {
  switch (s3Code(err)) {
    case "PreconditionFailed":
    case "ConditionalRequestConflict": // S3: a concurrent conditional write won; retrying is the caller's call
      return new PreconditionFailedError(key, (err as Error).message);
    case "NoSuchKey":
    case "NotFound":
      // MinIO answers If-Match on a missing key with NoSuchKey.
      return ifMatch ? new PreconditionFailedError(key, "object does not exist (ifMatch)") : new ObjectNotFoundError(key);
    case "InvalidRange":
      return new RangeError(`range not satisfiable for ${key}: ${(err as Error).message}`);
    default:
      return err;
  }
}

function s3Code(err: unknown): string | undefined {
  return err instanceof Error ? (err as { code?: string }).code : undefined;
}

function s3Error(code: string, message: string): S3Error {
  const err = new S3Error(message);
  err.code = code;
  return err;
}

async function readText(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/** Etags come quoted, and in listings the quotes may be XML character references. */
function unquote(etag: string): string {
  return etag.replace(/^(?:"|&quot;|&#34;)(.*)(?:"|&quot;|&#34;)$/, "$1");
}

/** RFC 3986 escaping, as AWS SigV4 canonical query strings require. */
function uriEscape(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** Keys in an encoding-type=url listing (spaces may come as "+"). */
function urlDecode(value: string): string {
  return decodeURIComponent(value.replace(/\+/g, " "));
}
