/**
 * Caption cleaning and the Flickr8K token file. The rules are the model's
 * (model/glimpse_model/data.py `clean_caption` / `image_id_from_name`); keep them in step.
 */

/** Trim, collapse whitespace, drop spaces before punctuation. Case is kept. */
export function cleanCaption(s: string): string {
  return s.replace(/\s+/g, " ").trim().replace(/\s+([.,!?;:])/g, "$1");
}

/** `1000268201_693b08cb0e.jpg#0` / `2258277193_586949ec62.jpg.1#0` → `1000268201_693b08cb0e`. */
export function imageIdFromName(name: string): string {
  const bare = (name.split("#", 1)[0] ?? "").trim();
  const i = bare.toLowerCase().indexOf(".jpg");
  return i >= 0 ? bare.slice(0, i) : bare;
}

export interface TokenFileIssue {
  /** 1-based line number in the token file. */
  line: number;
  kind: "no_tab" | "empty_caption" | "odd_name" | "no_caption_number";
  text: string;
  imageId?: string;
}

export interface ParsedCaptions {
  /** image id → cleaned captions, in caption-number order. */
  captions: Map<string, string[]>;
  lines: number;
  issues: TokenFileIssue[];
}

const NORMAL_NAME = /^[^#\s]+\.jpg#\d+$/i;

/**
 * Parses a token file (`name.jpg#i<TAB>caption` per line). Handles the real file's quirks:
 * a BOM, CRLF line ends, blank lines, an odd name such as `x.jpg.1#0` (mapped to image `x`
 * and reported), captions whose number is missing (appended in file order) and stray spaces
 * before punctuation (cleaned). Lines without a tab and captions that clean to nothing are
 * dropped and reported.
 */
export function parseTokenFile(text: string): ParsedCaptions {
  const byId = new Map<string, { k: number; order: number; caption: string }[]>();
  const issues: TokenFileIssue[] = [];
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  let count = 0;
  let order = 0;
  lines.forEach((raw, idx) => {
    const line = idx + 1;
    if (raw.trim() === "") return;
    count++;
    const tab = raw.indexOf("\t");
    if (tab < 0) {
      issues.push({ line, kind: "no_tab", text: raw });
      return;
    }
    const name = raw.slice(0, tab).trim();
    const imageId = imageIdFromName(name);
    if (!NORMAL_NAME.test(name)) issues.push({ line, kind: "odd_name", text: name, imageId });
    const caption = cleanCaption(raw.slice(tab + 1));
    if (caption === "") {
      issues.push({ line, kind: "empty_caption", text: raw, imageId });
      return;
    }
    const hash = name.lastIndexOf("#");
    let k = hash >= 0 ? Number.parseInt(name.slice(hash + 1), 10) : Number.NaN;
    if (!Number.isFinite(k)) {
      issues.push({ line, kind: "no_caption_number", text: name, imageId });
      k = Number.MAX_SAFE_INTEGER;
    }
    let list = byId.get(imageId);
    if (!list) byId.set(imageId, (list = []));
    list.push({ k, order: order++, caption });
  });
  const captions = new Map<string, string[]>();
  for (const [id, list] of byId) {
    list.sort((a, b) => a.k - b.k || a.order - b.order);
    captions.set(
      id,
      list.map((c) => c.caption),
    );
  }
  return { captions, lines: count, issues };
}

/** A split list: one image file name per line (any whitespace), mapped to image ids. */
export function parseSplitList(text: string): string[] {
  return text
    .replace(/^\uFEFF/, "")
    .split(/\s+/)
    .filter((s) => s !== "")
    .map(imageIdFromName);
}
