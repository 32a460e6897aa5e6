/**
 * The text tokenizers, reproducing a model version's `vocab.json` (schema glimpse.vocab/v1,
 * written by the Python trainer) exactly. `loadTokenizer` picks the one its `type` names:
 *
 * - `hf-tokenizer` (a pretrained text tower's own, e.g. MiniLM's WordPiece): the embedded
 *   `tokenizer.json` run by Hugging Face's `@huggingface/tokenizers` (the trainer runs the
 *   same document with the Python `tokenizers`); ids keep [CLS]/[SEP]; longer texts keep the
 *   first max_len − 1 ids and the final [SEP], as the Python side's truncation does.
 * - `word-regex` (`Tokenizer`, the trainer's own vocabulary):
 *
 *   s = text.normalize("NFKD"); s = s.replace(/<combining_regex>/g, ""); s = s.toLowerCase()
 *   tokens = s.match(/<token_regex>/g) ?? []; tokens = tokens.slice(0, max_len)
 *   ids = tokens.map(t => index(t) ?? unk_id); ids.length === 0 → [unk_id]
 *
 * Batches are right-padded with pad_id to the longest row; `lengths` counts real tokens.
 */

import { Tokenizer as HFTokenizer } from "@huggingface/tokenizers";

const VOCAB_SCHEMA = "glimpse.vocab/v1";

export interface VocabSpec {
  schema: string;
  type: string;
  unicode_normalization: string;
  combining_regex: string;
  lowercase: boolean;
  token_regex: string;
  regex_flags?: string;
  max_len: number;
  add_bos: boolean;
  add_eos: boolean;
  pad_id: number;
  unk_id: number;
  bos_id: number;
  eos_id: number;
  tokens: string[];
}

/** A padded batch, as the text encoder takes it. */
export interface TokenBatch {
  /** int64 [n, width], row-major, right-padded with pad_id. */
  ids: BigInt64Array;
  /** int64 [n]. */
  lengths: BigInt64Array;
  n: number;
  width: number;
}

/** What the model needs of a tokenizer. */
export interface TextTokenizer {
  /** Token ids of one text (never empty). */
  encode(text: string): number[];
  /** Pads already-encoded sequences into one batch. */
  pad(seqs: number[][]): TokenBatch;
  batch(texts: string[]): TokenBatch;
}

/** Right-pads sequences with padId into one int64 batch. */
function padBatch(seqs: number[][], padId: number): TokenBatch {
  const n = seqs.length;
  const width = Math.max(1, ...seqs.map((s) => s.length));
  const ids = new BigInt64Array(n * width).fill(BigInt(padId));
  const lengths = new BigInt64Array(n);
  seqs.forEach((s, i) => {
    for (let j = 0; j < s.length; j++) ids[i * width + j] = BigInt(s[j]!);
    lengths[i] = BigInt(s.length);
  });
  return { ids, lengths, n, width };
}

/** The tokenizer a `vocab.json` describes. */
export function loadTokenizer(text: string | Buffer): TextTokenizer {
  const spec = JSON.parse(text.toString()) as { type?: unknown };
  return spec.type === HF_TYPE ? new HfTokenizer(spec as unknown as HfTokenizerSpec) : new Tokenizer(spec as VocabSpec);
}

const HF_TYPE = "hf-tokenizer";

interface HfTokenizerSpec {
  schema: string;
  type: typeof HF_TYPE;
  max_len: number;
  pad_id: number;
  tokenizer: Record<string, unknown>;
  tokenizer_config?: Record<string, unknown>;
}

class HfTokenizer implements TextTokenizer {
  private readonly maxLen: number;
  private readonly padId: number;
  private readonly hf: HFTokenizer;

  constructor(spec: HfTokenizerSpec) {
    if (spec.schema !== VOCAB_SCHEMA) throw new Error(`vocab.json: unsupported schema ${JSON.stringify(spec.schema)} (want ${VOCAB_SCHEMA})`);
    if (!spec.tokenizer || typeof spec.tokenizer !== "object") throw new Error("vocab.json: tokenizer missing");
    if (!Number.isInteger(spec.max_len) || spec.max_len < 2) throw new Error("vocab.json: bad max_len");
    this.hf = new HFTokenizer(spec.tokenizer, spec.tokenizer_config ?? {});
    this.maxLen = spec.max_len;
    this.padId = spec.pad_id;
  }

