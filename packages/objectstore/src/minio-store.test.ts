import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Readable } from "node:stream";
import { collect, objectStoreContract } from "./contract.js";
import { createObjectStore, MinioObjectStore, PreconditionFailedError, type ObjectStore } from "./index.js";
import { checkDriveSpace, startMinio, type MinioServer } from "./testing/minio.js";

const MiB = 1024 * 1024;
let minio: MinioServer;

beforeAll(async () => {
  minio = await startMinio();
});
afterAll(async () => {
  await minio?.stop();
});

function store(bucket: string, partSize?: number): MinioObjectStore {
  return new MinioObjectStore({
    endpoint: minio.endpoint,
    accessKey: minio.accessKey,
    secretKey: minio.secretKey,
    bucket,
    ...(partSize !== undefined && { partSize }),
  });
}

/** Unfinished multipart uploads in the bucket (an aborted put must not leave any). */
async function incompleteUploads(s: ObjectStore): Promise<string[]> {
  const { client, bucket } = s as MinioObjectStore;
  const keys: string[] = [];
  for await (const u of client.listIncompleteUploads(bucket, "", true)) keys.push((u as { key: string }).key);
  return keys;
}

objectStoreContract("minio", async () => store(`contract-${randomBytes(4).toString("hex")}`), {
  assertNoLeftovers: async (s) => expect(await incompleteUploads(s)).toEqual([]),
});

describe("MinioObjectStore specifics", () => {
  it("startMinio says how to get a missing binary", async () => {
    await expect(startMinio({ binary: "/nonexistent/minio" })).rejects.toThrow(/scripts\/install-tools\.sh/);
  });

  it("is built by createObjectStore and creates its bucket in init()", async () => {
    const bucket = `created-${randomBytes(4).toString("hex")}`;
    const s = createObjectStore({ kind: "minio", endpoint: minio.endpoint, accessKey: minio.accessKey, secretKey: minio.secretKey, bucket });
    expect(s.kind).toBe("minio");
    expect(s.location).toBe(`${minio.endpoint}/${bucket}`);
    // Two stores racing to create the same bucket both succeed.
    await Promise.all([s.init(), store(bucket).init()]);
    await s.put("k", "v");
    expect(await (s as MinioObjectStore).client.bucketExists(bucket)).toBe(true);
    await s.close();
  });

  it("keeps concurrent multipart writers apart and applies conditions on complete", async () => {
    const s = store(`multipart-${randomBytes(4).toString("hex")}`, 5 * MiB);
    await s.init();
    const key = "mp/obj";
    // 4 writers, 2 parts each: minio-js's own putObject would resume one another's uploads here.
    const size = 5 * MiB + 123;
    const body = (i: number) =>
      Readable.from((function* () {
        for (let off = 0; off < size; off += 64 * 1024) yield Buffer.alloc(Math.min(64 * 1024, size - off), i);
      })());
    await Promise.all([1, 2, 3, 4].map((i) => s.put(key, body(i))));
    const data = await s.getBuffer(key);
    expect(data).toHaveLength(size);
    expect(data.every((b) => b === data[0])).toBe(true);

    // Create-only multipart race: one winner, and no upload left behind by the losers.
    const created = await Promise.allSettled([1, 2, 3].map((i) => s.put("mp/once", body(i), { ifNoneMatch: "*" })));
    expect(created.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    for (const r of created) if (r.status === "rejected") expect(r.reason).toBeInstanceOf(PreconditionFailedError);
    const current = await s.stat("mp/once");
    await expect(s.put("mp/once", body(9), { ifMatch: "0123456789abcdef0123456789abcdef-2" })).rejects.toBeInstanceOf(PreconditionFailedError);
    const swapped = await s.put("mp/once", body(9), { ifMatch: current!.etag });
    expect(swapped.etag).toBe((await s.stat("mp/once"))?.etag);
    expect(await collect(await s.get("mp/once", { start: size - 2 }))).toEqual(Buffer.from([9, 9]));
    expect(await incompleteUploads(s)).toEqual([]);
    await s.close();
  }, 120_000);
});

describe("the MinIO test server's drive check", () => {
  it("names the drive and what is writable when too little is, before any test writes", async () => {
    await expect(checkDriveSpace(minio.dataDir)).resolves.toBeUndefined();
    // more headroom than any drive has: the check must refuse and say why
    await expect(checkDriveSpace(minio.dataDir, 2 ** 60)).rejects.toThrow(
      new RegExp(`drive under ${minio.dataDir} has [0-9.]+ GiB free of [0-9.]+ GiB; MinIO refuses writes`),
    );
  });
});
