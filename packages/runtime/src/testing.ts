import { createServer, type Server } from "node:net";
import { mkdtempSync, readFileSync } from "node:fs";
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

/**
 * n distinct free loopback ports for servers a test starts (as child processes, configured by port).
 * Drawn below the kernel's ephemeral range: a port listen(0) hands out there is free only until the
 * next outgoing connection of any test takes it as its local port, which happened between this
 * check and a child's listen (EADDRINUSE in CI). Each is checked by listening on it.
 */
export async function freePorts(n: number): Promise<number[]> {
  const [low, high] = PORT_RANGE;
  const ports: number[] = [];
  while (ports.length < n) {
    const port = low + Math.floor(Math.random() * (high - low));
    if (!ports.includes(port) && (await canListen(port))) ports.push(port);
  }
  return ports;
}

/** Ports freePorts draws from: 20000 up to the ephemeral range's start (Linux: 32768). */
const PORT_RANGE: readonly [number, number] = (() => {
  try {
    const start = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    if (start > 21_000) return [20_000, start];
  } catch {
    // not Linux: the common ephemeral ranges start at 32768 or 49152
  }
  return [20_000, 32_768];
})();

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s: Server = createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}
