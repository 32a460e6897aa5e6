/**
 * Typed configuration: every key has a name, an environment variable, a default and a doc
 * line. `load` reads them all at start-up and fails with one message naming every bad key,
 * so a misconfigured pod dies at once instead of at the first request.
 */

export interface KeySpec<T> {
  /** Environment variable, e.g. GLIMPSE_GATEWAY_PORT. */
  env: string;
  /** One line for the README's configuration table. */
  doc: string;
  /** Used when the variable is unset or empty; undefined makes the key optional. */
  default: T | undefined;
  /** Turns the raw string into a value; throws an Error whose message says what is wrong. */
  parse: (raw: string) => T;
  /** Never printed (API keys, passwords). */
  secret?: boolean;
}

export type Schema = Record<string, KeySpec<unknown>>;
export type ConfigOf<S extends Schema> = {
  [K in keyof S]: S[K] extends KeySpec<infer T> ? (S[K]["default"] extends undefined ? T | undefined : T) : never;
};

export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
  }
}

export function load<S extends Schema>(schema: S, env: NodeJS.ProcessEnv = process.env): ConfigOf<S> {
  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [name, spec] of Object.entries(schema)) {
    const raw = env[spec.env];
    if (raw === undefined || raw.trim() === "") {
      out[name] = spec.default;
      continue;
    }
    try {
      out[name] = spec.parse(raw.trim());
    } catch (err) {
      const shown = spec.secret ? "<secret>" : JSON.stringify(raw);
      problems.push(`${spec.env}=${shown}: ${err instanceof Error ? err.message : String(err)} (${spec.doc})`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return out as ConfigOf<S>;
}

/** A Markdown table of the schema's keys, for the README. */
export function markdownTable(schema: Schema): string {
  const rows = Object.values(schema).map((s) => {
    const def = s.default === undefined ? "—" : s.secret ? "(generated)" : `\`${format(s.default)}\``;
    return `| \`${s.env}\` | ${def} | ${s.doc} |`;
  });
  return ["| variable | default | meaning |", "| --- | --- | --- |", ...rows].join("\n");
}

function format(v: unknown): string {
  if (Array.isArray(v)) return v.join(",");
  return String(v);
}

// ---- key builders -------------------------------------------------------------------------

type Opt<T> = { secret?: boolean; default?: T };

function spec<T>(env: string, doc: string, parse: (raw: string) => T, opts: Opt<T>): KeySpec<T> {
  const s: KeySpec<T> = { env, doc, default: opts.default, parse };
  if (opts.secret) s.secret = true;
  return s;
}

export function string(env: string, doc: string, opts: Opt<string> = {}): KeySpec<string> {
  return spec(env, doc, (raw) => raw, opts);
}

export function int(env: string, doc: string, opts: Opt<number> & { min?: number; max?: number } = {}): KeySpec<number> {
  return spec(
    env,
    doc,
    (raw) => {
      if (!/^-?\d+$/.test(raw)) throw new Error("not an integer");
      const n = Number(raw);
      if (opts.min !== undefined && n < opts.min) throw new Error(`must be ≥ ${opts.min}`);
      if (opts.max !== undefined && n > opts.max) throw new Error(`must be ≤ ${opts.max}`);
      return n;
    },
    opts,
  );
}

export function port(env: string, doc: string, def: number): KeySpec<number> {
  return int(env, doc, { default: def, min: 0, max: 65535 });
}

export function bool(env: string, doc: string, def: boolean): KeySpec<boolean> {
  return spec(
    env,
    doc,
    (raw) => {
      const v = raw.toLowerCase();
      if (["1", "true", "yes", "on"].includes(v)) return true;
      if (["0", "false", "no", "off"].includes(v)) return false;
      throw new Error("expected true or false");
    },
    { default: def },
  );
}

export function oneOf<const T extends string>(env: string, doc: string, values: readonly T[], def: T): KeySpec<T> {
  return spec(
    env,
    doc,
    (raw) => {
      if (!(values as readonly string[]).includes(raw)) throw new Error(`expected one of ${values.join(", ")}`);
      return raw as T;
    },
    { default: def },
  );
}

export function list(env: string, doc: string, opts: Opt<string[]> = {}): KeySpec<string[]> {
  return spec(
    env,
    doc,
    (raw) =>
      raw
        .split(",")
        .map((s) => s.trim())
        .filter((s) => s.length > 0),
    opts,
  );
}

export function url(env: string, doc: string, opts: Opt<string> = {}): KeySpec<string> {
  return spec(
    env,
    doc,
    (raw) => {
      let u: URL;
      try {
        u = new URL(raw);
      } catch {
        throw new Error("not a URL");
      }
      if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error("expected an http:// or https:// URL");
      return raw.replace(/\/+$/, "");
    },
    opts,
  );
}
