/**
 * `glimpse collections …` (alias `col`): a user's own photos — a folder, a bucket prefix, URLs
 * or uploads — ingested by the Data service and searched by Ranking, driven through the
 * gateway (Connect over HTTP/1.1; see client.ts for the URL and the API key).
 *
 * Every command prints a table for people, or with --json the response message as protobuf
 * JSON with snake_case names, for scripts. Exit codes: 0 ok, 1 failed (an RPC error, a failed
 * sync, a file that could not be added), 2 bad usage.
 */
import { readFile } from "node:fs/promises";
import { basename, resolve } from "node:path";
import { create, toJson, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { collection as pb, data, ranking } from "@glimpse/api";
import { STREAM_CALL, describeError } from "./client.js";
import { EXIT, UsageError, bytes, clock, commandOf, dateOnly, dateTime, dispatch, durationMs, fields, positionals, printJson, progressOut, table, type Command, type Ctx, type Io, type Writer } from "./command.js";


export const USAGE = `usage: glimpse collections <command> [options]     (alias: glimpse col)

Your own photos — a folder, a bucket prefix, URLs or uploads — indexed and searched by text,
by photo and "more like this", through the gateway.

commands:
  create <id> (--folder <path> | --prefix <bucket prefix> | --uploads | --url <https url>…)
         [--watch] [--display-name <s>] [--no-wait]
                        create a collection and follow its first sync (--no-wait: return at once);
                        --url may be repeated; --watch keeps it in step with its source
  list                  the collections
  get <id>              one collection: state, source, counts, versions, last sync, error
  sync <id> [--no-wait] sync now and follow it (only new or changed files are read)
  search <id> ("text query" | --photo <file> | --like <photo id>)
         [--top-k N] [--min-score X] [--after <ISO date>] [--before <ISO date>]
         [--path-prefix <p>] [--camera <model>]
                        search the photos by text, by a photo, or like one of them
  add <id> <file>…      upload photos to an --uploads collection
  photos <id> [--skipped]
                        the photos of the published version, or the skipped files and why
  duplicates <id>       groups of the same picture: exact (same bytes) and near
  rm <id> [<photo id>]  delete a collection (never its source's files), or one uploaded photo

options of every command:
  --json                print the response as JSON (protobuf JSON, snake_case names)
  --gateway <url>       the gateway (env GLIMPSE_URL; default http://127.0.0.1:8000)
  --api-key <key>       the API key (env GLIMPSE_API_KEY; default: the key \`npm start\` keeps in
                        .data/api-key); needed for create, sync, add and rm

exit codes: 0 ok, 1 failed, 2 usage`;

/** Runs `glimpse collections <argv…>`; resolves to the exit code. */
export function main(argv: string[], io: Io): Promise<number> {
  return dispatch(USAGE, COMMANDS, argv, io);
}

const command = commandOf("glimpse collections");

/** "holiday" or "collections/holiday" → "collections/holiday". */
export const collectionName = (id: string): string => (id.startsWith("collections/") ? id : `collections/${id}`);
const collectionId = (id: string): string => id.replace(/^collections\//, "");

const STATE: Record<pb.Collection_State, string> = {
  [pb.Collection_State.UNSPECIFIED]: "unknown",
  [pb.Collection_State.SYNCING]: "syncing",
  [pb.Collection_State.READY]: "ready",
  [pb.Collection_State.FAILED]: "failed",
};

const STAGE: Record<pb.SyncProgress_Stage, string> = {
  [pb.SyncProgress_Stage.UNSPECIFIED]: "sync",
  [pb.SyncProgress_Stage.LIST]: "list",
  [pb.SyncProgress_Stage.INGEST]: "ingest",
  [pb.SyncProgress_Stage.PUBLISH]: "publish",
};

export function sourceText(s: pb.CollectionSource | undefined): string {
  switch (s?.kind.case) {
    case "folder":
      return `folder ${s.kind.value.path}`;
    case "bucket": {
      const b = s.kind.value;
      return `bucket ${b.bucket ? `${b.endpoint ? `${b.endpoint}/` : ""}${b.bucket}/` : ""}${b.prefix || "(whole bucket)"}`;
    }
    case "urls":
      return `${s.kind.value.urls.length} URL${s.kind.value.urls.length === 1 ? "" : "s"}`;
    case "uploads":
      return "uploads";
    default:
      return "";
  }
}

function skippedText(counts: pb.CollectionCounts | undefined): string {
  const by = Object.entries(counts?.skippedByReason ?? {}).sort(([a], [b]) => a.localeCompare(b));
  const n = counts?.skipped ?? 0n;
  return by.length === 0 ? String(n) : `${n} (${by.map(([r, k]) => `${r} ${k}`).join(", ")})`;
}

/** Whether search serves the published version yet. */
export function servingText(c: pb.Collection): string {
  if (!c.servingVersion) {
    if (c.version) return "being embedded: search answers once its index is stored";
    return c.state === pb.Collection_State.SYNCING ? "nothing yet: the first sync is running" : "nothing yet: no version is published";
  }
  const model = c.modelVersion ? ` (model ${c.modelVersion})` : "";
  if (c.servingVersion === c.version || !c.version) return `serves version ${c.servingVersion}${model}`;
  return `serves version ${c.servingVersion}${model}; ${c.version} is being embedded: search answers from it once its index is stored`;
}

/** The line a running sync's progress is drawn as: "ingest [#####-----] 1234/5000 photos · 85.3/s · ETA 0:44". */
export function progressLine(s: pb.SyncProgress, width = 20): string {
  const stage = STAGE[s.stage] ?? "sync";
  const done = Number(s.done);
  const total = Number(s.total);
  if (s.stage === pb.SyncProgress_Stage.LIST) return `${stage.padEnd(7)} reading the source…`;
  if (s.stage === pb.SyncProgress_Stage.PUBLISH) return `${stage.padEnd(7)} storing the new version (${s.changed} new or changed)…`;
  let line = `${stage.padEnd(7)} `;
  if (total > 0) {
    const full = Math.round(Math.min(1, done / total) * width);
    line += `[${"#".repeat(full)}${"-".repeat(width - full)}] ${done}/${total} photos`;
  } else line += `${done} photos`;
  if (s.photosPerSecond > 0) line += ` · ${s.photosPerSecond.toFixed(1)}/s`;
  if (s.eta && done < total) line += ` · ETA ${clock(durationMs(s.eta))}`;
  return line;
}

/**
 * Progress on stderr: on a terminal one line redrawn in place; otherwise a line at each stage
 * change and each further ~10 %.
 */
export function progressReporter(out: Writer): { update(c: pb.Collection): void; end(): void } {
  const progress = progressOut(out);
  return {
    update(c) {
      const s = c.sync;
      if (!s) return;
      // listing and publishing have no count worth a line of their own: one line when they start
      const total = s.stage === pb.SyncProgress_Stage.INGEST ? Number(s.total) : 0;
      const tenth = total > 0 ? Math.floor((Number(s.done) / total) * 10) : 0;
      progress.show(progressLine(s), `${s.stage}/${tenth}`);
    },
    end: progress.end,
  };
}

/** What a finished sync did, for people. */
export function syncSummary(c: pb.Collection): string {
  const counts = c.counts;
  const head = c.state === pb.Collection_State.FAILED ? `${c.name}: sync failed: ${c.error}` : `${c.name}: synced`;
  const pairs: [string, string][] = [
    ["version", c.version || "(none published)"],
    ["photos", `${counts?.indexed ?? 0n} indexed of ${counts?.found ?? 0n} files found`],
    ["skipped", skippedText(counts)],
    ["duplicates", `${counts?.exactDuplicates ?? 0n} exact${counts?.nearDuplicates ? `, ${counts.nearDuplicates} near` : ""}`],
    ["search", servingText(c)],
  ];
  if (c.state === pb.Collection_State.FAILED && c.version) pairs[0] = ["version", `${c.version} (the previous version, still published)`];
  return `${head}\n${indent(fields(pairs))}`;
}

const indent = (s: string, by = "  ") => s.split("\n").map((l) => by + l).join("\n");

function describeCollection(c: pb.Collection): string {
  const counts = c.counts;
  const pairs: [string, string][] = [
    ["name", c.name],
    ["display name", c.displayName],
    ["source", sourceText(c.source)],
    ["watch", c.watch ? "yes" : "no"],
    ["state", STATE[c.state] ?? String(c.state)],
    ["photos", `${counts?.indexed ?? 0n} indexed of ${counts?.found ?? 0n} files found`],
    ["skipped", skippedText(counts)],
    ["duplicates", `${counts?.exactDuplicates ?? 0n} exact, ${counts?.nearDuplicates ?? 0n} near`],
    ["version", c.version || "(none published yet)"],
    ["search", servingText(c)],
    ["created", dateTime(c.createTime)],
    ["last sync", dateTime(c.lastSyncTime) || "never"],
  ];
  if (c.sync) pairs.push(["sync", progressLine(c.sync)]);
  if (c.error) pairs.push(["error", c.error]);
  return fields(pairs);
}

// ---------------------------------------------------------------------------------------------
// following a sync

/** Follows WatchCollection(until_synced) with progress on stderr; the collection when the sync ends. */
async function follow(ctx: Ctx, name: string): Promise<pb.Collection> {
  const progress = progressReporter(ctx.io.stderr);
  let last: pb.Collection | undefined;
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        for await (const m of ctx.clients.data.watchCollection({ name, untilSynced: true }, STREAM_CALL)) {
          if (!m.collection) continue;
          last = m.collection;
          progress.update(last);
        }
        break;
      } catch (err) {
        // A stream cut off half-way (the gateway or the service restarted): follow it again.
        if (last === undefined || attempt >= 5 || !(err instanceof ConnectError) || err.code !== Code.Unavailable) throw err;
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  } finally {
    progress.end();
  }
  if (!last) throw new Error(`the watch of ${name} ended without a message`);
  return last;
}

/** After create or sync: wait (unless --no-wait), then print the summary or the JSON. */
async function finish<D extends DescMessage>(ctx: Ctx, c: pb.Collection, wait: boolean, schema: D, wrap: (c: pb.Collection) => MessageShape<D>): Promise<number> {
  const final = wait ? await follow(ctx, c.name) : c;
  if (ctx.json) printJson(ctx, schema, wrap(final));
  else if (wait) ctx.out(syncSummary(final));
  else ctx.out(`${describeCollection(final)}\n\nfollow it with: glimpse collections get ${collectionId(final.name)}`);
  return final.state === pb.Collection_State.FAILED ? EXIT.failed : EXIT.ok;
}

// ---------------------------------------------------------------------------------------------
// the commands

const createCommand = command(
  "create <id> (--folder <path> | --prefix <bucket prefix> | --uploads | --url <https url>…) [--watch] [--display-name <s>] [--no-wait]",
  {
    folder: { type: "string" },
    prefix: { type: "string" },
    uploads: { type: "boolean" },
    url: { type: "string", multiple: true },
    watch: { type: "boolean" },
    "display-name": { type: "string" },
    "no-wait": { type: "boolean" },
  },
  async (ctx, v, p) => {
    const [id] = positionals(p, 1, 1, "the collection id");
    const given = [v.folder !== undefined, v.prefix !== undefined, v.uploads === true, (v.url?.length ?? 0) > 0].filter(Boolean).length;
    if (given !== 1) throw new UsageError("give exactly one source: --folder, --prefix, --uploads or --url");
    const source: pb.CollectionSource["kind"] =
      v.folder !== undefined
        ? { case: "folder", value: create(pb.FolderSourceSchema, { path: resolve(ctx.cwd, v.folder) }) }
        : v.prefix !== undefined
          ? { case: "bucket", value: create(pb.BucketSourceSchema, { prefix: v.prefix }) }
          : v.uploads
            ? { case: "uploads", value: create(pb.UploadsSourceSchema) }
            : { case: "urls", value: create(pb.UrlsSourceSchema, { urls: v.url ?? [] }) };
    const res = await ctx.clients.data.createCollection({
      collectionId: collectionId(id!),
      collection: {
        source: { kind: source },
        ...(v.watch ? { watch: true } : {}),
        ...(v["display-name"] !== undefined ? { displayName: v["display-name"] } : {}),
      },
    });
    return finish(ctx, res.collection!, !v["no-wait"], data.CreateCollectionResponseSchema, (c) => create(data.CreateCollectionResponseSchema, { collection: c }));
  },
);

const syncCommand = command("sync <id> [--no-wait]", { "no-wait": { type: "boolean" } }, async (ctx, v, p) => {
  const [id] = positionals(p, 1, 1, "the collection id");
  const res = await ctx.clients.data.syncCollection({ name: collectionName(id!) });
  return finish(ctx, res.collection!, !v["no-wait"], data.SyncCollectionResponseSchema, (c) => create(data.SyncCollectionResponseSchema, { collection: c }));
});

const listCommand = command("list", {}, async (ctx, _v, p) => {
  positionals(p, 0, 0, "");
  const all = create(data.ListCollectionsResponseSchema);
  let pageToken = "";
  do {
    const page = await ctx.clients.data.listCollections({ pageSize: 100, pageToken });
    all.collections.push(...page.collections);
    pageToken = page.nextPageToken;
  } while (pageToken);
  if (ctx.json) {
    printJson(ctx, data.ListCollectionsResponseSchema, all);
    return EXIT.ok;
  }
  if (all.collections.length === 0) {
    ctx.out("no collections yet: create one with `glimpse collections create <id> --folder <path>`");
    return EXIT.ok;
  }
  const rows = all.collections.map((c) => [
    collectionId(c.name),
    STATE[c.state] ?? String(c.state),
    sourceText(c.source),
    String(c.counts?.indexed ?? 0n),
    String(c.counts?.skipped ?? 0n),
    c.version || "-",
    c.servingVersion ? (c.servingVersion === c.version ? "yes" : c.servingVersion) : "no",
    dateTime(c.lastSyncTime) || "never",
  ]);
  ctx.out(table(["ID", "STATE", "SOURCE", "PHOTOS", "SKIPPED", "VERSION", "SEARCHABLE", "LAST SYNC"], rows, [3, 4]));
  return EXIT.ok;
});

const getCommand = command("get <id>", {}, async (ctx, _v, p) => {
  const [id] = positionals(p, 1, 1, "the collection id");
  const res = await ctx.clients.data.getCollection({ name: collectionName(id!) });
  if (ctx.json) printJson(ctx, data.GetCollectionResponseSchema, res);
  else ctx.out(describeCollection(res.collection!));
  return EXIT.ok;
});

const photosCommand = command("photos <id> [--skipped]", { skipped: { type: "boolean" } }, async (ctx, v, p) => {
  const [id] = positionals(p, 1, 1, "the collection id");
  const skipped = v.skipped === true;
  const all = create(data.ListPhotosResponseSchema);
  let pageToken = "";
  do {
    const page = await ctx.clients.data.listPhotos({ parent: collectionName(id!), pageSize: 1000, pageToken, skipped });
    all.photos.push(...page.photos);
    all.skipped.push(...page.skipped);
    all.version = page.version;
    pageToken = page.nextPageToken;
  } while (pageToken);
  if (ctx.json) {
    printJson(ctx, data.ListPhotosResponseSchema, all);
    return EXIT.ok;
  }
  if (skipped) {
    if (all.skipped.length > 0) ctx.out(table(["PATH", "REASON", "MESSAGE"], all.skipped.map((s) => [s.path, s.reason, s.message])));
    ctx.out(`${all.skipped.length} skipped file${all.skipped.length === 1 ? "" : "s"} in version ${all.version}`);
    return EXIT.ok;
  }
  const rows = all.photos.map((ph) => [
    ph.photoId,
    ph.path + (ph.duplicatePaths.length > 0 ? ` (+${ph.duplicatePaths.length} duplicate${ph.duplicatePaths.length === 1 ? "" : "s"})` : ""),
    bytes(ph.sizeBytes),
    `${ph.width}×${ph.height}`,
    dateOnly(ph.takenTime),
    ph.cameraModel,
  ]);
  if (rows.length > 0) ctx.out(table(["PHOTO ID", "PATH", "SIZE", "PIXELS", "TAKEN", "CAMERA"], rows, [2]));
  ctx.out(`${all.photos.length} photo${all.photos.length === 1 ? "" : "s"} in version ${all.version}`);
  return EXIT.ok;
});

const duplicatesCommand = command("duplicates <id>", {}, async (ctx, _v, p) => {
  const [id] = positionals(p, 1, 1, "the collection id");
  const res = await ctx.clients.ranking.listCollectionDuplicates({ parent: collectionName(id!) });
  if (ctx.json) {
    printJson(ctx, ranking.ListCollectionDuplicatesResponseSchema, res);
    return EXIT.ok;
  }
  const rows = res.groups.map((g) => [
    g.kind === pb.DuplicateGroup_Kind.EXACT ? "exact" : g.kind === pb.DuplicateGroup_Kind.NEAR ? "near" : "?",
    g.kind === pb.DuplicateGroup_Kind.NEAR ? g.score.toFixed(3) : "",
    g.photoIds.join(", "),
    g.paths.join(", "),
  ]);
  ctx.out(rows.length > 0 ? table(["KIND", "SCORE", "PHOTOS", "PATHS"], rows, [1]) : "no duplicates");
  ctx.out(`collection version ${res.collectionVersion || "-"} · model ${res.modelVersion || "-"} · near at cosine ≥ ${res.nearThreshold.toFixed(3)}`);
  return EXIT.ok;
});

function integer(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new UsageError(`${flag} takes a whole number (got ${JSON.stringify(v)})`);
  return Number(v);
}

function number(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n)) throw new UsageError(`${flag} takes a number (got ${JSON.stringify(v)})`);
  return n;
}

