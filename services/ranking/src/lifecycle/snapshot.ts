/**
 * The serving snapshot: one (model, gallery index) pair, leased by every request. A swap
 * retires the old snapshot rather than closing it, so in-flight requests finish on it; its
 * model's sessions are released when the last snapshot using that model has drained (a new
 * gallery for the same model is a new snapshot over the same sessions).
 */
import type { Logger } from "@glimpse/logging";
import type { GalleryIndex } from "../index/gallery.js";
import type { LoadedModel } from "../model/model.js";
import { reclaimAfterSwap } from "./memory.js";

/** One servable (model, gallery index) pair. */
export class Snapshot {
  private refs = 0;
  private retired = false;
  /** Indexes of other dataset versions, loaded on request. */
  readonly extra = new Map<string, Promise<GalleryIndex | undefined>>();

  constructor(
    readonly model: LoadedModel,
    readonly gallery: GalleryIndex,
    /** The demo gallery (the same object when the gallery is the demo). */
    readonly demo: GalleryIndex | undefined,
    readonly loadedAt: Date,
    private readonly onDrained: (s: Snapshot) => void,
  ) {}

  acquire(): void {
    this.refs++;
  }

  release(): void {
    this.refs--;
    if (this.retired && this.refs === 0) this.onDrained(this);
  }

  retire(): void {
    this.retired = true;
    if (this.refs === 0) this.onDrained(this);
  }
}

/** Which snapshot serves now; swaps are one assignment. */
export class SnapshotSlot {
  private serving: Snapshot | undefined;
  /** Snapshots not yet drained, per model: its sessions stay open while any is left. */
  private readonly modelUsers = new Map<LoadedModel, number>();

  constructor(private readonly logger: Logger) {}

  get current(): Snapshot | undefined {
    return this.serving;
  }

  /** Serves (model, gallery, demo) from now on and retires the previous snapshot. */
  swap(model: LoadedModel, gallery: GalleryIndex, demo: GalleryIndex | undefined, loadedAt: Date): Snapshot {
    const next = new Snapshot(model, gallery, demo, loadedAt, (s) => this.drained(s));
    const old = this.serving;
    this.modelUsers.set(model, (this.modelUsers.get(model) ?? 0) + 1);
    this.serving = next;
    old?.retire();
    return next;
  }

  /** Serves nothing from now on (shutdown); the last snapshot is released once drained. */
  clear(): void {
    const s = this.serving;
    this.serving = undefined;
    s?.retire();
  }

  private drained(s: Snapshot): void {
    const n = (this.modelUsers.get(s.model) ?? 1) - 1;
    if (n > 0) {
      this.modelUsers.set(s.model, n);
      return;
    }
    this.modelUsers.delete(s.model);
    if (this.serving?.model === s.model) return;
    this.logger.info({ version: s.model.version }, "previous model version drained; releasing it");
    void s.model.release().then(
      () => setImmediate(() => reclaimAfterSwap(this.logger, s.model.version)),
      () => {},
    );
  }
}
