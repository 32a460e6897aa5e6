import { describe, expect, it } from "vitest";
import { ConfigError, bool, int, list, load, markdownTable, oneOf, port, string, url } from "./index.js";

const schema = {
  port: port("T_PORT", "port to listen on", 8000),
  name: string("T_NAME", "a name", { default: "x" }),
  workers: int("T_WORKERS", "workers", { default: 2, min: 1, max: 8 }),
  tls: bool("T_TLS", "serve TLS", false),
  mode: oneOf("T_MODE", "mode", ["fs", "minio"] as const, "fs"),
  keys: list("T_KEYS", "api keys", { secret: true }),
  endpoint: url("T_ENDPOINT", "MinIO endpoint"),
};

describe("config", () => {
  it("applies defaults and parses values", () => {
    const c = load(schema, { T_PORT: "9000", T_KEYS: "a, b,,c", T_MODE: "minio", T_ENDPOINT: "http://h:9000/" });
    expect(c).toEqual({ port: 9000, name: "x", workers: 2, tls: false, mode: "minio", keys: ["a", "b", "c"], endpoint: "http://h:9000" });
  });

  it("reports every bad key at once, hiding secrets", () => {
    let err: unknown;
    try {
      load(schema, { T_PORT: "70000", T_WORKERS: "two", T_TLS: "maybe", T_MODE: "s3", T_ENDPOINT: "ftp://x" });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems;
    expect(problems).toHaveLength(5);
    expect(problems[0]).toContain("T_PORT");
    expect(problems.join("\n")).toContain("expected one of fs, minio");
  });

  it("renders a README table", () => {
    const t = markdownTable(schema);
    expect(t).toContain("| `T_PORT` | `8000` | port to listen on |");
    expect(t).toContain("| `T_KEYS` | — | api keys |");
  });
});
