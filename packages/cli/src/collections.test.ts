/**
 * `glimpse collections …` against a real Data service and a real gateway (in this process, real
 * sockets, a filesystem store), the CLI's command functions run with captured stdout/stderr.
 * Search and duplicates go to a stand-in Ranking service behind the same gateway, which records
 * the requests it gets and answers canned results.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { collection as pb, invalidArgument, ranking } from "@glimpse/api";
import { build as buildData } from "@glimpse/data";
import { build as buildGateway, type RunningGateway } from "@glimpse/gateway";
import { bind, type RunningServer } from "@glimpse/rpc";
import { serve } from "@glimpse/runtime";
import { TEST_READ_KEY, TEST_WRITE_KEY, freePorts, testConfig } from "@glimpse/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main, progressLine, progressReporter, syncSummary } from "./collections.js";
import type { Io } from "./command.js";

const DEMO = resolve(import.meta.dirname, "../../../demo/images");
const demoPhotos = readdirSync(DEMO).filter((f) => f.endsWith(".jpg")).sort();

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

describe("glimpse collections (a real gateway and Data service; a stand-in Ranking)", () => {
  let root: string;
  let dataServer: RunningServer;
  let rankingServer: RunningServer;
  let gateway: RunningGateway;
  const searches: ranking.SearchCollectionRequest[] = [];

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), "glimpse-cli-collections-"));
    mkdirSync(join(root, "allowed"));
    rankingServer = await serve({
      name: "ranking",
      cfg: testConfig(),
      port: 0,
      servingOnStart: true,
      // as the real Ranking port: Connect over HTTP/1.1 too, which the gateway passes through (#24)
      rest: { ranking: ranking.RankingService },
      bindings: [
        bind(ranking.RankingService, {
          async searchCollection(req) {
            searches.push(req);
            if (req.name === "collections/broken") throw invalidArgument([{ field: "filter.camera_model", description: "no such camera in this collection", reason: "UNKNOWN_CAMERA" }]);
            return create(ranking.SearchCollectionResponseSchema, {
              modelVersion: "m-test",
              collectionVersion: "00112233aabbccdd",
              results: [
                { rank: 1, score: 0.91234, photoId: "0123456789abcdef", path: "day1/dog.jpg", takenTime: timestampFromDate(new Date("2020-05-01T10:00:00Z")), cameraModel: "Pixel 8", width: 224, height: 224 },
                { rank: 2, score: 0.5, photoId: "fedcba9876543210", path: "beach.jpg", cameraModel: "" },
              ],
            });
          },
          async listCollectionDuplicates() {
            return create(ranking.ListCollectionDuplicatesResponseSchema, {
              nearThreshold: 0.95,
              collectionVersion: "00112233aabbccdd",
              modelVersion: "m-test",
              groups: [
                { kind: pb.DuplicateGroup_Kind.EXACT, photoIds: ["0123456789abcdef"], paths: ["a.jpg", "copy/a.jpg"] },
                { kind: pb.DuplicateGroup_Kind.NEAR, photoIds: ["1111111111111111", "2222222222222222"], paths: ["b.jpg", "b-edit.jpg"], score: 0.975 },
              ],
            });
          },
        }),
      ],
    });
    const cfg = testConfig({
      GLIMPSE_SOURCE_ALLOWLIST: pathToFileURL(join(root, "allowed")).href,
      GLIMPSE_COLLECTION_RELIST_MS: "60000",
      GLIMPSE_RANKING_URL: rankingServer.url,
    });
    dataServer = await buildData(cfg, { port: 0 });
    gateway = await buildGateway(cfg, {
      port: 0,
      targets: [
        { name: "data", url: dataServer.url },
        { name: "ranking", url: rankingServer.url },
        { name: "training", url: dataServer.url },
      ],
    });
  });

  afterAll(async () => {
    await gateway?.close(100);
    await dataServer?.close(100);
    await rankingServer?.close(100);
  });

  async function cli(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<Run> {
    let stdout = "";
    let stderr = "";
    const io: Io = {
      stdout: { write: (s: string) => (stdout += s) },
      stderr: { write: (s: string) => (stderr += s) },
      env: opts.env ?? { GLIMPSE_URL: `http://127.0.0.1:${gateway.port}`, GLIMPSE_API_KEY: TEST_WRITE_KEY },
      cwd: opts.cwd ?? root,
    };
    const code = await main(args, io);
    return { code, stdout, stderr };
  }

  it("create --folder follows the first sync and prints what it did", async () => {
    const dir = join(root, "allowed", "holiday");
    mkdirSync(join(dir, "day1"), { recursive: true });
    for (const f of demoPhotos.slice(0, 6)) copyFileSync(join(DEMO, f), join(dir, "day1", f));
    copyFileSync(join(DEMO, demoPhotos[0]!), join(dir, "copy-of-first.jpg"));
    writeFileSync(join(dir, "notes.txt"), "shopping list: eggs, milk\n");
    writeFileSync(join(dir, "empty.jpg"), "");

    // a relative folder is made absolute (against the current directory) before it is sent
    const r = await cli(["create", "holiday", "--folder", "allowed/holiday", "--display-name", "Summer 2024"]);
    expect(r.stderr).not.toContain("error");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("collections/holiday: synced");
    expect(r.stdout).toMatch(/version\s+[0-9a-f]{16}/);
    expect(r.stdout).toMatch(/photos\s+6 indexed of 9 files found/);
    expect(r.stdout).toMatch(/skipped\s+2 \(EMPTY 1, NOT_AN_IMAGE 1\)/);
    expect(r.stdout).toMatch(/duplicates\s+1 exact/);
    expect(r.stdout).toContain("being embedded: search answers once its index is stored");
  });

  it("list and get, as tables and as JSON", async () => {
    const list = await cli(["list", "--json"]);
    expect(list.code).toBe(0);
    const listed = JSON.parse(list.stdout) as { collections: { name: string; state: string; counts: Record<string, unknown> }[] };
    const holiday = listed.collections.find((c) => c.name === "collections/holiday")!;
    expect(holiday.state).toBe("STATE_READY");
    expect(holiday.counts).toMatchObject({ found: "9", indexed: "6", skipped: "2", exact_duplicates: "1", skipped_by_reason: { EMPTY: "1", NOT_AN_IMAGE: "1" } });

    const get = await cli(["get", "holiday", "--json"]);
    expect(get.code).toBe(0);
    const got = JSON.parse(get.stdout) as { collection: { display_name: string; source: { folder: { path: string } }; version: string } };
    expect(got.collection.display_name).toBe("Summer 2024");
    expect(got.collection.source.folder.path).toBe(join(root, "allowed", "holiday"));
    expect(got.collection.version).toMatch(/^[0-9a-f]{16}$/);

    const table = await cli(["list"]);
    expect(table.stdout.split("\n")[0]).toMatch(/^ID\s+STATE\s+SOURCE\s+PHOTOS\s+SKIPPED\s+VERSION\s+SEARCHABLE\s+LAST SYNC$/);
    expect(table.stdout).toMatch(new RegExp(`holiday\\s+ready\\s+folder ${join(root, "allowed", "holiday")}\\s+6\\s+2\\s+${got.collection.version}\\s+no\\s+\\d{4}-`));

    const one = await cli(["get", "collections/holiday"]);
    expect(one.stdout).toMatch(/state\s+ready/);
    expect(one.stdout).toMatch(/source\s+folder \//);
    expect(one.stdout).toMatch(/last sync\s+\d{4}-\d{2}-\d{2}T/);
  });

  it("photos and skipped files", async () => {
    const photos = await cli(["photos", "holiday"]);
    expect(photos.code).toBe(0);
    expect(photos.stdout.split("\n")[0]).toMatch(/^PHOTO ID\s+PATH\s+SIZE\s+PIXELS\s+TAKEN\s+CAMERA$/);
    expect(photos.stdout).toMatch(/copy-of-first\.jpg \(\+1 duplicate\)/);
    expect(photos.stdout).toMatch(/6 photos in version [0-9a-f]{16}/);
    const skipped = await cli(["photos", "holiday", "--skipped"]);
    expect(skipped.stdout).toMatch(/notes\.txt\s+NOT_AN_IMAGE/);
    expect(skipped.stdout).toMatch(/empty\.jpg\s+EMPTY/);
    const json = JSON.parse((await cli(["photos", "holiday", "--json"])).stdout) as { photos: { photo_id: string }[]; version: string };
    expect(json.photos).toHaveLength(6);
  });

  it("sync picks up a new file", async () => {
    copyFileSync(join(DEMO, demoPhotos[10]!), join(root, "allowed", "holiday", "new.jpg"));
    const r = await cli(["sync", "holiday"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/photos\s+7 indexed of 10 files found/);
  });

  it("add uploads each file; a bad one is reported with its reason and the others still go (exit 1); rm removes a photo and a collection", async () => {
    const created = await cli(["create", "inbox", "--uploads"]);
    expect(created.code).toBe(0);
    const files = join(root, "to-upload");
    mkdirSync(files);
    copyFileSync(join(DEMO, demoPhotos[40]!), join(files, "good.jpg"));
    writeFileSync(join(files, "bad.jpg"), "this is not a photo at all");
    copyFileSync(join(DEMO, demoPhotos[41]!), join(files, "also-good.jpg"));

    const r = await cli(["add", "inbox", "to-upload/good.jpg", "to-upload/bad.jpg", "to-upload/missing.jpg", "to-upload/also-good.jpg"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/added {2}to-upload\/good\.jpg → [0-9a-f]{16}/);
    expect(r.stdout).toMatch(/added {2}to-upload\/also-good\.jpg → [0-9a-f]{16}/);
    expect(r.stdout).toContain("2 added, 2 failed");
    expect(r.stderr).toMatch(/failed to-upload\/bad\.jpg: invalid_argument: /);
    expect(r.stderr).toMatch(/\n {2}image: .*\(NOT_AN_IMAGE\)/);
    expect(r.stderr).toContain("failed to-upload/missing.jpg: cannot read it (ENOENT)");

    const listed = JSON.parse((await cli(["photos", "inbox", "--json"])).stdout) as { photos: { photo_id: string; path: string }[] };
    expect(listed.photos.map((p) => p.path).sort()).toEqual(["also-good.jpg", "good.jpg"]);

    const good = listed.photos.find((p) => p.path === "good.jpg")!;
    const rmPhoto = await cli(["rm", "inbox", good.photo_id]);
    expect(rmPhoto.code).toBe(0);
    expect(rmPhoto.stdout).toContain(`deleted collections/inbox/photos/${good.photo_id}`);
    const after = JSON.parse((await cli(["get", "inbox", "--json"])).stdout) as { collection: { counts: { indexed?: string } } };
    expect(after.collection.counts.indexed).toBe("1");

    const rm = await cli(["rm", "inbox"]);
    expect(rm.code).toBe(0);
    const names = (JSON.parse((await cli(["list", "--json"])).stdout) as { collections: { name: string }[] }).collections.map((c) => c.name);
    expect(names).not.toContain("collections/inbox");
    const gone = await cli(["get", "inbox"]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/^error: not_found: /);
  });

  it("usage errors exit 2 and say what is wrong", async () => {
    const cases: [string[], RegExp][] = [
      [["create", "x"], /exactly one source/],
      [["create", "x", "--uploads", "--folder", "/tmp"], /exactly one source/],
      [["create"], /missing the collection id/],
      [["search", "holiday"], /exactly one query/],
      [["search", "holiday", "a dog", "--like", "0123456789abcdef"], /exactly one query/],
      [["search", "holiday", "a dog", "--top-k", "lots"], /--top-k takes a whole number/],
      [["search", "holiday", "a dog", "--after", "yesterday"], /--after takes an ISO date/],
      [["get", "holiday", "--frobnicate"], /Unknown option '--frobnicate'/],
      [["get", "a", "b"], /unexpected argument "b"/],
      [["add", "inbox"], /missing the files to add/],
    ];
    for (const [args, message] of cases) {
      const r = await cli(args);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stderr, args.join(" ")).toMatch(message);
      expect(r.stderr).toContain("usage: glimpse collections ");
    }
    const unknown = await cli(["frobnicate"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("unknown command");
    const none = await cli([]);
    expect(none.code).toBe(2);
    const help = await cli(["--help"]);
    expect(help.code).toBe(0);
    for (const c of ["create", "list", "get", "sync", "search", "add", "photos", "duplicates", "rm"]) expect(help.stdout).toContain(`\n  ${c}`);
    const sub = await cli(["search", "--help"]);
    expect(sub.code).toBe(0);
    expect(sub.stdout).toContain("usage: glimpse collections search <id>");
  });

  it("without a key a write says how to get one; a read key or a wrong key says so too; the key file npm start keeps works", async () => {
    const cwd = mkdtempSync(join(tmpdir(), "glimpse-cli-cwd-"));
    const url = `http://127.0.0.1:${gateway.port}`;
    const none = await cli(["create", "nokey", "--uploads"], { env: { GLIMPSE_URL: url }, cwd });
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/^error: unauthenticated: /);
    expect(none.stderr).toContain("this call needs an API key: set GLIMPSE_API_KEY or pass --api-key");

    const wrong = await cli(["create", "nokey", "--uploads", "--api-key", "not-a-key"], { env: { GLIMPSE_URL: url }, cwd });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain("the gateway refused the API key from --api-key");

    const read = await cli(["create", "nokey", "--uploads"], { env: { GLIMPSE_URL: url, GLIMPSE_API_KEY: TEST_READ_KEY }, cwd });
    expect(read.code).toBe(1);
    expect(read.stderr).toMatch(/^error: permission_denied: /);
    expect(read.stderr).toContain("may only read");

    // reads need no key
    expect((await cli(["list"], { env: { GLIMPSE_URL: url }, cwd })).code).toBe(0);

    mkdirSync(join(cwd, ".data"));
    writeFileSync(join(cwd, ".data", "api-key"), `${TEST_WRITE_KEY}\n`);
    const withFile = await cli(["create", "keyfile", "--uploads", "--no-wait", "--gateway", url], { env: {}, cwd });
    expect(withFile.stderr).toBe("");
    expect(withFile.code).toBe(0);
    expect(withFile.stdout).toMatch(/name\s+collections\/keyfile/);
    expect((await cli(["rm", "keyfile"])).code).toBe(0);
  });

  it("an unreachable gateway: says which URL and how to start one", async () => {
    const [port] = await freePorts(1);
    const r = await cli(["list"], { env: { GLIMPSE_URL: `http://127.0.0.1:${port}` } });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`error: cannot reach the Glimpse gateway at http://127.0.0.1:${port} (ECONNREFUSED)`);
    expect(r.stderr).toContain("npm start");
  });

  it("a bad id: the server's field violations, one a line", async () => {
    const r = await cli(["create", "Bad_Id", "--folder", "/"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: (invalid_argument|permission_denied): /);
    expect(r.stderr).toMatch(/\n {2}collection_id: must match/);
  });

  it("search: text with filters, a photo, like; the table and the line saying who answered", async () => {
    searches.length = 0;
    const r = await cli(["search", "holiday", "a dog on the beach", "--top-k", "2", "--min-score", "0.25", "--after", "2020-01-01", "--before", "2021-06-30T12:00:00Z", "--path-prefix", "day1/", "--camera", "Pixel 8"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const req = searches[0]!;
    expect(req.name).toBe("collections/holiday");
    expect(req.query).toEqual({ case: "text", value: "a dog on the beach" });
    expect(req.topK).toBe(2);
    expect(req.minScore).toBeCloseTo(0.25);
    expect(timestampDate(req.filter!.takenAfter!).toISOString()).toBe("2020-01-01T00:00:00.000Z");
    expect(timestampDate(req.filter!.takenBefore!).toISOString()).toBe("2021-06-30T12:00:00.000Z");
    expect(req.filter!.pathPrefix).toBe("day1/");
    expect(req.filter!.cameraModel).toBe("Pixel 8");
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^RANK\s+SCORE\s+PHOTO ID\s+PATH\s+TAKEN\s+CAMERA$/);
    expect(lines[1]).toMatch(/^\s+1\s+0\.912\s+0123456789abcdef\s+day1\/dog\.jpg\s+2020-05-01\s+Pixel 8$/);
    expect(lines[2]).toMatch(/^\s+2\s+0\.500\s+fedcba9876543210\s+beach\.jpg$/);
    expect(lines.at(-1)).toBe("answered by model m-test from collection version 00112233aabbccdd");

    const photo = join(DEMO, demoPhotos[3]!);
    expect((await cli(["search", "holiday", "--photo", photo])).code).toBe(0);
    expect(searches[1]!.query.case).toBe("image");
    expect(Buffer.from(searches[1]!.query.value as Uint8Array).equals(readFileSync(photo))).toBe(true);
    expect(searches[1]!.filter).toBeUndefined();

    const like = await cli(["search", "holiday", "--like", "0123456789abcdef", "--json"]);
    expect(searches[2]!.query).toEqual({ case: "photoId", value: "0123456789abcdef" });
    const json = JSON.parse(like.stdout) as { results: { photo_id: string; score: number; taken_time?: string }[]; model_version: string; collection_version: string };
    expect(json.results[0]).toMatchObject({ photo_id: "0123456789abcdef", taken_time: "2020-05-01T10:00:00Z" });
    expect(json.collection_version).toBe("00112233aabbccdd");

    // limits are checked by the servers: the field violation comes back, one a line
    const tooMany = await cli(["search", "holiday", "a dog", "--top-k", "500"]);
    expect(tooMany.code).toBe(1);
    expect(tooMany.stderr).toMatch(/^error: invalid_argument: /);
    expect(tooMany.stderr).toMatch(/\n {2}top_k: /);
    const broken = await cli(["search", "broken", "a dog", "--camera", "nope"]);
    expect(broken.code).toBe(1);
    expect(broken.stderr).toContain("\n  filter.camera_model: no such camera in this collection (UNKNOWN_CAMERA)");
  });

  it("duplicates: exact and near groups", async () => {
    const r = await cli(["duplicates", "holiday"]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^KIND\s+SCORE\s+PHOTOS\s+PATHS$/);
    expect(lines[1]).toMatch(/^exact\s+0123456789abcdef\s+a\.jpg, copy\/a\.jpg$/);
    expect(lines[2]).toMatch(/^near\s+0\.975\s+1111111111111111, 2222222222222222\s+b\.jpg, b-edit\.jpg$/);
    expect(lines.at(-1)).toBe("collection version 00112233aabbccdd · model m-test · near at cosine ≥ 0.950");
  });
});

describe("progress and summaries", () => {
  const progress = (stage: pb.SyncProgress_Stage, done: number, total: number, rate = 0, etaS?: number) =>
    create(pb.CollectionSchema, {
      name: "collections/x",
      state: pb.Collection_State.SYNCING,
      sync: { stage, done: BigInt(done), total: BigInt(total), photosPerSecond: rate, ...(etaS !== undefined ? { eta: { seconds: BigInt(etaS) } } : {}) },
    });

  it("draws the bar", () => {
    expect(progressLine(progress(pb.SyncProgress_Stage.INGEST, 1234, 5000, 85.31, 44).sync!, 10)).toBe("ingest  [##--------] 1234/5000 photos · 85.3/s · ETA 0:44");
    expect(progressLine(progress(pb.SyncProgress_Stage.INGEST, 5, 10, 1, 3725).sync!, 10)).toBe("ingest  [#####-----] 5/10 photos · 1.0/s · ETA 1:02:05");
    expect(progressLine(progress(pb.SyncProgress_Stage.LIST, 0, 0).sync!)).toBe("list    reading the source…");
  });

  it("on a terminal: one line redrawn; otherwise a line per stage and per ~10 %", () => {
    let tty = "";
    const bar = progressReporter({ write: (s: string) => (tty += s), isTTY: true, columns: 100 });
    bar.update(progress(pb.SyncProgress_Stage.INGEST, 1, 100));
    bar.update(progress(pb.SyncProgress_Stage.INGEST, 2, 100));
    bar.end();
    expect(tty).not.toContain("\n");
    expect(tty.split("\r\x1b[2K")).toHaveLength(4);

    let log = "";
    const lines = progressReporter({ write: (s: string) => (log += s) });
    lines.update(progress(pb.SyncProgress_Stage.LIST, 0, 0));
    for (let i = 0; i <= 100; i++) lines.update(progress(pb.SyncProgress_Stage.INGEST, i, 100));
    lines.update(progress(pb.SyncProgress_Stage.PUBLISH, 0, 1));
    lines.update(progress(pb.SyncProgress_Stage.PUBLISH, 1, 1));
    lines.end();
    const out = log.trimEnd().split("\n");
    expect(out[0]).toMatch(/^list/);
    expect(out.filter((l) => l.startsWith("ingest"))).toHaveLength(11); // 0 %, 10 %, …, 100 %
    expect(out.filter((l) => l.startsWith("publish"))).toHaveLength(1);
  });

  it("says whether search serves the new version", () => {
    const c = (servingVersion: string) =>
      create(pb.CollectionSchema, { name: "collections/x", state: pb.Collection_State.READY, version: "aaaaaaaaaaaaaaaa", servingVersion, modelVersion: servingVersion ? "m7" : "", counts: { indexed: 3n, found: 3n } });
    expect(syncSummary(c(""))).toContain("being embedded: search answers once its index is stored");
    expect(syncSummary(c("aaaaaaaaaaaaaaaa"))).toMatch(/search\s+serves version aaaaaaaaaaaaaaaa \(model m7\)$/);
    expect(syncSummary(c("bbbbbbbbbbbbbbbb"))).toContain("serves version bbbbbbbbbbbbbbbb (model m7); aaaaaaaaaaaaaaaa is being embedded");
    const failed = create(pb.CollectionSchema, { name: "collections/x", state: pb.Collection_State.FAILED, error: "folder /x is gone", version: "aaaaaaaaaaaaaaaa" });
    expect(syncSummary(failed)).toMatch(/^collections\/x: sync failed: folder \/x is gone/);
  });
});
