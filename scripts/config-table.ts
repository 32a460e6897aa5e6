// The configuration table in README.md, generated from the typed schema.
//   npm run docs:config            print it
//   npm run docs:config -- --write  replace the block between the config markers in README.md
import { readFileSync, writeFileSync } from "node:fs";
import { markdownTable } from "@glimpse/config";
import { schema } from "@glimpse/runtime";

export const START = "<!-- config:start -->";
export const END = "<!-- config:end -->";

const table = markdownTable(schema);
if (process.argv.includes("--write")) {
  const readme = readFileSync("README.md", "utf8");
  const [before, rest] = readme.split(START) as [string, string];
  const after = rest.split(END)[1]!;
  writeFileSync("README.md", `${before}${START}\n${table}\n${END}${after}`);
} else {
  process.stdout.write(table + "\n");
}
