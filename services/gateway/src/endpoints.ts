/**
 * Where a backend's requests go: every address a DNS name resolves to, one request after another
 * (round robin). The gateway keeps its connections to a backend (an HTTP/2 session for the gRPC relay,
 * kept-alive HTTP/1.1 sockets for the pass-through), and a Kubernetes ClusterIP Service balances
 * connections, not requests: one gateway pod sent all its calls to one Ranking pod. Given the name of a
 * headless Service (the chart's `<release>-ranking-headless`, GLIMPSE_RANKING_DNS_NAME), which resolves
 * to every Ready pod, the gateway spreads the requests itself.
 *
 * The name (by default the URL's own host) is resolved with node:dns's lookup (A and AAAA records
 * through getaddrinfo, so /etc/hosts and the pod's DNS search domains apply as they do to a connection
 * by name) when this is made, every `refreshMs`, and soon after a connection to one of the addresses
 * failed. A failed resolution keeps the last good set; until a first one answers, and whenever the name
 * resolves to nothing (a headless Service without a Ready pod, NXDOMAIN), the calls go to the plain host:
 * the URL as configured (the chart's ClusterIP Service), as they do when every address has just failed.
 * Each address is reached with the URL's scheme and port, and over TLS the certificate is checked against
 * the URL's host name. An address literal (the embedded default's 127.0.0.1) is its own only address, and
 * nothing is resolved.
 *
 * Why no library: `@grpc/grpc-js` balances `round_robin` over `dns:///` names, but only for its own
 * gRPC channels, and the relay is built on connect-es clients (retries, request ids, REFUSED_STREAM
 * as UNAVAILABLE: @glimpse/rpc client.ts) that would all have to move; nor would it serve the HTTP/1.1
 * pass-through, which needs the same addresses. undici's dns interceptor round-robins HTTP requests
 * over a name's records, but fails a request when a re-resolution fails rather than keeping the last
 * good set, and does not cover the relay either. What is left is this small picker, shared by both.
 */
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import type { Logger } from "@glimpse/logging";

/** A host name's addresses (A and AAAA), or an error with the resolver's code (ENOTFOUND, EAI_AGAIN, …). */
export type Resolve = (host: string) => Promise<string[]>;

/** getaddrinfo, as a connection by name would resolve it. */
export const systemResolve: Resolve = async (host) => (await lookup(host, { all: true, order: "verbatim" })).map((a) => a.address);

/** Resolver codes that mean "the name has no address" rather than "the resolver failed". */
const NO_ADDRESS = new Set(["ENOTFOUND", "ENODATA"]);

/** After a failed connection, how long the next re-resolution may keep a request waiting (ms). */
const FAILED_WAIT_MS = 1_000;
/** Failed connections re-resolve the name at most this often (ms): a burst of them asks once. */
const FAILED_RESOLVE_GAP_MS = 1_000;

export interface EndpointsOptions {
  /** How often the name is resolved again (ms); 0: never resolve, connect to the URL as given. */
  refreshMs: number;
  /** The name whose addresses the calls are spread over (a headless Service); default the URL's host. */
  name?: string | undefined;
  /** The resolver; default getaddrinfo (tests pass a fake one). */
  resolve?: Resolve | undefined;
  /** How long an address whose connection failed is passed over (ms); default `refreshMs` (at least 1 s). */
  cooldownMs?: number;
  logger?: Logger | undefined;
}

export class Endpoints {
  /** The configured URL (scheme, host, port): the plain host. */
  readonly base: URL;
  /** The name resolved (no brackets around an IPv6 literal). */
  readonly host: string;
  /** The TLS server name for every address: the URL's host name (a certificate names the Service, not a pod's IP); none for an address literal. */
  readonly servername: string | undefined;
  /** False for an address literal, or with refreshMs 0: one origin, the configured one, for good. */
  readonly dynamic: boolean;
  private origins: string[];
  private turn = 0;
  /** Origins whose connection failed, until when they are passed over. */
  private readonly down = new Map<string, number>();
  private readonly listeners = new Set<(removed: readonly string[]) => void>();
  private readonly resolve: Resolve;
  private readonly cooldownMs: number;
  private readonly timer: NodeJS.Timeout | undefined;
  private resolving: Promise<void> | undefined;
  private lastFailedResolve = 0;
  private lastError: string | undefined;

