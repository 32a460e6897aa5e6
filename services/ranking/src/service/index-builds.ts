/**
 * Index builds as job resources, "indexBuilds/{model_version}-{dataset_version}": a build runs
 * in the background (the index job of build-index.ts) whether or not anyone watches it, and is
 * kept here for Get, Watch and Cancel. Its id is the pair's, so creating a build of a pair being
 * built answers that build, and a pair whose index is stored reads as a SUCCEEDED build on any
 * replica. With index Jobs, a replica asked for a build another one started follows the pair's
 * Job itself. Builds live in this process: a restart forgets a local one (the next Create starts
 * it again).
 */
import { clone, create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { errorWithReason, notFound, ranking } from "@glimpse/api";
import { Subscription } from "@glimpse/rpc";
import type { IndexKindSetting } from "../index/gallery.js";
import { readIndexDocument } from "../index/store.js";
import { indexJob, resolvePair, type ResolvedPair } from "./build-index.js";
import { indexInfoOf, type ServiceDeps } from "./shared.js";

export const INDEX_BUILD_PREFIX = "indexBuilds/";
const State = ranking.IndexBuildState;

/** Finished builds kept for Get and Watch (the oldest are forgotten first). */
const KEEP_FINISHED = 100;

interface Build {
  build: ranking.IndexBuild;
  abort: AbortController;
  listeners: Set<(b: ranking.IndexBuild) => void>;
}

const finished = (b: ranking.IndexBuild) => b.state !== State.RUNNING;
const nameOf = (pair: ResolvedPair) => `${INDEX_BUILD_PREFIX}${pair.version}-${pair.datasetVersion}`;

/** "indexBuilds/m-…-…" → the model and dataset versions (the rules checked the shape). */
function pairOf(name: string): { model: string; datasetVersion: string } {
  const id = name.slice(INDEX_BUILD_PREFIX.length);
  return { model: id.slice(0, 18), datasetVersion: id.slice(19) };
}

export class IndexBuilds {
  private readonly builds = new Map<string, Build>();

  constructor(private readonly deps: ServiceDeps) {}

  async create(input: ranking.IndexBuild): Promise<ranking.IndexBuild> {
    const pair = await resolvePair(this.deps, input.modelVersion, input.datasetVersion);
    const running = this.builds.get(nameOf(pair));
    if (running && !finished(running.build)) return clone(ranking.IndexBuildSchema, running.build);
    return this.start(pair, (input.kind || "auto") as IndexKindSetting, input.force);
  }

  /** Runs the pair's index job in the background, as the build named after the pair. */
  private start(pair: ResolvedPair, kind: IndexKindSetting, force: boolean): ranking.IndexBuild {
    const name = nameOf(pair);
    const b: Build = {
      build: create(ranking.IndexBuildSchema, {
        name,
        modelVersion: pair.version,
        dataset: pair.dataset,
        datasetVersion: pair.datasetVersion,
        kind,
        executor: this.deps.manager.builder.kind,
        state: State.RUNNING,
        createTime: timestampNow(),
      }),
      abort: new AbortController(),
      listeners: new Set(),
    };
    this.builds.delete(name); // re-inserted last: the newest are kept longest
    this.builds.set(name, b);
    this.forgetOldest();
    void this.run(b, pair, kind, force);
    return clone(ranking.IndexBuildSchema, b.build);
  }

  private async run(b: Build, pair: ResolvedPair, kind: IndexKindSetting, force: boolean): Promise<void> {
    const { build } = b;
    try {
      for await (const p of indexJob(this.deps, pair, kind, force, b.abort.signal)) {
        build.stage = p.stage ?? "";
        build.done = p.done ?? 0n;
        build.total = p.total ?? 0n;
        if (build.stage === "job") build.detail = `${build.done}/${build.total} shards done`;
        if (p.index) {
          build.index = create(ranking.IndexInfoSchema, p.index);
          build.state = State.SUCCEEDED;
        }
        if (!finished(build)) this.changed(b);
      }
      if (!finished(build)) throw new Error("the index job ended without an index");
    } catch (err) {
      build.state = b.abort.signal.aborted ? State.CANCELLED : State.FAILED;
      build.failed = build.state === State.FAILED;
      build.detail = (err as Error).message;
    }
    build.endTime = timestampNow();
    this.changed(b);
  }

  private changed(b: Build): void {
    const copy = clone(ranking.IndexBuildSchema, b.build);
    for (const l of b.listeners) l(copy);
  }

  private forgetOldest(): void {
    const done = [...this.builds.values()].filter((b) => finished(b.build));
    for (const b of done.slice(0, Math.max(0, done.length - KEEP_FINISHED))) this.builds.delete(b.build.name);
  }

  async get(name: string): Promise<ranking.IndexBuild> {
    const b = this.builds.get(name);
    if (b) return clone(ranking.IndexBuildSchema, b.build);
    // Not built here: a stored index is a finished build, whoever computed it; an index Job
    // another replica asked for is followed from here too (the Job is the build).
    const { model, datasetVersion } = pairOf(name);
    const dataset = await this.deps.manager.findDataset(datasetVersion).catch(() => undefined);
    const doc = dataset ? await readIndexDocument(this.deps.store, model, dataset, datasetVersion) : undefined;
    if (dataset && doc) return create(ranking.IndexBuildSchema, { name, modelVersion: model, dataset, datasetVersion, kind: doc.hnsw ? "hnsw" : "exact", state: State.SUCCEEDED, index: indexInfoOf(doc) });
    const job = dataset ? await this.deps.manager.builder.peek?.({ model, dataset, datasetVersion }) : undefined;
    if (dataset && job) return this.start({ version: model, dataset, datasetVersion }, "auto", false);
    throw notFound("index build", name, `index build ${JSON.stringify(name)} not found: not started here, no index Job of the pair, and no index of it stored`);
  }

  async *watch(name: string, signal: AbortSignal): AsyncGenerator<ranking.IndexBuild> {
    if (!this.builds.has(name)) {
      // a stored index (the whole answer), or another replica's index Job, followed from here
      const found = await this.get(name);
      if (!this.builds.has(name)) return yield found;
    }
    const b = this.builds.get(name)!;
    const sub = new Subscription<ranking.IndexBuild>(signal, () => b.listeners.delete(sub.push));
    b.listeners.add(sub.push);
    try {
      // the snapshot and the subscription in one step: no change falls between them
      const first = clone(ranking.IndexBuildSchema, b.build);
      yield first;
      if (finished(first)) return;
      for await (const next of sub) {
        yield next;
        if (finished(next)) return;
      }
    } finally {
      sub.close();
    }
  }

  async cancel(name: string): Promise<ranking.IndexBuild> {
    const b = this.builds.get(name);
    if (!b || finished(b.build)) return this.get(name);
    if (b.build.executor === "kubernetes") {
      throw errorWithReason(Code.FailedPrecondition, "SHARED_INDEX_JOB", `index build ${name} is an index Job every replica shares (${b.build.job || "its Job"}): it is not cancelled, and ends by itself`, { name });
    }
    b.abort.abort();
    // Wait briefly for the job to stop, so the answer shows the final state.
    for (let i = 0; i < 100 && !finished(b.build); i++) await new Promise((r) => setTimeout(r, 50));
    if (!finished(b.build)) throw new ConnectError(`index build ${name} is still stopping`, Code.Unavailable);
    return clone(ranking.IndexBuildSchema, b.build);
  }
}
