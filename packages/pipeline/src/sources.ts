/**
 * Where a pipeline may download from: an allow-list of schemes, hosts and file:// path prefixes.
 *
 * Entries (GLIMPSE_SOURCE_ALLOWLIST, comma separated):
 *   https:                      any https host whose addresses are public
 *   https://data.example.org    that host, at any address (listing a host is how a private or
 *   http://127.0.0.1:9000       loopback one is allowed), optionally one port; `*.example.org`
 *                               matches its sub-domains
 *   file:                       any file the process can read (the embedded default)
 *   file:///srv/archives        files under that folder (symlinks resolved before the check)
 *
 * A URL is checked twice: statically before a run starts (scheme, host, path, IP literals), and
 * at connect time for every http(s) connection, redirects included: the resolver's answer is
 * refused when any address is loopback, private, link-local, CGNAT, multicast or unspecified and
 * the host was not listed by name — so a DNS name that points inside the cluster, or a redirect
 * to one, is refused before a byte is requested.
 */
import { lookup as dnsLookup, type LookupAddress, type LookupAllOptions, type LookupOptions } from "node:dns";
import { realpath } from "node:fs/promises";
import { BlockList, isIP, type LookupFunction } from "node:net";
import { posix } from "node:path";
import { fileURLToPath } from "node:url";
import { PipelineInputError } from "./util/errors.js";

/** A source the allow-list refuses; `reason` is a stable UPPER_SNAKE code. */
export class SourceRefusedError extends PipelineInputError {
  constructor(
    message: string,
    readonly reason: "SCHEME_NOT_ALLOWED" | "HOST_NOT_ALLOWED" | "INTERNAL_ADDRESS" | "PATH_NOT_ALLOWED",
  ) {
    super(message);
  }
}

const INTERNAL = new BlockList();
for (const [net, bits] of [
  ["0.0.0.0", 8], // "this" network, 0.0.0.0
  ["10.0.0.0", 8],
  ["100.64.0.0", 10], // carrier-grade NAT
  ["127.0.0.0", 8],
  ["169.254.0.0", 16], // link-local (cloud metadata endpoints)
  ["172.16.0.0", 12],
  ["192.0.0.0", 24],
  ["192.168.0.0", 16],
  ["198.18.0.0", 15],
  ["224.0.0.0", 4], // multicast
  ["240.0.0.0", 4], // reserved, broadcast
] as const) {
  INTERNAL.addSubnet(net, bits, "ipv4");
}
// (IPv4-mapped IPv6 addresses, ::ffff:a.b.c.d, are checked against the IPv4 ranges by BlockList itself)
for (const [net, bits] of [
  ["::", 128],
  ["::1", 128],
  ["64:ff9b:1::", 48],
  ["fc00::", 7], // unique local
  ["fe80::", 10], // link-local
  ["ff00::", 8], // multicast
] as const) {
  INTERNAL.addSubnet(net, bits, "ipv6");
}

/** True for loopback, private, link-local, CGNAT, multicast, reserved and unspecified addresses. */
export function isInternalAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) throw new Error(`not an IP address: ${address}`);
  return INTERNAL.check(address, family === 4 ? "ipv4" : "ipv6");
}

interface Entry {
  scheme: "file:" | "http:" | "https:";
  /** http(s): a host name or IP (lower case, IPv6 without brackets), "*.domain" for sub-domains; absent = any public host. */
  host?: string;
  port?: string;
  /** file: a folder; absent = any file. */
  path?: string;
}

type Resolver = (hostname: string, options: LookupAllOptions, callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void) => void;

const bare = (hostname: string) => hostname.replace(/^\[|\]$/g, "").toLowerCase();

export class SourceAllowList {
  private constructor(
    private readonly entries: Entry[],
    private readonly resolve: Resolver,
  ) {}

  /** Parses GLIMPSE_SOURCE_ALLOWLIST entries; throws naming the first bad one. `resolve` is for tests. */
  static parse(list: readonly string[], resolve: Resolver = dnsLookup as Resolver): SourceAllowList {
    const entries = list.map((raw) => {
      const s = raw.trim();
      const scheme = /^(file|https?):/i.exec(s)?.[0].toLowerCase() as Entry["scheme"] | undefined;
      if (!scheme) throw new Error(`source allow-list entry ${JSON.stringify(raw)}: must start with file:, http: or https:`);
      if (s.length === scheme.length || s.slice(scheme.length) === "//") return { scheme };
      let u: URL;
      try {
        u = new URL(s.replace(/^(https?:\/\/)\*\./i, "$1wildcard---."));
      } catch {
        throw new Error(`source allow-list entry ${JSON.stringify(raw)}: not a URL`);
      }
      if (scheme === "file:") {
        if (u.search || u.hash || u.host) throw new Error(`source allow-list entry ${JSON.stringify(raw)}: a file: entry is file:///absolute/folder`);
        return { scheme, path: posix.normalize(fileURLToPath(u)).replace(/(.)\/$/, "$1") };
      }
      if ((u.pathname !== "/" && u.pathname !== "") || u.search || u.hash || u.username) {
        throw new Error(`source allow-list entry ${JSON.stringify(raw)}: an http(s) entry names a scheme and host only (e.g. https://data.example.org)`);
      }
      return { scheme, host: bare(u.hostname).replace(/^wildcard---\./, "*."), ...(u.port ? { port: u.port } : {}) };
    });
    return new SourceAllowList(entries, resolve);
  }

