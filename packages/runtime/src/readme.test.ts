import { readFileSync } from "node:fs";
import { markdownTable } from "@glimpse/config";
import { describe, expect, it } from "vitest";
import { schema } from "./config.js";

describe("README", () => {
  it("documents every configuration key as the schema defines it", () => {
    const readme = readFileSync(new URL("../../../README.md", import.meta.url), "utf8");
    const block = readme.split("<!-- config:start -->")[1]?.split("<!-- config:end -->")[0]?.trim();
    expect(block, "run `npm run docs:config -- --write`").toBe(markdownTable(schema));
  });
});
