import { createServer, type AddressInfo, type Server } from "node:net";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig, type GlimpseConfig } from "./config.js";

export const TEST_WRITE_KEY = "test-write-key";
export const TEST_READ_KEY = "test-read-key";

/** A config for tests: loopback, a fresh data dir, one write and one read key. */
export function testConfig(env: NodeJS.ProcessEnv = {}): GlimpseConfig {
  return loadConfig({
    GLIMPSE_DATA_DIR: mkdtempSync(join(tmpdir(), "glimpse-test-")),
    GLIMPSE_API_KEYS: `${TEST_WRITE_KEY}:write,${TEST_READ_KEY}:read`,
    GLIMPSE_LOG_LEVEL: "warn",
    ...env,
  });
}

/** n distinct free loopback ports (listened on at once, then released) for servers a test starts. */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<Server>((resolve) => {
      const s = createServer();
      s.listen(0, "127.0.0.1", () => resolve(s));
    })),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}
