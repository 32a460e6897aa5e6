import { describe, expect, it } from "vitest";
import { cleanCaption, imageIdFromName, parseSplitList, parseTokenFile } from "./captions.js";

describe("captions", () => {
  it("cleans like the model's clean_caption (case kept)", () => {
    expect(cleanCaption("  A child in a pink dress is climbing up a set of stairs in an entry way .")).toBe("A child in a pink dress is climbing up a set of stairs in an entry way.");
    expect(cleanCaption("TWO  dogs , running\toutside !")).toBe("TWO dogs, running outside!");
    expect(cleanCaption("   ")).toBe("");
  });

  it("maps the token file's names to image ids, including the .jpg.1 quirk", () => {
    expect(imageIdFromName("1000268201_693b08cb0e.jpg#0")).toBe("1000268201_693b08cb0e");
    expect(imageIdFromName("2258277193_586949ec62.jpg.1#0")).toBe("2258277193_586949ec62");
    expect(imageIdFromName("x.JPG#3")).toBe("x");
    expect(imageIdFromName("plain")).toBe("plain");
  });

  it("parses a token file with the real quirks and reports them", () => {
    const text = [
      "\uFEFFa.jpg#1\tSecond caption .",
      "a.jpg.1#0\tpeople waiting for the subway",
      "",
      "b.jpg#0\t   ",
      "no tab here",
      "c.jpg\tno number",
      "a.jpg#2\tThird , with spaces !\r",
    ].join("\n");
    const r = parseTokenFile(text);
    expect(r.captions.get("a")).toEqual(["people waiting for the subway", "Second caption.", "Third, with spaces!"]);
    expect(r.captions.has("b")).toBe(false);
    expect(r.captions.get("c")).toEqual(["no number"]);
    expect(r.issues.map((i) => [i.line, i.kind])).toEqual([
      [2, "odd_name"],
      [4, "empty_caption"],
      [5, "no_tab"],
      [6, "odd_name"],
      [6, "no_caption_number"],
    ]);
    expect(r.lines).toBe(6);
  });

  it("parses split lists", () => {
    expect(parseSplitList("a.jpg\r\nb.jpg\n\n c.jpg \n")).toEqual(["a", "b", "c"]);
  });
});