  constructor(url: string, private readonly opts: EndpointsOptions) {
    this.base = new URL(url);
    const urlHost = this.base.hostname.replace(/^\[(.*)\]$/, "$1");
    this.host = opts.name || urlHost;
    this.servername = isIP(urlHost) ? undefined : urlHost;
    this.dynamic = !isIP(this.host) && opts.refreshMs > 0;
    this.origins = [this.base.origin];
    this.resolve = opts.resolve ?? systemResolve;
    this.cooldownMs = opts.cooldownMs ?? Math.max(1_000, opts.refreshMs);
    if (this.dynamic) {
      void this.refresh();
      this.timer = setInterval(() => void this.refresh(), opts.refreshMs);
      this.timer.unref();
    }
  }

  /** The origins (`http://10.0.0.7:50051`) requests go to now; the configured one until the name resolves. */
  get current(): readonly string[] {
    return this.origins;
  }

  /** Where the next request goes: the next origin in turn, passing over those whose connection just failed; the plain host if all did. */
  pick(): string {
    const n = this.origins.length;
    if (n === 1 && this.down.size === 0) return this.origins[0]!;
    const now = Date.now();
    for (let i = 0; i < n; i++) {
      const origin = this.origins[(this.turn = (this.turn + 1) % n)]!;
      const until = this.down.get(origin);
      if (until === undefined || until <= now) return origin;
    }
    return this.base.origin;
  }

  /**
   * Sends to the next address (`pick`); where `unreached(err)` says its connection never opened
   * (nothing was sent), that address is passed over (`failed`) and the next one tried, three at
   * most. The relay's streams (backends.ts) and the pass-through (pass.ts) go out this way.
   */
  async send<T>(fn: (origin: string) => Promise<T>, unreached: (err: unknown) => boolean): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const origin = this.pick();
      try {
        return await fn(origin);
      } catch (err) {
        // three: the set may have just been re-resolved after the first failure
        if (!this.dynamic || attempt >= 3 || !unreached(err)) throw err;
        await this.failed(origin);
      }
    }
  }

  /**
   * A connection to `origin` failed (refused, unreachable, timed out): it is passed over for a
   * while, and the name is resolved again (once for a burst of failures). Resolves when the new
   * set is known, or after FAILED_WAIT_MS, so the caller can try the next address.
   */
  failed(origin: string): Promise<void> {
    if (!this.dynamic) return Promise.resolve();
    if (origin !== this.base.origin) this.down.set(origin, Date.now() + this.cooldownMs);
    const now = Date.now();
    if (!this.resolving && now - this.lastFailedResolve < FAILED_RESOLVE_GAP_MS) return Promise.resolve();
    this.lastFailedResolve = now;
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((r) => (timer = setTimeout(r, FAILED_WAIT_MS)));
    return Promise.race([this.refresh(), waited]).finally(() => clearTimeout(timer));
  }

  /** Resolves the name now (one resolution at a time: a call meanwhile waits for the one in flight). */
  refresh(): Promise<void> {
    if (!this.dynamic) return Promise.resolve();
    this.resolving ??= this.resolveOnce().finally(() => (this.resolving = undefined));
    return this.resolving;
  }

  /** Called with the origins that left the set (to close their connections). */
  onRemoved(listener: (removed: readonly string[]) => void): void {
    this.listeners.add(listener);
  }

  close(): void {
    clearInterval(this.timer);
    this.listeners.clear();
  }

  private async resolveOnce(): Promise<void> {
    let addresses: string[];
    try {
      addresses = await this.resolve(this.host);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? "";
      if (!NO_ADDRESS.has(code)) {
        // The resolver failed (timeout, SERVFAIL): the pods are most likely where they were.
        const message = (err as Error).message;
        if (message !== this.lastError) this.opts.logger?.warn({ host: this.host, err: message, addresses: this.origins }, "could not resolve a backend's name; keeping its last addresses");
        this.lastError = message;
        return;
      }
      addresses = [];
    }
    this.lastError = undefined;
    this.set(addresses.length > 0 ? [...new Set(addresses)].sort().map((a) => this.originOf(a)) : [this.base.origin]);
  }

  private originOf(address: string): string {
    const host = isIP(address) === 6 ? `[${address}]` : address;
    return `${this.base.protocol}//${host}${this.base.port ? `:${this.base.port}` : ""}`;
  }

  private set(origins: string[]): void {
    if (origins.length === this.origins.length && origins.every((o, i) => o === this.origins[i])) return;
    const removed = this.origins.filter((o) => !origins.includes(o));
    this.origins = origins;
    for (const o of removed) this.down.delete(o);
    this.opts.logger?.info({ host: this.host, addresses: origins }, "a backend's addresses changed");
    for (const listener of this.listeners) listener(removed);
  }
}