  encode(text: string): number[] {
    const ids = this.hf.encode(text).ids;
    // Python's truncation cuts the pieces before the post-processor adds [CLS]/[SEP]
    return ids.length > this.maxLen ? [...ids.slice(0, this.maxLen - 1), ids[ids.length - 1]!] : ids;
  }

  pad(seqs: number[][]): TokenBatch {
    return padBatch(seqs, this.padId);
  }

  batch(texts: string[]): TokenBatch {
    return this.pad(texts.map((t) => this.encode(t)));
  }
}

export class Tokenizer implements TextTokenizer {
  readonly maxLen: number;
  readonly padId: number;
  readonly unkId: number;
  readonly size: number;
  private readonly index = new Map<string, number>();
  private readonly combining: RegExp;
  private readonly token: RegExp;
  private readonly normalization: "NFC" | "NFD" | "NFKC" | "NFKD" | undefined;
  private readonly bos: number | undefined;
  private readonly eos: number | undefined;
  private readonly lowercase: boolean;

  constructor(readonly spec: VocabSpec) {
    if (spec.schema !== VOCAB_SCHEMA) throw new Error(`vocab.json: unsupported schema ${JSON.stringify(spec.schema)} (want ${VOCAB_SCHEMA})`);
    if (spec.type !== "word-regex") throw new Error(`vocab.json: unsupported tokenizer type ${JSON.stringify(spec.type)}`);
    if (!Array.isArray(spec.tokens) || spec.tokens.length < 4) throw new Error("vocab.json: tokens missing");
    if (!Number.isInteger(spec.max_len) || spec.max_len < 1) throw new Error("vocab.json: bad max_len");
    const norm = spec.unicode_normalization;
    if (norm && !["NFC", "NFD", "NFKC", "NFKD"].includes(norm)) throw new Error(`vocab.json: unknown normalization ${norm}`);
    this.normalization = (norm || undefined) as typeof this.normalization;
    // Python's re and JS agree on these character-class regexes; only the "g" flag is ours.
    const flags = (spec.regex_flags ?? "g").replace(/[^imsu]/g, "");
    this.combining = new RegExp(spec.combining_regex || "(?!)", `g${flags}`);
    this.token = new RegExp(spec.token_regex, `g${flags}`);
    this.lowercase = spec.lowercase;
    this.maxLen = spec.max_len;
    this.padId = spec.pad_id;
    this.unkId = spec.unk_id;
    this.bos = spec.add_bos ? spec.bos_id : undefined;
    this.eos = spec.add_eos ? spec.eos_id : undefined;
    this.size = spec.tokens.length;
    // Tokens are unique; with a duplicate, Python's dict (last wins) and a first-wins lookup
    // would disagree, so refuse it instead of guessing.
    spec.tokens.forEach((t, i) => {
      if (this.index.has(t)) throw new Error(`vocab.json: duplicate token ${JSON.stringify(t)}`);
      this.index.set(t, i);
    });
  }

  static fromJson(text: string | Buffer): Tokenizer {
    return new Tokenizer(JSON.parse(text.toString()) as VocabSpec);
  }

  /** The word pieces of a text, before the vocabulary lookup (not truncated). */
  words(text: string): string[] {
    let s = this.normalization ? text.normalize(this.normalization) : text;
    s = s.replace(this.combining, "");
    if (this.lowercase) s = s.toLowerCase();
    return s.match(this.token) ?? [];
  }

  /** Token ids of one text. */
  encode(text: string): number[] {
    const words = this.words(text).slice(0, this.maxLen);
    const ids = words.map((w) => this.index.get(w) ?? this.unkId);
    if (ids.length === 0) ids.push(this.unkId);
    if (this.bos !== undefined) ids.unshift(this.bos);
    if (this.eos !== undefined) ids.push(this.eos);
    return ids;
  }

  /** How many of a text's words the vocabulary knows (for "no known words" hints). */
  known(text: string): number {
    return this.words(text)
      .slice(0, this.maxLen)
      .filter((w) => this.index.has(w)).length;
  }

  /** Pads already-encoded sequences into one batch. */
  pad(seqs: number[][]): TokenBatch {
    return padBatch(seqs, this.padId);
  }

  batch(texts: string[]): TokenBatch {
    return this.pad(texts.map((t) => this.encode(t)));
  }
}
