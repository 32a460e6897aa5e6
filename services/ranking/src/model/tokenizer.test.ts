import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { DEFAULT_DEMO_DIR } from "../seed.js";
import type { Golden } from "./golden.js";
import { loadTokenizer, Tokenizer, type VocabSpec } from "./tokenizer.js";

const SPEC: VocabSpec = {
  schema: "glimpse.vocab/v1",
  type: "word-regex",
  unicode_normalization: "NFKD",
  combining_regex: "[\\u0300-\\u036f]",
  lowercase: true,
  token_regex: "[a-z0-9]+",
  regex_flags: "g",
  max_len: 4,
  add_bos: false,
  add_eos: false,
  pad_id: 0,
  unk_id: 1,
  bos_id: 2,
  eos_id: 3,
  tokens: ["<pad>", "<unk>", "<bos>", "<eos>", "a", "dog", "cafe", "runs", "2"],
};

describe("Tokenizer (vocab.json spec)", () => {
  const tok = new Tokenizer(SPEC);

  it("normalises, strips accents, lower-cases and splits on non-alphanumerics", () => {
    expect(tok.words("A Dog-runs, CAFÉ!!! 2 dogs")).toEqual(["a", "dog", "runs", "cafe", "2", "dogs"]);
    expect(tok.encode("A dog runs")).toEqual([4, 5, 7]);
    expect(tok.encode("Café")).toEqual([6]);
  });

  it("maps unknown words to <unk>, truncates to max_len and encodes no words as [<unk>]", () => {
    expect(tok.encode("a zebra runs")).toEqual([4, 1, 7]);
    expect(tok.encode("a a a a a a")).toEqual([4, 4, 4, 4]);
    expect(tok.encode("?!")).toEqual([1]);
    expect(tok.encode("")).toEqual([1]);
  });

  it("right-pads a batch with <pad> and reports real lengths", () => {
    const b = tok.batch(["a dog", "runs", "a dog runs a dog"]);
    expect(b.n).toBe(3);
    expect(b.width).toBe(4);
    expect([...b.ids]).toEqual([4n, 5n, 0n, 0n, 7n, 0n, 0n, 0n, 4n, 5n, 7n, 4n]);
    expect([...b.lengths]).toEqual([2n, 1n, 4n]);
  });

  it("refuses specs it cannot reproduce", () => {
    expect(() => new Tokenizer({ ...SPEC, schema: "other/v1" })).toThrow(/schema/);
    expect(() => new Tokenizer({ ...SPEC, type: "bpe" })).toThrow(/type/);
    expect(() => new Tokenizer({ ...SPEC, tokens: [...SPEC.tokens, "a"] })).toThrow(/duplicate/);
  });
});

const MODEL = resolve(process.env["GLIMPSE_GOLDEN_MODEL_DIR"] ?? join(DEFAULT_DEMO_DIR, "model"));
describe("Tokenizer against the demo model's golden.json", () => {
  it("gives the exporter's token ids for every golden caption and every extra tokenizer case", () => {
    // a missing fixture fails here instead of skipping the suite
    expect(existsSync(join(MODEL, "golden.json")), `${MODEL}/golden.json`).toBe(true);
    const tok = loadTokenizer(readFileSync(join(MODEL, "vocab.json")));
    const golden = JSON.parse(readFileSync(join(MODEL, "golden.json"), "utf8")) as Golden & {
      tokenizer_cases?: { text: string; token_ids: number[] }[];
    };
    expect(golden.captions.length).toBeGreaterThan(5);
    for (const c of golden.captions) {
      expect(tok.encode(c.text), c.text).toEqual(c.token_ids);
      expect(tok.encode(c.text).length).toBe(c.length);
    }
    for (const c of golden.tokenizer_cases ?? []) expect(tok.encode(c.text), c.text).toEqual(c.token_ids);
  });
});