function date(v: string | undefined, flag: string): Date | undefined {
  if (v === undefined) return undefined;
  const d = new Date(v);
  if (!/^\d{4}-\d{2}/.test(v) || Number.isNaN(d.getTime())) throw new UsageError(`${flag} takes an ISO date, e.g. 2024-07-01 or 2024-07-01T18:00:00Z (got ${JSON.stringify(v)})`);
  return d;
}

const searchCommand = command(
  'search <id> ("text query" | --photo <file> | --like <photo id>) [--top-k N] [--min-score X] [--after <ISO date>] [--before <ISO date>] [--path-prefix <p>] [--camera <model>]',
  {
    photo: { type: "string" },
    like: { type: "string" },
    "top-k": { type: "string" },
    "min-score": { type: "string" },
    after: { type: "string" },
    before: { type: "string" },
    "path-prefix": { type: "string" },
    camera: { type: "string" },
  },
  async (ctx, v, p) => {
    const [id, ...words] = positionals(p, 1, Infinity, "the collection id");
    const text = words.join(" ").trim();
    const given = [text !== "", v.photo !== undefined, v.like !== undefined].filter(Boolean).length;
    if (given !== 1) throw new UsageError('give exactly one query: a "text query", --photo <file> or --like <photo id>');
    const topK = integer(v["top-k"], "--top-k");
    const minScore = number(v["min-score"], "--min-score");
    const after = date(v.after, "--after");
    const before = date(v.before, "--before");
    let query: ranking.SearchCollectionRequest["query"];
    if (text) query = { case: "text", value: text };
    else if (v.like !== undefined) query = { case: "photoId", value: v.like };
    else {
      const file = resolve(ctx.cwd, v.photo!);
      let image: Buffer;
      try {
        image = await readFile(file);
      } catch (e) {
        throw new Error(`cannot read ${v.photo}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
      query = { case: "image", value: image };
    }
    const filter =
      after || before || v["path-prefix"] !== undefined || v.camera !== undefined
        ? create(ranking.PhotoFilterSchema, {
            ...(after ? { takenAfter: timestampFromDate(after) } : {}),
            ...(before ? { takenBefore: timestampFromDate(before) } : {}),
            ...(v["path-prefix"] !== undefined ? { pathPrefix: v["path-prefix"] } : {}),
            ...(v.camera !== undefined ? { cameraModel: v.camera } : {}),
          })
        : undefined;
    const req = create(ranking.SearchCollectionRequestSchema, {
      name: collectionName(id!),
      query,
      ...(topK !== undefined ? { topK } : {}),
      ...(minScore !== undefined ? { minScore } : {}),
      ...(filter ? { filter } : {}),
    });
    const res = await ctx.clients.ranking.searchCollection(req);
    if (ctx.json) {
      printJson(ctx, ranking.SearchCollectionResponseSchema, res);
      return EXIT.ok;
    }
    const rows = res.results.map((h) => [String(h.rank), h.score.toFixed(3), h.photoId, h.path, dateOnly(h.takenTime), h.cameraModel]);
    ctx.out(rows.length > 0 ? table(["RANK", "SCORE", "PHOTO ID", "PATH", "TAKEN", "CAMERA"], rows, [0, 1]) : "no photos matched");
    ctx.out(`answered by model ${res.modelVersion || "-"} from collection version ${res.collectionVersion || "-"}`);
    return EXIT.ok;
  },
);

/** Errors that are about one file (the others may still go); anything else stops the command. */
const PER_FILE = new Set([Code.InvalidArgument, Code.ResourceExhausted]);

const addCommand = command("add <id> <file>…", {}, async (ctx, _v, p) => {
  const [id, ...files] = positionals(p, 2, Infinity, p.length === 0 ? "the collection id and the files to add" : "the files to add");
  const parent = collectionName(id!);
  const added: data.CreatePhotoResponse[] = [];
  let failed = 0;
  for (const f of files) {
    let image: Buffer;
    try {
      image = await readFile(resolve(ctx.cwd, f));
    } catch (e) {
      failed++;
      ctx.err(`failed ${f}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
      continue;
    }
    try {
      const res = await ctx.clients.data.createPhoto({ parent, image, filename: basename(f) });
      added.push(res);
      if (!ctx.json) ctx.out(`added  ${f} → ${res.photo?.photoId ?? "?"}${res.photo && res.photo.path !== basename(f) ? ` (as ${res.photo.path})` : ""}`);
    } catch (e) {
      const err = ConnectError.from(e);
      if (!PER_FILE.has(err.code)) throw err;
      failed++;
      const [first, ...more] = describeError(err, ctx.settings);
      ctx.err(`failed ${f}: ${first!.replace(/^error: /, "")}`);
      for (const line of more) ctx.err(line);
    }
  }
  if (ctx.json) ctx.out(JSON.stringify(added.map((r) => toJson(data.CreatePhotoResponseSchema, r, { useProtoFieldName: true })), null, 2));
  else ctx.out(`${added.length} added${failed > 0 ? `, ${failed} failed` : ""}`);
  return failed > 0 ? EXIT.failed : EXIT.ok;
});

const rmCommand = command("rm <id> [<photo id>]", {}, async (ctx, _v, p) => {
  const [id, photo] = positionals(p, 1, 2, "the collection id");
  if (photo === undefined) {
    await ctx.clients.data.deleteCollection({ name: collectionName(id!) });
    if (ctx.json) printJson(ctx, data.DeleteCollectionResponseSchema, create(data.DeleteCollectionResponseSchema));
    else ctx.out(`deleted ${collectionName(id!)} (its source's files are untouched)`);
    return EXIT.ok;
  }
  const name = photo.includes("/") ? photo : `${collectionName(id!)}/photos/${photo}`;
  await ctx.clients.data.deletePhoto({ name });
  if (ctx.json) printJson(ctx, data.DeletePhotoResponseSchema, create(data.DeletePhotoResponseSchema));
  else ctx.out(`deleted ${name}`);
  return EXIT.ok;
});

const COMMANDS: Record<string, Command> = {
  create: createCommand,
  list: listCommand,
  ls: listCommand,
  get: getCommand,
  sync: syncCommand,
  search: searchCommand,
  add: addCommand,
  photos: photosCommand,
  duplicates: duplicatesCommand,
  rm: rmCommand,
};
