import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { LIMITS, PATTERNS } from "./limits.js";

const proto = (path: string) => readFileSync(fileURLToPath(new URL(`../../../proto/glimpse/${path}`, import.meta.url)), "utf8");

/** The numbers a proto comment states, as the test reads them: a drift on either side fails. */
describe("limits stated in the proto comments match the ones the servers enforce", () => {
  const rankingProto = proto("ranking/v1/ranking_service.proto");
  const dataProto = proto("data/v1/data_service.proto");

  it("RankingService: query length, top_k, image bytes and pixels, image_id", () => {
    expect(rankingProto).toContain(`a text query is 1..${LIMITS.queryMaxChars} characters after trimming`);
    expect(rankingProto).toContain(`top_k is 1..${LIMITS.topKMax} (0 means ${LIMITS.topKDefault})`);
    expect(rankingProto).toContain(
      `at most ${LIMITS.imageMaxBytes / (1024 * 1024)} MiB and ${LIMITS.imageMaxPixels / 1_000_000} megapixels`,
    );
    expect(rankingProto).toContain(`an image_id matches ${PATTERNS.imageId.source}`);
  });

  it("DataService: source URL length", () => {
    expect(dataProto).toContain(`http(s):// or file:// (max ${LIMITS.urlMaxChars} chars)`);
  });
});