  toString(): string {
    return this.entries.map((e) => (e.path ? `file://${e.path}` : e.host ? `${e.scheme}//${e.host}${e.port ? `:${e.port}` : ""}` : e.scheme)).join(",");
  }

  /** Checks a source URL before anything is read from it; throws SourceRefusedError. */
  async check(url: string): Promise<void> {
    const u = new URL(url);
    if (u.protocol !== "file:") {
      this.checkHttp(u);
      return;
    }
    const files = this.entries.filter((e) => e.scheme === "file:");
    if (files.length === 0) throw this.schemeRefused(u);
    if (files.some((e) => !e.path)) return;
    // the real path: neither ../ nor a symlink may lead outside a listed folder
    const path = await realpath(fileURLToPath(u)).catch(() => posix.normalize(fileURLToPath(u)));
    const folders = await Promise.all(files.map((e) => realpath(e.path!).catch(() => e.path!)));
    if (!folders.some((f) => path === f || path.startsWith(f === "/" ? f : `${f}/`))) {
      throw new SourceRefusedError(`${u.href} is outside the allowed folders (${folders.join(", ")})`, "PATH_NOT_ALLOWED");
    }
  }

  /** The static check of an http(s) URL (also run on every redirect): scheme, host, IP literals. */
  checkHttp(u: URL): void {
    const scheme = u.protocol;
    if (scheme !== "http:" && scheme !== "https:") throw this.schemeRefused(u);
    const mine = this.entries.filter((e) => e.scheme === scheme);
    if (mine.length === 0) throw this.schemeRefused(u);
    if (this.listed(u)) return;
    if (!mine.some((e) => !e.host)) {
      throw new SourceRefusedError(`host ${u.host} is not in the source allow-list (${this})`, "HOST_NOT_ALLOWED");
    }
    const host = bare(u.hostname);
    if ((isIP(host) && isInternalAddress(host)) || host === "localhost" || host.endsWith(".localhost")) {
      throw new SourceRefusedError(`${u.host} is a loopback, private or link-local address: list it in GLIMPSE_SOURCE_ALLOWLIST (e.g. ${scheme}//${u.host}) to allow it`, "INTERNAL_ADDRESS");
    }
  }

  /**
   * The DNS lookup for a connection to `u`: a host listed by name may resolve anywhere; any
   * other host's addresses must all be public.
   */
  lookupFor(u: URL): LookupFunction {
    const listed = this.listed(u);
    const resolve = this.resolve;
    return ((hostname: string, options: LookupOptions, callback: (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void) => {
      resolve(hostname, { ...options, all: true }, (err, addresses) => {
        if (err) return callback(err, "");
        const bad = listed ? undefined : addresses.find((a) => isInternalAddress(a.address));
        if (bad) {
          return callback(
            Object.assign(new SourceRefusedError(`${hostname} resolves to ${bad.address}, a loopback, private or link-local address: list the host in GLIMPSE_SOURCE_ALLOWLIST to allow it`, "INTERNAL_ADDRESS"), { code: "ESOURCEREFUSED" }),
            "",
          );
        }
        if (addresses.length === 0) return callback(Object.assign(new Error(`no address for ${hostname}`), { code: "ENOTFOUND" }), "");
        if (options.all) callback(null, addresses);
        else callback(null, addresses[0]!.address, addresses[0]!.family);
      });
    }) as LookupFunction;
  }

  private listed(u: URL): boolean {
    const host = bare(u.hostname);
    const port = u.port || (u.protocol === "https:" ? "443" : "80");
    return this.entries.some(
      (e) =>
        e.scheme === u.protocol &&
        e.host !== undefined &&
        (e.host === host || (e.host.startsWith("*.") && host.endsWith(e.host.slice(1)))) &&
        (!e.port || e.port === port),
    );
  }

  private schemeRefused(u: URL): SourceRefusedError {
    return new SourceRefusedError(`${u.protocol} sources are not allowed here (GLIMPSE_SOURCE_ALLOWLIST: ${this})`, "SCHEME_NOT_ALLOWED");
  }
}
