/**
 * The source allow-list decided without the network: IP literals and names are classified
 * statically, and DNS answers come from a fake resolver — no address but loopback is ever
 * contacted (the end-to-end refusals are in services/data/src/data.test.ts, loopback only).
 */
import { mkdir, mkdtemp, symlink, writeFile } from "node:fs/promises";
import type { LookupAddress } from "node:dns";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { SourceAllowList, SourceRefusedError, isInternalAddress } from "./sources.js";

/** A resolver that answers from a table and records what it was asked. */
function fakeDns(table: Record<string, string[]>) {
  const asked: string[] = [];
  const resolve = (host: string, _o: unknown, cb: (err: NodeJS.ErrnoException | null, a: LookupAddress[]) => void) => {
    asked.push(host);
    const addrs = table[host];
    if (!addrs) return cb(Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: "ENOTFOUND" }), []);
    cb(null, addrs.map((address) => ({ address, family: address.includes(":") ? 6 : 4 })));
  };
  return { resolve, asked };
}

/** Runs the connect-time lookup for `url` and returns the address it yields or the refusal. */
function lookup(allow: SourceAllowList, url: string, all = false): Promise<string | LookupAddress[]> {
  const u = new URL(url);
  return new Promise((resolve, reject) =>
    (allow.lookupFor(u) as unknown as (h: string, o: object, cb: (e: Error | null, a: string | LookupAddress[]) => void) => void)(u.hostname, { all }, (err, a) => (err ? reject(err) : resolve(a))),
  );
}

const refusal = (p: Promise<unknown> | (() => unknown)) =>
  (typeof p === "function" ? Promise.resolve().then(p) : p).then(
    () => undefined,
    (e: unknown) => (e instanceof SourceRefusedError ? e.reason : `not a refusal: ${String(e)}`),
  );

describe("isInternalAddress", () => {
  it.each([
    "127.0.0.1", "127.9.9.9", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254",
    "100.64.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255", "::1", "::", "fe80::1", "fd00::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
  ])("%s is internal", (a) => expect(isInternalAddress(a)).toBe(true));
  it.each(["8.8.8.8", "140.82.112.3", "172.32.0.1", "100.128.0.1", "2606:4700::1111"])("%s is public", (a) => expect(isInternalAddress(a)).toBe(false));
});

describe("SourceAllowList", () => {
  it("parses entries and refuses bad ones naming them", () => {
    expect(SourceAllowList.parse(["file:", "https:", "http://127.0.0.1:9000", "https://*.example.org", "file:///srv/data/"]).toString())
      .toBe("file:,https:,http://127.0.0.1:9000,https://*.example.org,file:///srv/data");
    expect(() => SourceAllowList.parse(["ftp:"])).toThrow(/"ftp:": must start with file:, http: or https:/);
    expect(() => SourceAllowList.parse(["https://example.org/path"])).toThrow(/scheme and host only/);
    expect(() => SourceAllowList.parse(["file://host/x"])).toThrow(/file:\/\/\/absolute\/folder/);
  });

  it("checks schemes, hosts and IP literals statically", async () => {
    const https = SourceAllowList.parse(["https:"]);
    expect(await refusal(https.check("https://github.com/a.zip"))).toBeUndefined();
    expect(await refusal(https.check("http://github.com/a.zip"))).toBe("SCHEME_NOT_ALLOWED");
    expect(await refusal(https.check("file:///etc/passwd"))).toBe("SCHEME_NOT_ALLOWED");
    for (const internal of ["https://127.0.0.1/a", "https://10.0.0.5/a", "https://169.254.169.254/latest/meta-data", "https://[::1]/a", "https://[::ffff:7f00:1]/a", "https://localhost/a", "https://x.localhost/a", "https://2130706433/a"]) {
      expect(await refusal(https.check(internal)), internal).toBe("INTERNAL_ADDRESS");
    }
    const listed = SourceAllowList.parse(["https:", "http://127.0.0.1:9000", "https://*.corp.example"]);
    expect(await refusal(listed.check("http://127.0.0.1:9000/a.zip"))).toBeUndefined();
    expect(await refusal(listed.check("http://127.0.0.1:9001/a.zip"))).toBe("HOST_NOT_ALLOWED"); // another port
    expect(await refusal(listed.check("https://data.corp.example/a.zip"))).toBeUndefined();
    const hostsOnly = SourceAllowList.parse(["https://data.example.org"]);
    expect(await refusal(hostsOnly.check("https://data.example.org/a.zip"))).toBeUndefined();
    expect(await refusal(hostsOnly.check("https://evil.example/a.zip"))).toBe("HOST_NOT_ALLOWED");
    expect(await refusal(hostsOnly.check("https://data.example.org.evil.example/a.zip"))).toBe("HOST_NOT_ALLOWED");
  });

  it("refuses a name whose DNS answer is internal at connect time, unless the host is listed", async () => {
    const dns = fakeDns({ "archive.example": ["93.184.216.34"], "rebind.example": ["93.184.216.34", "10.0.0.7"], "intranet.example": ["192.168.0.10"] });
    const allow = SourceAllowList.parse(["https:", "https://intranet.example"], dns.resolve);
    expect(await lookup(allow, "https://archive.example/a.zip")).toBe("93.184.216.34");
    expect(await lookup(allow, "https://archive.example/a.zip", true)).toEqual([{ address: "93.184.216.34", family: 4 }]);
    // any internal address in the answer refuses the connection (the client could pick it)
    expect(await refusal(lookup(allow, "https://rebind.example/a.zip"))).toBe("INTERNAL_ADDRESS");
    expect(await refusal(lookup(allow, "https://rebind.example/a.zip", true))).toBe("INTERNAL_ADDRESS");
    // listed by name: a private address is what its operator asked for
    expect(await lookup(allow, "https://intranet.example/a.zip")).toBe("192.168.0.10");
    await expect(lookup(allow, "https://missing.example/a.zip")).rejects.toThrow(/ENOTFOUND/);
    expect(dns.asked).toEqual(["archive.example", "archive.example", "rebind.example", "rebind.example", "intranet.example", "missing.example"]);
  });

  it("keeps file:// sources inside the listed folders, through ../ and symlinks", async () => {
    const root = await mkdtemp(join(tmpdir(), "glimpse-sources-"));
    await mkdir(join(root, "allowed"));
    await mkdir(join(root, "other"));
    await writeFile(join(root, "allowed", "a.zip"), "a");
    await writeFile(join(root, "other", "secret"), "s");
    await symlink(join(root, "other", "secret"), join(root, "allowed", "link.zip"));
    const allow = SourceAllowList.parse([pathToFileURL(join(root, "allowed")).href]);
    expect(await refusal(allow.check(pathToFileURL(join(root, "allowed", "a.zip")).href))).toBeUndefined();
    expect(await refusal(allow.check(`${pathToFileURL(join(root, "allowed")).href}/../other/secret`))).toBe("PATH_NOT_ALLOWED");
    expect(await refusal(allow.check(pathToFileURL(join(root, "allowed", "link.zip")).href))).toBe("PATH_NOT_ALLOWED");
    expect(await refusal(allow.check(pathToFileURL(join(root, "allowed-not", "x")).href))).toBe("PATH_NOT_ALLOWED");
    expect(await refusal(allow.check("file:///etc/passwd"))).toBe("PATH_NOT_ALLOWED");
    expect(await refusal(allow.check("https://github.com/a.zip"))).toBe("SCHEME_NOT_ALLOWED");
    expect(await refusal(SourceAllowList.parse(["file:"]).check("file:///etc/passwd"))).toBeUndefined();
  });
});
