/**
 * The command line's common part: flags every command takes (--json, --gateway, --api-key), the
 * clients it gets (client.ts), errors as messages and exit codes (0 ok, 1 failed, 2 usage), and
 * the table and JSON output. collections.ts and commands.ts are built on it.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { toJson, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { timestampDate, type Duration, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { Transport } from "@connectrpc/connect";
import { clientSettings, describeError, glimpseClients, type ClientSettings, type GlimpseClients } from "./client.js";

/** Where output goes: process.stdout/stderr, or a test's buffers. */
export interface Writer {
  write(chunk: string): unknown;
  isTTY?: boolean | undefined;
  columns?: number | undefined;
}

export interface Io {
  stdout: Writer;
  stderr: Writer;
  /** Default process.env (GLIMPSE_URL, GLIMPSE_API_KEY, GLIMPSE_DATA_DIR). */
  env?: NodeJS.ProcessEnv;
  /** Where relative paths and .data/api-key are found; default process.cwd(). */
  cwd?: string;
  /** Instead of Connect over HTTP to the gateway (tests). */
  transport?: Transport;
}

export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

/** Bad usage: printed with the command's usage line, exit code 2. */
export class UsageError extends Error {}

export const COMMON = {
  json: { type: "boolean" },
  gateway: { type: "string" },
  "api-key": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const satisfies ParseArgsConfig["options"];

export interface Ctx {
  io: Io;
  json: boolean;
  settings: ClientSettings;
  clients: GlimpseClients;
  cwd: string;
  out(line?: string): void;
  err(line?: string): void;
}

export type Command = (argv: string[], io: Io) => Promise<number>;

/** Runs `<program> <command> <argv…>` from a table of commands; resolves to the exit code. */
export async function dispatch(usage: string, commands: Record<string, Command>, argv: string[], io: Io): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    (name === undefined ? io.stderr : io.stdout).write(usage + "\n");
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (!command) {
    io.stderr.write(`error: unknown command ${JSON.stringify(name)}\n\n${usage}\n`);
    return EXIT.usage;
  }
  return command(rest, io);
}

/**
 * A command of `program` ("glimpse", "glimpse collections"): parses its flags, sets up the
 * clients, runs it and turns errors into messages and exit codes.
 */
export const commandOf = (program: string) =>
  function command<O extends NonNullable<ParseArgsConfig["options"]>>(
  usage: string,
  options: O,
  run: (ctx: Ctx, values: ReturnType<typeof parseArgs<{ options: O & typeof COMMON; allowPositionals: true; strict: true }>>["values"], positionals: string[]) => Promise<number>,
): Command {
  return async (argv, io) => {
    const env = io.env ?? process.env;
    const cwd = io.cwd ?? process.cwd();
    const err = (line = "") => void io.stderr.write(line + "\n");
    let settings = clientSettings({}, env, cwd);
    try {
      let parsed;
      try {
        parsed = parseArgs({ args: argv, options: { ...options, ...COMMON } as O & typeof COMMON, allowPositionals: true, strict: true });
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
      const common = parsed.values as { json?: boolean; gateway?: string; "api-key"?: string; help?: boolean };
      if (common.help) {
        io.stdout.write(`usage: ${program} ${usage}\n`);
        return EXIT.ok;
      }
      settings = clientSettings({ gateway: common.gateway, apiKey: common["api-key"] }, env, cwd);
      const ctx: Ctx = {
        io,
        json: common.json === true,
        settings,
        clients: glimpseClients(settings, io.transport),
        cwd,
        out: (line = "") => void io.stdout.write(line + "\n"),
        err,
      };
      return await run(ctx, parsed.values, parsed.positionals);
    } catch (e) {
      if (e instanceof UsageError) {
        err(`error: ${e.message}`);
        err(`usage: ${program} ${usage}`);
        return EXIT.usage;
      }
      for (const line of describeError(e, settings)) err(line);
      return EXIT.failed;
    }
  };
}

export function positionals(p: string[], min: number, max: number, what: string): string[] {
  if (p.length < min) throw new UsageError(`missing ${what}`);
  if (p.length > max) throw new UsageError(`unexpected argument ${JSON.stringify(p[max])}`);
  return p;
}

export function printJson<D extends DescMessage>(ctx: Ctx, schema: D, message: MessageShape<D>): void {
  ctx.out(JSON.stringify(toJson(schema, message, { useProtoFieldName: true }), null, 2));
}

// ---------------------------------------------------------------------------------------------
// formatting

/** Columns padded to their widest cell, two spaces apart; `right` columns aligned right. */
export function table(headers: string[], rows: string[][], right: number[] = []): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (right.includes(i) ? c.padStart(widths[i]!) : i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n");
}

/** Aligned "key  value" lines. */
export function fields(pairs: [string, string][]): string {
  const w = Math.max(...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join("\n");
}

export const dateTime = (t: Timestamp | undefined): string => (t ? timestampDate(t).toISOString().replace(/\.\d{3}Z$/, "Z") : "");
export const dateOnly = (t: Timestamp | undefined): string => (t && (t.seconds !== 0n || t.nanos !== 0) ? timestampDate(t).toISOString().slice(0, 10) : "");
export const durationMs = (d: Duration): number => Number(d.seconds) * 1000 + d.nanos / 1e6;

/** 44 s → "0:44", 3725 s → "1:02:05". */
export function clock(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

export function bytes(n: bigint): string {
  const v = Number(n);
  if (v >= 1024 ** 2) return `${(v / 1024 ** 2).toFixed(1)} MiB`;
  if (v >= 1024) return `${(v / 1024).toFixed(0)} KiB`;
  return `${v} B`;
}

/**
 * A progress line on stderr: on a terminal one line redrawn in place; otherwise the line is
 * written whenever its key (the part a reader of a log wants to see change) changes.
 */
export function progressOut(out: Writer): { show(line: string, key: string): void; end(): void } {
  const tty = out.isTTY === true;
  let drawn = false;
  let lastKey: string | undefined;
  return {
    show(line, key) {
      if (tty) {
        out.write(`\r\x1b[2K${line.slice(0, Math.max(20, (out.columns ?? 120) - 1))}`);
        drawn = true;
      } else if (key !== lastKey) {
        out.write(line + "\n");
        lastKey = key;
      }
    },
    end() {
      if (drawn) out.write("\r\x1b[2K");
      drawn = false;
    },
  };
}
