/**
 * Starts a throwaway MinIO server for tests (`@glimpse/objectstore/testing`).
 *
 *   const minio = await startMinio();
 *   const store = createObjectStore({ kind: "minio", endpoint: minio.endpoint, accessKey: minio.accessKey,
 *                                     secretKey: minio.secretKey, bucket: "test" });
 *   ...
 *   await minio.stop();
 *
 * The binary is built by scripts/install-tools.sh into .tools/bin/minio.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, rmSync } from "node:fs";
import { mkdtemp, rm, statfs } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export interface StartMinioOptions {
  /** MinIO binary; default $GLIMPSE_MINIO_BIN or <repo>/.tools/bin/minio. */
  binary?: string;
  /** Data folder; default a fresh temp folder, removed on stop(). A given folder is kept. */
  dataDir?: string;
  /** How long to wait for /minio/health/ready; default 60 s (first start on a busy CI box is slow). */
  readyTimeoutMs?: number;
  /**
   * More environment for the server, e.g. a notification target:
   * `{ MINIO_NOTIFY_WEBHOOK_ENABLE_T: "on", MINIO_NOTIFY_WEBHOOK_ENDPOINT_T: url, … }`.
   * The root credentials are the server's own and cannot be overridden here.
   */
  env?: Record<string, string>;
}

export interface MinioServer {
  /** "http://127.0.0.1:<port>", the form createObjectStore's minio config takes. */
  endpoint: string;
  host: string;
  port: number;
  accessKey: string;
  secretKey: string;
  dataDir: string;
  /** Stops the server (SIGTERM, then SIGKILL after 5 s) and removes a temp data folder. Idempotent. */
  stop(): Promise<void>;
}

const REPO_ROOT = fileURLToPath(new URL("../../../../", import.meta.url));
export const DEFAULT_MINIO_BINARY = join(REPO_ROOT, ".tools", "bin", "minio");

/** A port that was free a moment ago (MinIO needs a number up front; a clash makes start() retry). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function startMinio(options: StartMinioOptions = {}): Promise<MinioServer> {
  const binary = options.binary ?? process.env["GLIMPSE_MINIO_BIN"] ?? DEFAULT_MINIO_BINARY;
  if (!existsSync(binary)) {
    throw new Error(`MinIO binary not found at ${binary}: run scripts/install-tools.sh (builds it into .tools/bin/)`);
  }
  let lastError: unknown;
  // A port picked by freePort() can be taken before MinIO binds it; retry with new ports.
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce(binary, options);
    } catch (err) {
      lastError = err;
      if (!(err instanceof Error && /address already in use/i.test(err.message))) break;
    }
  }
  throw lastError;
}

/** Free bytes MinIO leaves writable: it refuses writes that would leave less than 1% of the drive free. */
const MINIO_FILL_FRACTION = 0.99;
const HEADROOM_BYTES = 256 * 1024 * 1024; // what a test run writes at most, with room to spare

/**
 * Fails up front, naming the cause, where MinIO would answer every write with "XMinioStorageFull"
 * (a drive more than 99% full): otherwise each test fails on its own with a storage error.
 */
export async function checkDriveSpace(dir: string, headroomBytes = HEADROOM_BYTES): Promise<void> {
  const fs = await statfs(dir);
  const total = fs.blocks * fs.bsize;
  const free = fs.bavail * fs.bsize;
  const usable = free - total * (1 - MINIO_FILL_FRACTION);
  if (usable < headroomBytes) {
    const gib = (n: number) => (n / 2 ** 30).toFixed(2);
    throw new Error(
      `MinIO test server: the drive under ${dir} has ${gib(free)} GiB free of ${gib(total)} GiB; MinIO refuses ` +
        `writes that leave under 1% free, so ${gib(Math.max(usable, 0))} GiB is writable. Free disk space ` +
        `(scripts/cluster/prune.sh drops old cached images) or point TMPDIR at a larger drive.`,
    );
  }
}

async function startOnce(binary: string, options: StartMinioOptions): Promise<MinioServer> {
  const host = "127.0.0.1";
  const [port, consolePort] = [await freePort(), await freePort()];
  const ownDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), "glimpse-minio-")));
  try {
    await checkDriveSpace(dataDir);
  } catch (err) {
    if (ownDir) await rm(dataDir, { recursive: true, force: true });
    throw err;
  }
  const accessKey = `test-${randomBytes(6).toString("hex")}`;
  const secretKey = randomBytes(18).toString("base64url");

  const child = spawn(
    binary,
    ["server", dataDir, "--quiet", "--address", `${host}:${port}`, "--console-address", `${host}:${consolePort}`],
    {
      env: {
        ...process.env,
        MINIO_BROWSER: "off", // no web console: faster start, one port fewer to collide on
        MINIO_UPDATE: "off",
        ...options.env,
        MINIO_ROOT_USER: accessKey,
        MINIO_ROOT_PASSWORD: secretKey,
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  // Keep the output tail for error messages; the server is quiet unless something is wrong.
  let output = "";
  const collect = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-4000);
  };
  child.stdout.on("data", collect);
  child.stderr.on("data", collect);
  let exited: string | undefined;
  const exitPromise = new Promise<void>((resolve) => {
    child.once("exit", (code, signal) => {
      exited = `exited with ${signal ?? `code ${code}`}`;
      resolve();
    });
    child.once("error", (err) => {
      exited = `failed to start: ${err.message}`;
      resolve();
    });
  });
  // Never leave a server behind when the test process ends without calling stop().
  const onExit = () => {
    child.kill("SIGKILL");
    if (ownDir) rmSync(dataDir, { recursive: true, force: true });
  };
  process.once("exit", onExit);

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    process.removeListener("exit", onExit);
    if (exited === undefined) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exitPromise;
      clearTimeout(timer);
    }
    if (ownDir) await rm(dataDir, { recursive: true, force: true });
  };

  const endpoint = `http://${host}:${port}`;
  const deadline = Date.now() + (options.readyTimeoutMs ?? 60_000);
  for (;;) {
    if (exited !== undefined) {
      await stop();
      throw new Error(`MinIO ${exited} before becoming ready:\n${output}`);
    }
    try {
      // "ready" answers 200 before the object layer is up, flagging that in a header; S3 calls
      // made then get 503, so wait for the header to go too.
      const res = await fetch(`${endpoint}/minio/health/ready`, { signal: AbortSignal.timeout(2000) });
      if (res.ok && res.headers.get("x-minio-server-status") !== "offline") break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`MinIO at ${endpoint} not ready after ${options.readyTimeoutMs ?? 60_000} ms:\n${output}`);
    }
    await sleep(100);
  }
  return { endpoint, host, port, accessKey, secretKey, dataDir, stop };
}
